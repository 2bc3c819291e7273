"""The training loop: it learns, it is deterministic, and it stops loudly on bad input or a NaN loss."""

import pytest
import torch

from course_lib.data import TokenChunkDataset, batch_stream
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import build_optimizer
from course_lib.train import evaluate, train

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
    opt = build_optimizer("adamw", model, lr=1e-2)
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
        opt = build_optimizer("muon", model)
        runs.append(train(model, opt, batch_stream(ds, 8, seed=1), steps=5, progress=False).train_loss)
    assert runs[0] == runs[1]


def test_nan_loss_stops_and_names_the_step():
    model, ds = setup()
    opt = build_optimizer("adamw", model, lr=1e-3)

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
    opt = build_optimizer("adamw", model, lr=0.0, weight_decay=0.0)
    batches = batch_stream(ds, 8, seed=1)
    train(model, opt, batches, steps=1, clip_norm=1e-3, progress=False)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert total <= 1e-3 * 1.0001


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(steps=2.5), dict(steps=3, clip_norm=-1.0),
                                    dict(steps=3, eval_every=-1)])
def test_invalid_arguments(kwargs):
    model, ds = setup()
    with pytest.raises(ValueError):
        train(model, build_optimizer("adamw", model), batch_stream(ds, 8, 1), progress=False, **kwargs)


def test_unknown_optimizer_name():
    model, _ = setup()
    with pytest.raises(ValueError, match="Unknown optimizer 'adamx'"):
        build_optimizer("adamx", model)


@pytest.mark.parametrize("name,kwargs", [("adamw", dict(lr=-1.0)), ("adamw", dict(betas=(0.9, 1.0))),
                                         ("adamw", dict(eps=-1e-8)), ("adamw", dict(weight_decay=-0.1)),
                                         ("muon", dict(momentum=1.5)), ("muon_all", dict(lr=float("nan"))),
                                         ("muon_all", dict(ns_steps=-1)), ("muon", dict(adjust_lr_fn="bogus"))])
def test_invalid_hyperparameters(name, kwargs):
    model, _ = setup()
    with pytest.raises(ValueError):
        build_optimizer(name, model, **kwargs)


def test_iterator_running_out_is_an_error():
    model, ds = setup()
    with pytest.raises(ValueError, match="ran out after 2"):
        train(model, build_optimizer("adamw", model), iter([ds[0][None], ds[1][None]]), steps=3, progress=False)
