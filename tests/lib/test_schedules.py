"""course_lib.schedules equals transformers' and torch's schedulers at every step of full runs (cosine also
with ``num_cycles``); MiniCPM's exponential WSD equals its closed formula and the notes' per-step form.

Tolerance: 1e-12 absolute on the LR multiplier (both sides are the same float64 formulas; only the
order of operations differs)."""

from __future__ import annotations

import pytest
import torch
from transformers import (get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup,
                          get_inverse_sqrt_schedule, get_linear_schedule_with_warmup, get_wsd_schedule)

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


@pytest.mark.parametrize("num_cycles", [0.5, 0.25, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("warmup,total,ratio", [(10, 200, 0.1), (0, 64, 0.0), (37, 500, 0.05)])
def test_cosine_num_cycles_equals_transformers(num_cycles, warmup, total, ratio):
    ours = lrs(S.lambda_lr(opt(), "warmup_cosine", warmup_steps=warmup, total_steps=total, min_ratio=ratio,
                           num_cycles=num_cycles), total + 1)
    ref = lrs(get_cosine_with_min_lr_schedule_with_warmup(opt(), warmup, total, num_cycles=num_cycles,
                                                           min_lr_rate=ratio), total + 1)
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    if ratio == 0.0:
        plain = lrs(get_cosine_schedule_with_warmup(opt(), warmup, total, num_cycles=num_cycles), total + 1)
        assert torch.allclose(ours, plain, atol=1e-12, rtol=0)


def test_cosine_holds_its_end_value_after_total_steps():
    for n in (0.5, 1.0, 0.75):
        end = S.warmup_cosine(100, 10, 100, 0.1, num_cycles=n)
        assert S.warmup_cosine(150, 10, 100, 0.1, num_cycles=n) == end
    assert S.warmup_cosine(100, 10, 100, 0.1) == 0.1 and S.warmup_cosine(100, 10, 100, 0.1, num_cycles=1.0) == 1.0


@pytest.mark.parametrize("warmup,stable,half_life,floor", [(10, 100, 30.0, 0.0), (0, 50, 8.0, 0.1), (5, 0, 60.2, 0.02)])
def test_exponential_wsd_equals_its_formula(warmup, stable, half_life, floor):
    """MiniCPM (arXiv:2404.06395) Eq. 1 with f(s − T) = 0.5^((s − T)/half-life) (§6.2), floored at min_ratio;
    and the notes' form lr = max_lr · decay_factor^(step − stable_end) with decay_factor = 0.5^(1/half-life)."""
    start = warmup + stable
    factor = 0.5 ** (1.0 / half_life)
    ours = lrs(S.lambda_lr(opt(), "wsd_exponential", warmup_steps=warmup, stable_steps=stable,
                           half_life=half_life, min_ratio=floor), start + 400)
    for s, value in enumerate(ours.tolist()):
        if s < warmup:
            expected = s / warmup
        elif s < start:
            expected = 1.0
        else:
            expected = max(floor, 0.5 ** ((s - start) / half_life))
            assert max(floor, factor ** (s - start)) == pytest.approx(expected, rel=1e-12)
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), s
    assert S.wsd_exponential(start + round(half_life), warmup, stable, round(half_life)) == pytest.approx(0.5)


def test_exponential_half_life_reaches_the_end_ratio():
    for steps, ratio in [(200, 0.1), (37, 0.01), (1, 0.5)]:
        h = S.exponential_half_life(steps, ratio)
        assert S.wsd_exponential(10 + steps, 10, 0, h) == pytest.approx(ratio, rel=1e-12)
    assert S.exponential_half_life(5000, 0.5) == 5000  # the half-life itself


@pytest.mark.parametrize("call", [
    lambda: S.warmup_cosine(0, 10, 100, num_cycles=0.0), lambda: S.warmup_cosine(50, 10, 100, num_cycles=-1),
    lambda: S.warmup_cosine(50, 10, 100, num_cycles=float("inf")),
    lambda: S.wsd_exponential(0, 10, 10, half_life=0.0), lambda: S.wsd_exponential(0, 10, 10, 5.0, min_ratio=2.0),
    lambda: S.wsd_exponential(-1, 10, 10, 5.0), lambda: S.wsd_exponential(0, 10, 10, float("nan")),
    lambda: S.exponential_half_life(100, 0.0), lambda: S.exponential_half_life(0, 0.1),
    lambda: S.exponential_half_life(100, 1.0),
])
def test_schedule_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
