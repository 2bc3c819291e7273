"""Accumulation equals one big batch; z-loss; the spike guard recovers; checkpointing keeps gradients and
saves memory; monitoring helpers agree with torch. (The FLOPs formula against torch's counter: test_compute.py.)"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.stability import (LossSpikeGuard, accumulation_step, checkpoint_decoder_layers, count_target_tokens,
                                  cross_entropy_with_z_loss, global_grad_norm, grad_norms_by_param,
                                  saved_activation_bytes, snapshot_params, update_to_weight_ratios, z_loss)

CFG = TransformerConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)


def model(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return TransformerForCausalLM(cfg)


def micro(k, masked, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(k):
        ids = torch.randint(0, 97, (3, 24), generator=g)
        labels = ids.clone()
        if masked:
            labels[:, 24 - 4 * (i + 1):] = -100
        out.append((ids, labels))
    return out


@pytest.mark.parametrize("k,masked,clip", [(2, False, None), (4, True, None), (3, True, 0.1)])
def test_accumulation_equals_big_batch(k, masked, clip):
    """fp32: gradients within atol 1e-6 / rtol 1e-4, loss within 1e-6."""
    mb = micro(k, masked)
    a, b = model(), model()
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    loss = accumulation_step(a, oa, mb, clip_norm=clip)
    ids, labels = torch.cat([x for x, _ in mb]), torch.cat([y for _, y in mb])
    ref = b(ids, labels=labels, return_logits=False).loss
    ref.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(b.parameters(), clip)
    ob.step()
    assert loss == pytest.approx(ref.item(), abs=1e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4)
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-4)


def test_plain_average_is_wrong_with_masked_tokens():
    mb = micro(3, masked=True)
    m = model()
    avg = sum(m(x, labels=y, return_logits=False).loss for x, y in mb) / 3
    ids, labels = torch.cat([x for x, _ in mb]), torch.cat([y for _, y in mb])
    big = m(ids, labels=labels, return_logits=False).loss
    assert abs(avg.item() - big.item()) > 1e-4
    assert count_target_tokens(labels) == 9 * 23 - 3 * (4 + 8 + 12)


def test_z_loss_formula_and_effect():
    logits = torch.randn(4, 6, 11, dtype=torch.float64) * 3 + 5
    assert torch.allclose(z_loss(logits, 1e-4), 1e-4 * torch.logsumexp(logits, -1).pow(2).mean().float())
    labels = torch.randint(0, 11, (4, 6))
    total, ce, z = cross_entropy_with_z_loss(logits, labels, 1e-2)
    assert torch.allclose(total, ce + z)
    # the gradient of z-loss alone shifts every logit of a row down when log Z > 0
    x = logits.clone().requires_grad_()
    z_loss(x, 1.0).backward()
    assert bool((x.grad.sum(-1) > 0).all())  # d/dlogits log²Z = 2 log Z · softmax, sums to 2 log Z > 0
    with pytest.raises(ValueError):
        z_loss(logits, -1.0)


def _train(m, opt, batches, guard=None, bad_step=None):
    losses = []
    for step, batch in enumerate(batches):
        if step == bad_step:  # one update with a 300× learning rate: a real "bad step"
            for g in opt.param_groups:
                g["lr"] *= 300
        loss = m(batch, labels=batch, return_logits=False).loss
        if guard is not None and guard.is_spike(loss.item()):
            guard.recover()
            losses.append(float("nan"))
            continue
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == bad_step:
            for g in opt.param_groups:
                g["lr"] /= 300
        losses.append(loss.item())
    return losses


def test_spike_guard_rolls_back_bad_update():
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 20, (8, 24), generator=g)  # a learnable stream
    batches = [base[torch.randperm(8, generator=g)] for _ in range(60)]
    m0 = model(1)
    runs = {}
    for name, guarded, bad in [("clean", False, None), ("bad", False, 30), ("guarded", True, 30)]:
        m = copy.deepcopy(m0)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        guard = LossSpikeGuard(m, opt, window=10, mode="rollback", snapshot_every=5) if guarded else None
        runs[name] = (_train(m, opt, batches, guard, bad), guard)
    clean, bad, (guarded, guard) = runs["clean"][0], runs["bad"][0], runs["guarded"]
    assert bad[31] > 2 * clean[31]  # the bad update really hurts
    assert guard.spikes, "the guard saw no spike"
    assert all(31 <= s - 1 <= 33 for s in guard.spikes)
    # recovered: back on the clean curve, behind it only by the steps since the snapshot
    assert guarded[-1] < clean[-5]
    assert bad[-1] > 2 * guarded[-1]  # the unguarded run is still paying for the bad step


def test_spike_guard_skip_mode_and_args():
    m = model()
    guard = LossSpikeGuard(m, None, window=5, min_history=3, mode="skip")
    assert not any(guard.is_spike(v) for v in [3.0, 3.1, 2.9, 3.0])
    assert guard.is_spike(9.0) and guard.is_spike(float("nan"))
    assert not guard.is_spike(3.05)
    with pytest.raises(ValueError):
        LossSpikeGuard(m, mode="restart")


def test_checkpointing_same_grads_less_memory():
    a, b = model(), model()
    checkpoint_decoder_layers(b)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    x = torch.randint(0, 97, (4, 32))
    bytes_a, la = saved_activation_bytes(lambda: a(x, labels=x, return_logits=False).loss, exclude=a)
    bytes_b, lb = saved_activation_bytes(lambda: b(x, labels=x, return_logits=False).loss, exclude=b)
    la.backward()
    lb.backward()
    assert torch.equal(la, lb)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-7, rtol=1e-5)
    assert bytes_b < 0.5 * bytes_a
    checkpoint_decoder_layers(b, enable=False)
    assert "forward" not in vars(b.model.layers[0])


def test_monitoring_helpers():
    m = model()
    x = torch.randint(0, 97, (2, 16))
    m(x, labels=x).loss.backward()
    norms = grad_norms_by_param(m)
    total = torch.nn.utils.clip_grad_norm_(m.parameters(), 1e9)
    assert global_grad_norm(m.parameters()) == pytest.approx(float(total), rel=1e-6)
    assert math.sqrt(sum(v * v for v in norms.values())) == pytest.approx(float(total), rel=1e-5)
    before = snapshot_params(m)
    with torch.no_grad():
        m.lm_head.weight.mul_(1.01)
    ratios = update_to_weight_ratios(before, m)
    assert ratios["lm_head.weight"] == pytest.approx(0.01, rel=1e-4)
    assert ratios["model.norm.weight"] == 0.0


def test_train_with_monitoring_records_every_step_and_matches_adam_first_step():
    """Adam's first step moves every entry by lr (m̂/√v̂ = ±1), so ‖ΔW‖/‖W‖ = lr·√numel/‖W‖ = lr/rms(W)."""
    from course_lib.stability import median_after, train_with_monitoring

    m = model()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 97, (4, 16), generator=g) for _ in range(5)]
    rms = {n: float(p.detach().pow(2).mean().sqrt()) for n, p in m.named_parameters()}
    lr = 1e-3
    history = train_with_monitoring(m, torch.optim.Adam(m.parameters(), lr=lr), batches, clip_norm=1.0)
    assert len(history["loss"]) == len(history["grad_norm"]) == 5
    assert all(len(v) == 5 for v in history["update_ratios"].values())
    assert all(len(v) == 5 for v in history["param_grad_norms"].values())
    for name in ("model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.norm.weight"):
        assert history["update_ratios"][name][0] == pytest.approx(lr / rms[name], rel=0.02)
    assert median_after([5.0, 1.0, 2.0, 3.0], skip=1) == 2.0


def test_train_with_monitoring_matches_a_plain_loop():
    """The recorded global norm is clip_grad_norm_'s return value, and the weights end up the same."""
    from course_lib.stability import train_with_monitoring

    a, b = model(), model()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 97, (2, 12), generator=g) for _ in range(3)]
    history = train_with_monitoring(a, torch.optim.AdamW(a.parameters(), lr=1e-3), batches, clip_norm=0.5)
    opt = torch.optim.AdamW(b.parameters(), lr=1e-3)
    norms = []
    for x in batches:
        opt.zero_grad()
        b(x, labels=x, return_logits=False).loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)))
        opt.step()
    assert history["grad_norm"] == pytest.approx(norms, rel=1e-5)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_train_with_monitoring_rejects_bad_input():
    from course_lib.stability import median_after, train_with_monitoring

    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batches is empty"):
        train_with_monitoring(m, opt, [])
    with pytest.raises(ValueError, match="clip_norm"):
        train_with_monitoring(m, opt, [torch.zeros(1, 4, dtype=torch.long)], clip_norm=0)
    with pytest.raises(ValueError, match="2-D tensor"):
        train_with_monitoring(m, opt, [torch.zeros(4, dtype=torch.long)])
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_with_monitoring(m, opt, [torch.zeros(1, 4, dtype=torch.long)],
                              loss_fn=lambda mod, x: mod(x, labels=x).loss * float("nan"))
    with pytest.raises(ValueError, match="nothing left"):
        median_after([1.0], skip=1)
