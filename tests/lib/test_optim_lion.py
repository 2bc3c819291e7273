"""course_lib.optim.Lion against lion-pytorch: bit for bit, validation, resume, memory.

Tolerance: none. ``lion_update`` performs lion-pytorch's operations in lion-pytorch's order (decay,
interpolate with ``mul_``/``add``, ``sign``, step, momentum), so on the same machine every parameter
is identical (``torch.equal``) in float32 and float64, not just within an ulp.
"""

import copy
import math

import pytest
import torch
from lion_pytorch import Lion as ReferenceLion

from course_lib.compute import optimizer_state_bytes
from course_lib.optim import AdamW, Lion, lion_update

SHAPES = [(8, 5), (5,), (3, 4, 2), (8, 5)]


def groups(ps):
    return [dict(params=ps[:2], weight_decay=0.3), dict(params=ps[2:], lr=3e-3, betas=(0.95, 0.98))]


def fake_grads(params, gen, step):
    for i, p in enumerate(params):
        if i == 1 and step % 4 == 3:
            p.grad = None  # sometimes no gradient
        elif step == 5:
            p.grad = torch.zeros_like(p)
        else:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lion_is_bitwise_lion_pytorch_over_50_steps(dtype):
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    ours = [x.clone().requires_grad_() for x in init]
    ref = [x.clone().requires_grad_() for x in init]
    opt = Lion(groups(ours), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    ref_opt = ReferenceLion(groups(ref), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    for step in range(50):
        g = torch.Generator().manual_seed(1000 + step)
        fake_grads(ours, g, step)
        g = torch.Generator().manual_seed(1000 + step)
        fake_grads(ref, g, step)
        opt.step()
        ref_opt.step()
        for a, b in zip(ours, ref):
            assert torch.equal(a, b), f"differs at step {step + 1}"
    for a, b in zip(ours, ref):
        assert torch.equal(opt.state[a]["exp_avg"], ref_opt.state[b]["exp_avg"])


def test_lion_update_is_the_paper_rule():
    """θ ← θ(1 − lr·λ) − lr·sign(β₁m + (1−β₁)g); m ← β₂m + (1−β₂)g (Chen et al. 2023, Alg. 2), in float64."""
    gen = torch.Generator().manual_seed(1)
    p, g, m = (torch.randn(6, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    lr, b1, b2, wd = 0.05, 0.9, 0.99, 0.2
    expected_p = p * (1 - lr * wd) - lr * torch.sign(b1 * m + (1 - b1) * g)
    expected_m = b2 * m + (1 - b2) * g
    lion_update(p, g, m, lr, b1, b2, wd)
    torch.testing.assert_close(p, expected_p, atol=1e-15, rtol=0)
    torch.testing.assert_close(m, expected_m, atol=1e-15, rtol=0)


def test_every_coordinate_moves_by_exactly_lr_without_decay():
    gen = torch.Generator().manual_seed(2)
    p = torch.randn(64, 32, generator=gen, dtype=torch.float64, requires_grad=True)
    opt = Lion([p], lr=1e-3, weight_decay=0.0)
    for _ in range(5):
        before = p.detach().clone()
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        opt.step()
        moved = (p.detach() - before).abs()
        torch.testing.assert_close(moved, torch.full_like(moved, 1e-3), atol=1e-15, rtol=0)


@pytest.mark.parametrize("kwargs", [dict(lr=-1e-3), dict(lr=float("nan")), dict(betas=(1.0, 0.99)),
                                    dict(betas=(0.9, -0.1)), dict(betas=(0.9,)), dict(weight_decay=-0.1)])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError):
        Lion([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_state_dict_resume_is_identical_to_an_uninterrupted_run():
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(s, generator=gen) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen) for s in SHAPES] for _ in range(20)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()

    straight = [x.clone().requires_grad_() for x in init]
    opt = Lion(groups(straight), lr=1e-2, weight_decay=0.1)
    run(straight, opt, grads)

    first = [x.clone().requires_grad_() for x in init]
    opt1 = Lion(groups(first), lr=1e-2, weight_decay=0.1)
    run(first, opt1, grads[:10])
    saved_params = [p.detach().clone() for p in first]
    saved_state = copy.deepcopy(opt1.state_dict())
    resumed = [x.clone().requires_grad_() for x in saved_params]
    opt2 = Lion(groups(resumed), lr=1e-2, weight_decay=0.1)
    opt2.load_state_dict(saved_state)
    run(resumed, opt2, grads[10:])
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_one_state_tensor_half_of_adamw_and_none_for_frozen_parameters():
    gen = torch.Generator().manual_seed(4)
    params = [torch.randn(s, generator=gen, requires_grad=True) for s in SHAPES]
    frozen = torch.randn(7, 3, requires_grad=True)
    lion, adamw = Lion(params + [frozen], lr=1e-3, weight_decay=0.1), AdamW(params + [frozen], lr=1e-3)
    before = frozen.detach().clone()
    for opt in (lion, adamw):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    n = sum(p.numel() for p in params)
    assert optimizer_state_bytes(lion) == 4 * n
    assert 2 * optimizer_state_bytes(lion) == optimizer_state_bytes(adamw)
    assert torch.equal(frozen.detach(), before) and frozen not in lion.state


def test_closure_is_evaluated_and_its_loss_returned():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Lion([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert math.isclose(loss.item(), 5.0)
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9]))
