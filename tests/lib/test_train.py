"""The training loop: it learns, it is deterministic, and it stops loudly on bad input or a NaN loss."""

import copy
import math

import pytest
import torch

from course_lib.data import TokenChunkDataset, batch_stream
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import build_optimizer
from course_lib.train import StepPlan, Stopwatch, accumulate_gradients, evaluate, train, train_step

CFG = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
           num_key_value_heads=1, max_position_embeddings=16)


def setup(seed=0):
    torch.manual_seed(seed)
    model = TransformerForCausalLM(TransformerConfig(**CFG))
    tokens = torch.arange(2000) % 50  # a perfectly predictable stream
    ds = TokenChunkDataset(tokens, seq_len=16, vocab_size=50)
    return model, ds


def test_loss_goes_down_and_history_is_complete():
    model, ds = setup()
    opt = build_optimizer("AdamW", model, lr=1e-2)
    result = train(model, opt, batch_stream(ds, 8, seed=1), steps=30, val_dataset=ds, eval_every=10, progress=False)
    assert len(result.train_loss) == len(result.grad_norm) == len(result.lr) == 30
    assert result.val_steps == [10, 20, 30]
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    assert result.val_loss[-1] == pytest.approx(evaluate(model, ds), rel=1e-6)
    assert result.tokens == 30 * 8 * 16 and result.tokens_per_s > 0


def test_runs_are_reproducible():
    runs = []
    for _ in range(2):
        model, ds = setup()
        opt = build_optimizer("MuonWithAdamW", model)
        runs.append(train(model, opt, batch_stream(ds, 8, seed=1), steps=5, progress=False).train_loss)
    assert runs[0] == runs[1]


def test_nan_loss_stops_and_names_the_step():
    model, ds = setup()
    opt = build_optimizer("AdamW", model, lr=1e-3)

    def poisoned():
        for i, batch in enumerate(batch_stream(ds, 8, seed=1)):
            if i == 3:  # before step 4, corrupt one weight
                with torch.no_grad():
                    model.lm_head.weight[0, 0] = float("nan")
            yield batch

    with pytest.raises(FloatingPointError, match="at step 4"):
        train(model, opt, poisoned(), steps=10, progress=False)


def test_clipping_limits_the_norm_actually_applied():
    model, ds = setup()
    opt = build_optimizer("AdamW", model, lr=0.0, weight_decay=0.0)
    batches = batch_stream(ds, 8, seed=1)
    train(model, opt, batches, steps=1, clip_norm=1e-3, progress=False)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert total <= 1e-3 * 1.0001


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(steps=2.5), dict(steps=3, clip_norm=-1.0),
                                    dict(steps=3, eval_every=-1)])
def test_invalid_arguments(kwargs):
    model, ds = setup()
    with pytest.raises(ValueError):
        train(model, build_optimizer("AdamW", model), batch_stream(ds, 8, 1), progress=False, **kwargs)


def test_unknown_optimizer_name():
    model, _ = setup()
    with pytest.raises(ValueError, match="Unknown optimizer 'adamx'"):
        build_optimizer("adamx", model)


@pytest.mark.parametrize("name,kwargs", [("AdamW", dict(lr=-1.0)), ("AdamW", dict(betas=(0.9, 1.0))),
                                         ("AdamW", dict(eps=-1e-8)), ("AdamW", dict(weight_decay=-0.1)),
                                         ("MuonWithAdamW", dict(momentum=1.5)), ("Muon", dict(lr=float("nan"))),
                                         ("Muon", dict(ns_steps=-1)), ("MuonWithAdamW", dict(adjust_lr_fn="bogus")),
                                         ("Lion", dict(betas=(0.9, 1.0)))])
def test_invalid_hyperparameters(name, kwargs):
    model, _ = setup()
    with pytest.raises(ValueError):
        build_optimizer(name, model, **kwargs)


def test_iterator_running_out_is_an_error():
    model, ds = setup()
    with pytest.raises(ValueError, match="ran out after 2"):
        train(model, build_optimizer("AdamW", model), iter([ds[0][None], ds[1][None]]), steps=3, progress=False)


def test_default_step_is_the_plain_loop_bit_for_bit():
    """One micro-batch, no DDP, no autocast: exactly zero_grad, forward, backward, clip, step."""
    model, ds = setup()
    ref = copy.deepcopy(model)
    opt, ref_opt = build_optimizer("AdamW", model), build_optimizer("AdamW", ref)
    result = train(model, opt, batch_stream(ds, 8, seed=1), steps=4, progress=False)
    ref_losses = []
    for _, batch in zip(range(4), batch_stream(ds, 8, seed=1)):
        ref_opt.zero_grad(set_to_none=True)
        loss = ref(batch, labels=batch, return_logits=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        ref_losses.append(loss.item())
    assert result.train_loss == ref_losses
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))


def test_accumulation_is_token_weighted_like_one_big_batch():
    """fp32 rounding only: micro-batches with different numbers of targets (-100 labels) give the big batch's
    loss and gradient when each is weighted by its share of the targets."""
    model, ds = setup()
    ref = copy.deepcopy(model)
    batch = next(batch_stream(ds, 6, seed=2))
    labels = batch.clone()
    labels[0, 5:] = labels[3, 2:] = -100
    pairs = [(batch[:1], labels[:1]), (batch[1:4], labels[1:4]), (batch[4:], labels[4:])]
    loss = accumulate_gradients(model, pairs)
    ref_loss = ref(batch, labels=labels, return_logits=False).loss
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), abs=1e-6)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="empty"):
        accumulate_gradients(model, [])


def test_train_step_returns_the_loss_and_the_norm_before_clipping():
    model, ds = setup()
    opt = build_optimizer("AdamW", model, lr=0.0, weight_decay=0.0)
    batch = next(batch_stream(ds, 8, seed=1))
    loss, norm = train_step(model, opt, [batch[:4], batch[4:]], clip_norm=1e-3)
    assert loss == pytest.approx(evaluate(model, [row for row in batch], batch_size=8), abs=1e-6)
    assert norm > 1e-3  # the norm before clipping ...
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert clipped <= 1e-3 * 1.0001  # ... and the gradients left in p.grad are clipped


def test_accumulation_in_train_matches_the_whole_batch_at_the_first_step():
    losses = []
    for accum in (1, 4):
        model, ds = setup()
        result = train(model, build_optimizer("AdamW", model), batch_stream(ds, 8, seed=1), steps=2, progress=False,
                       plan=StepPlan(accum_steps=accum))
        losses.append(result.train_loss)
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-6)  # before any update: the same data, the same loss
    with pytest.raises(ValueError, match="accum_steps"):
        model, ds = setup()
        train(model, build_optimizer("AdamW", model), batch_stream(ds, 8, seed=1), steps=2, progress=False,
              plan=StepPlan(accum_steps=0))


def test_stopwatch_does_not_count_paused_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("course_lib.train.time.perf_counter", lambda: now[0])
    clock = Stopwatch(seconds=5.0)
    clock.start()
    now[0] += 2.0
    with clock.paused():
        assert clock.seconds == 7.0
        now[0] += 30.0  # evaluation: not training time
    now[0] += 1.0
    assert clock.stop() == 8.0


def test_fp16_with_a_grad_scaler_learns_and_skips_an_overflowed_step():
    """fp16 autocast + torch.amp.GradScaler (what precision "auto" picks on a T4): the run learns; a step
    whose gradients overflow is skipped (weights unchanged, scale halved) instead of stopping the run, and
    without a scaler the same overflow stops it before the update."""
    model, ds = setup()
    opt = build_optimizer("AdamW", model, lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    plan = StepPlan(autocast_dtype=torch.float16, grad_scaler=scaler)
    result = train(model, opt, batch_stream(ds, 8, seed=1), steps=30, plan=plan, progress=False)
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]

    overflow = {"step": True}

    def inf_once(grad):
        if overflow["step"]:
            overflow["step"] = False
            return torch.full_like(grad, float("inf"))
        return grad

    handle = model.lm_head.weight.register_hook(inf_once)
    before = [p.detach().clone() for p in model.parameters()]
    scale = scaler.get_scale()
    batch = next(batch_stream(ds, 8, seed=2))
    loss, norm = train_step(model, opt, [batch], autocast_dtype=torch.float16, grad_scaler=scaler)
    assert not math.isfinite(norm) and math.isfinite(loss)
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))  # skipped
    assert scaler.get_scale() == scale / 2
    train_step(model, opt, [batch], autocast_dtype=torch.float16, grad_scaler=scaler)  # the next one updates
    assert not all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    overflow["step"] = True
    with pytest.raises(FloatingPointError, match="gradient norm is inf"):
        train_step(model, opt, [batch], autocast_dtype=torch.float16)
    handle.remove()

    # A divergence overflows every step: the scale halves each time, and below 1 the run stops loudly.
    model.lm_head.weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    train_step(model, opt, [batch], autocast_dtype=torch.float16, grad_scaler=scaler)
    train_step(model, opt, [batch], autocast_dtype=torch.float16, grad_scaler=scaler)  # scale 4 -> 2 -> 1
    with pytest.raises(FloatingPointError, match="loss scale fell below 1 at step 3"):
        train_step(model, opt, [batch], autocast_dtype=torch.float16, grad_scaler=scaler, step=3)
