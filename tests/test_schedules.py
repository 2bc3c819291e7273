"""course_lib.schedules equals transformers' and torch's schedulers at every step of full runs.

Tolerance: 1e-12 absolute on the LR multiplier (both sides are the same float64 formulas; only the
order of operations differs)."""

from __future__ import annotations

import pytest
import torch
from transformers import (get_cosine_with_min_lr_schedule_with_warmup, get_inverse_sqrt_schedule,
                          get_linear_schedule_with_warmup, get_wsd_schedule)

from course_lib import schedules as S

TOL = 1e-12


def opt(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs(sched, steps):
    return torch.tensor(S.lrs_from_scheduler(sched, steps), dtype=torch.float64)


@pytest.mark.parametrize("warmup,total", [(10, 200), (0, 50), (37, 1000), (5, 6)])
def test_warmup_cosine_matches_transformers(warmup, total):
    ref = lrs(get_cosine_with_min_lr_schedule_with_warmup(opt(3e-3), warmup, total, min_lr_rate=0.1), total + 1)
    mine = lrs(S.lambda_lr(opt(3e-3), "warmup_cosine", warmup_steps=warmup, total_steps=total, min_ratio=0.1),
               total + 1)
    assert torch.allclose(mine, ref, atol=TOL * 3e-3, rtol=0)
    assert mine[-1].item() == pytest.approx(3e-4)  # 10% of peak at the end
    # after the end: we stay at the minimum, transformers' cosine turns back up
    assert S.warmup_cosine(total + 20, warmup, total, 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("shape", S.DECAY_SHAPES)
@pytest.mark.parametrize("warmup,stable,decay,ratio", [(10, 100, 40, 0.0), (0, 30, 17, 0.1), (7, 0, 9, 0.05)])
def test_wsd_matches_transformers(shape, warmup, stable, decay, ratio):
    total = warmup + stable + decay + 15  # run past the end too
    ref = lrs(get_wsd_schedule(opt(), warmup, decay, num_stable_steps=stable, min_lr_ratio=ratio,
                               decay_type=shape), total)
    mine = lrs(S.lambda_lr(opt(), "wsd", warmup_steps=warmup, stable_steps=stable, decay_steps=decay,
                           min_ratio=ratio, shape=shape), total)
    assert torch.allclose(mine, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("warmup,timescale", [(10, None), (100, 50), (0, 20)])
def test_inverse_sqrt_matches_transformers(warmup, timescale):
    ref = lrs(get_inverse_sqrt_schedule(opt(), warmup, timescale), 500)
    mine = lrs(S.lambda_lr(opt(), "inverse_sqrt", warmup_steps=warmup, timescale=timescale), 500)
    assert torch.allclose(mine, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("warmup,total", [(10, 100), (0, 30), (50, 51)])
def test_linear_matches_transformers(warmup, total):
    ref = lrs(get_linear_schedule_with_warmup(opt(), warmup, total), total + 10)
    mine = lrs(S.lambda_lr(opt(), "linear", warmup_steps=warmup, total_steps=total), total + 10)
    assert torch.allclose(mine, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("period,mult,ratio", [(10, 1, 0.0), (7, 2, 0.1), (5, 3, 0.0)])
def test_sgdr_matches_torch(period, mult, ratio):
    o = opt(2.0)
    ref = lrs(torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=period, T_mult=mult, eta_min=2.0 * ratio),
              200) / 2.0
    mine = torch.tensor(S.schedule_values("sgdr", 200, period=period, period_mult=mult, min_ratio=ratio),
                        dtype=torch.float64)
    assert torch.allclose(mine, ref, atol=1e-9, rtol=0)


def test_step_zero_convention():
    o = opt(1e-3)
    S.lambda_lr(o, "warmup_cosine", warmup_steps=10, total_steps=100)
    assert o.param_groups[0]["lr"] == 0.0  # LambdaLR applies schedule(0) at construction
    o2 = opt(1e-3)
    S.lambda_lr(o2, "wsd", warmup_steps=10, stable_steps=10, decay_steps=10, min_ratio=0.1)
    assert o2.param_groups[0]["lr"] == pytest.approx(1e-4)  # WSD warms up from min_ratio


@pytest.mark.parametrize("call", [
    lambda: S.warmup_cosine(-1, 10, 100), lambda: S.warmup_cosine(0, 10, 100, min_ratio=1.5),
    lambda: S.warmup_cosine(0, 200, 100), lambda: S.wsd(0, 1, 1, 1, shape="exp"),
    lambda: S.wsd(10, 1, 1, 1, shape="exp"), lambda: S.sgdr(0, 0), lambda: S.inverse_sqrt(1, 0, timescale=0),
    lambda: S.lambda_lr(opt(), "warmup_cosine", warmup_steps=5),
])
def test_bad_arguments_raise(call):
    with pytest.raises((ValueError, TypeError)):
        call()
