"""Learning-rate schedules as plain functions of the step, plus ``LambdaLR`` wrappers.

Convention (the same as ``torch.optim.lr_scheduler.LambdaLR`` and ``transformers``):

- every function returns a **multiplier** of the peak learning rate, not an absolute LR;
  the LR used is ``peak_lr * multiplier(step)``;
- ``step`` counts optimizer steps already taken. ``LambdaLR`` evaluates ``lr_lambda(0)`` when it is
  constructed, so the very first ``optimizer.step()`` uses ``multiplier(0)``, and every
  ``scheduler.step()`` after ``optimizer.step()`` moves to the next value. With a linear warmup from
  0, the first update therefore uses LR **0** (``transformers`` does the same); ``wsd`` warms up from
  ``min_ratio`` instead, as ``transformers.get_wsd_schedule`` does.

References: Loshchilov & Hutter 2017 (SGDR, cosine), Vaswani et al. 2017 (inverse square root),
Hägele et al. 2024 and Hu et al. 2024 (MiniCPM) for warmup–stable–decay (WSD).
"""

from __future__ import annotations

import math
from functools import partial

import torch

DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def _check_steps(**steps) -> None:
    for name, value in steps.items():
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be an integer ≥ 0, got {value!r}")


def _check_ratio(min_ratio: float) -> None:
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")


def decay_shape(progress: float, shape: str) -> float:
    """Fraction of the way from 1 down to 0 after ``progress`` ∈ [0, 1] of a decay phase."""
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(progress)
    raise ValueError(f"unknown decay shape {shape!r}; choose one of {', '.join(DECAY_SHAPES)}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Linear warmup 0 → 1 over ``warmup_steps``, then a half cosine from 1 to ``min_ratio`` at
    ``total_steps``; stays at ``min_ratio`` after that. Equals
    ``transformers.get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_ratio)`` for
    ``step ≤ total_steps`` (transformers keeps following the cosine back up after the end), except
    when ``warmup_steps == total_steps``: there transformers returns 1.0 at ``total_steps`` (its
    decay progress is 0/max(1, 0)), this function ``min_ratio`` as at the end of every other run."""
    return _warmup_then_decay(step, warmup_steps, total_steps, min_ratio, "cosine")


def _warmup_then_decay(step: int, warmup_steps: int, total_steps: int, min_ratio: float, shape: str) -> float:
    """Linear warmup 0 → 1, then a ``shape`` decay from 1 to ``min_ratio`` at ``total_steps`` (and after)."""
    _check_steps(step=step, warmup_steps=warmup_steps, total_steps=total_steps)
    _check_ratio(min_ratio)
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps={warmup_steps} is longer than total_steps={total_steps}")
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    # At and after total_steps the decay is complete, also when warmup fills the whole run.
    progress = 1.0 if step >= total_steps else (step - warmup_steps) / (total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * decay_shape(progress, shape)


def wsd(step: int, warmup_steps: int, stable_steps: int, decay_steps: int, min_ratio: float = 0.0,
        shape: str = "linear") -> float:
    """Warmup–stable–decay: linear warmup from ``min_ratio`` to 1, ``stable_steps`` at 1, then a
    ``shape`` decay ("linear", "cosine" or "1-sqrt") to ``min_ratio``, and ``min_ratio`` afterwards.
    Equals ``transformers.get_wsd_schedule(warmup_type="linear", decay_type=shape)`` at every step."""
    _check_steps(step=step, warmup_steps=warmup_steps, stable_steps=stable_steps, decay_steps=decay_steps)
    _check_ratio(min_ratio)
    decay_shape(0.0, shape)  # validate the name at every step
    if step < warmup_steps:
        return min_ratio + (1.0 - min_ratio) * step / max(1, warmup_steps)
    if step < warmup_steps + stable_steps:
        return 1.0
    if step < warmup_steps + stable_steps + decay_steps:
        progress = (step - warmup_steps - stable_steps) / max(1, decay_steps)
        return min_ratio + (1.0 - min_ratio) * decay_shape(progress, shape)
    return min_ratio


def inverse_sqrt(step: int, warmup_steps: int, timescale: int | None = None) -> float:
    """Linear warmup 0 → 1, then ``1 / sqrt((step + timescale - warmup_steps) / timescale)``
    (``timescale`` defaults to ``warmup_steps``, so it is 1 at the end of warmup and ∝ 1/√step).
    Equals ``transformers.get_inverse_sqrt_schedule``."""
    _check_steps(step=step, warmup_steps=warmup_steps)
    if timescale is None:
        timescale = warmup_steps or 10_000
    if timescale < 1:
        raise ValueError(f"timescale must be ≥ 1, got {timescale}")
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return 1.0 / math.sqrt((step + timescale - warmup_steps) / timescale)


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Linear warmup 0 → 1, then linear decay to ``min_ratio`` at ``total_steps`` (and after).
    With ``min_ratio=0`` equals ``transformers.get_linear_schedule_with_warmup``."""
    return _warmup_then_decay(step, warmup_steps, total_steps, min_ratio, "linear")


def sgdr(step: int, period: int, period_mult: int = 1, min_ratio: float = 0.0) -> float:
    """Cosine annealing with warm restarts (SGDR): cosine from 1 to ``min_ratio`` over ``period``
    steps, then restart with a period ``period_mult`` times longer. Matches
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=period, T_mult=period_mult,
    eta_min=min_ratio * lr)`` divided by the peak LR."""
    _check_steps(step=step)
    _check_ratio(min_ratio)
    if period < 1 or int(period_mult) != period_mult or period_mult < 1:
        raise ValueError(f"need period ≥ 1 and an integer period_mult ≥ 1, got {period}, {period_mult}")
    t, length = step, period
    while t >= length:
        t -= length
        length *= period_mult
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t / length))


SCHEDULES = {
    "warmup_cosine": warmup_cosine,
    "wsd": wsd,
    "inverse_sqrt": inverse_sqrt,
    "linear": linear_warmup_decay,
    "sgdr": sgdr,
}


def lambda_lr(optimizer: torch.optim.Optimizer, schedule, last_epoch: int = -1, **kwargs):
    """``LambdaLR(optimizer, lambda step: schedule(step, **kwargs))``; ``schedule`` is a function
    above or its name. The LR becomes ``peak × schedule(0)`` as soon as this is constructed."""
    fn = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    if not callable(fn):
        raise ValueError(f"schedule must be a function or one of {sorted(SCHEDULES)}, got {schedule!r}")
    fn(0, **kwargs)  # fail now, not at the first step, if the arguments are wrong
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(fn, **kwargs), last_epoch=last_epoch)


def schedule_values(schedule, steps: int, **kwargs) -> list[float]:
    """``[schedule(s, **kwargs) for s in range(steps)]`` — handy for plots and tests."""
    fn = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    return [fn(s, **kwargs) for s in range(steps)]


def lrs_from_scheduler(scheduler, steps: int) -> list[float]:
    """The LR of param group 0 at steps 0..steps-1, stepping a real scheduler (and a no-op optimizer
    step before each scheduler step, so torch does not warn about the order)."""
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out
