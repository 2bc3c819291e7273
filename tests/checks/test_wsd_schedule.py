"""check_wsd_schedule passes the notebook's solution and other correct answers, refuses copied answers,
lets the stub's NotImplementedError through, and fails typical mistakes (in the notebook's language); its
tolerance lies between the correct variants and the mistakes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import course_lib.schedules as cs
from classroom.checks.originality import CopiedAnswerError
from classroom.checks.wsd_schedule import WSD_ATOL, WSD_CASES, check_wsd_schedule, wsd_values

from ._helpers import _assert_between, assert_messages_in_both_languages, notebook_definitions, stub


def my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """WSD written from scratch."""
    w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
    if step < w:
        return r + (1 - r) * step / max(1, w)
    if step < w + s:
        return 1.0
    if step < w + s + d:
        p = (step - w - s) / max(1, d)
        f = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(p)}[decay_shape]
        return r + (1 - r) * f
    return r


def wsd_numpy(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """Another order of operations, with numpy: warmup as a lerp, progress from the end of the decay."""
    w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
    end = w + s + d
    if step < w:
        t = step / w
        return float((1 - t) * r + t)
    if step < w + s:
        return 1.0
    if step < end:
        p = 1.0 - (end - step) / d
        f = {"linear": (end - step) / d, "cosine": 0.5 + 0.5 * np.cos(np.pi * p), "1-sqrt": 1 - p ** 0.5}[decay_shape]
        return float(r + f * (1 - r))
    return float(r)


def wsd_float32(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """The same formulas on float32 torch tensors."""
    w, s, d = warmup_steps, stable_steps, decay_steps
    r = torch.tensor(min_ratio, dtype=torch.float32)
    if step < w:
        return r + (1 - r) * torch.tensor(step / w, dtype=torch.float32)
    if step < w + s:
        return torch.tensor(1.0)
    if step < w + s + d:
        p = torch.tensor((step - w - s) / d, dtype=torch.float32)
        f = {"linear": 1 - p, "cosine": 0.5 * (1 + torch.cos(math.pi * p)), "1-sqrt": 1 - torch.sqrt(p)}[decay_shape]
        return r + (1 - r) * f
    return r


CORRECT_WSD = {"from scratch": my_wsd, "numpy, other order": wsd_numpy, "float32 tensors": wsd_float32}


def wsd_variant(kind):
    def fn(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
        w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
        if step < w:
            if kind == "warmup_from_zero":
                return step / max(1, w)
            if kind == "warmup_off_by_one":
                return r + (1 - r) * (step + 1) / max(1, w)
            return r + (1 - r) * step / max(1, w)
        decay_start = w + s + (1 if kind == "decay_late" else 0) - (1 if kind == "decay_early" else 0)
        if step < decay_start:
            return 1.0
        if kind == "no_clamp" or step < w + s + d:
            length = {"progress_over_d_plus_1": d + 1, "progress_over_d_minus_1": max(1, d - 1)}.get(kind, d)
            progress = (step - decay_start) / max(1, length)
            if decay_shape == "linear" or kind == "always_linear":
                f = 1 - progress
            elif decay_shape == "cosine":
                f = 0.5 * (1 + math.cos(math.pi * progress))
            else:
                f = 1 - (progress if kind == "sqrt_shape_wrong" else math.sqrt(progress))
            if kind == "decay_to_zero":
                return f
            return r + (1 - r) * f
        if kind == "end_at_zero":
            return 0.0
        return r

    return fn


WSD_MISTAKES = ["warmup_from_zero", "warmup_off_by_one", "decay_late", "decay_early", "no_clamp", "always_linear",
                "sqrt_shape_wrong", "decay_to_zero", "end_at_zero", "progress_over_d_plus_1",
                "progress_over_d_minus_1"]


def wsd_crashes_on_zero_warmup(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    if step < warmup_steps or warmup_steps == 0:
        return min_ratio + (1 - min_ratio) * step / warmup_steps  # ZeroDivisionError when warmup_steps = 0
    return my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def wsd_key_error(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    return {"linear": my_wsd}[decay_shape](step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def test_check_wsd_passes_notebook_solution():
    check_wsd_schedule(notebook_definitions("07_lr_schedules", "wsd_schedule")["wsd_lr"], verbose=False)


@pytest.mark.parametrize("name", CORRECT_WSD)
def test_check_wsd_passes_correct_variants(name):
    check_wsd_schedule(CORRECT_WSD[name], verbose=False)


def test_check_wsd_fails_stub():
    with pytest.raises(NotImplementedError):
        check_wsd_schedule(stub, verbose=False)


@pytest.mark.parametrize("kind", WSD_MISTAKES)
def test_check_wsd_fails_wrong(kind):
    with pytest.raises(AssertionError):
        check_wsd_schedule(wsd_variant(kind), verbose=False)


@pytest.mark.parametrize("crash, name", [(wsd_crashes_on_zero_warmup, "ZeroDivisionError"),
                                         (wsd_key_error, "KeyError")])
def test_check_wsd_reports_any_crash_as_a_failed_check(crash, name):
    with pytest.raises(AssertionError, match=name) as err:
        check_wsd_schedule(crash, verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


def wsd_wrapper(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    return cs.wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def wsd_uses_decay_shape(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """Its own warmup and stable phase, but the decay from course_lib.schedules."""
    if step < warmup_steps + stable_steps:
        return my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)
    p = min(1.0, (step - warmup_steps - stable_steps) / decay_steps)
    return min_ratio + (1 - min_ratio) * cs.decay_shape(p, decay_shape)


@pytest.mark.parametrize("copied", [cs.wsd, wsd_wrapper, wsd_uses_decay_shape],
                         ids=["re-export", "wrapper", "calls decay_shape"])
def test_check_wsd_refuses_copies(copied):
    with pytest.raises(CopiedAnswerError):
        check_wsd_schedule(copied, verbose=False)


def test_check_wsd_messages_follow_the_notebook_language(monkeypatch):
    for wrong in (wsd_variant("decay_late"), wsd_variant("end_at_zero"), wsd_key_error):
        assert_messages_in_both_languages(monkeypatch, lambda w=wrong: check_wsd_schedule(w, verbose=False))


# ---- tolerances from measurement: recompute the checker's own statistic over correct variants and
# typical mistakes, and assert max(correct) < tolerance < min(mistake) (run with -s to see the numbers).


def _wsd_stat(fn) -> float:
    worst = 0.0
    for case in WSD_CASES:
        mine, ref = wsd_values(fn, case)
        worst = max(worst, max(abs(a - b) for a, b in zip(mine, ref)))
    return worst


def test_wsd_tolerance():
    correct = {"notebook": _wsd_stat(notebook_definitions("07_lr_schedules", "wsd_schedule")["wsd_lr"])}
    correct.update({name: _wsd_stat(fn) for name, fn in CORRECT_WSD.items()})
    mistakes = {kind: _wsd_stat(wsd_variant(kind)) for kind in WSD_MISTAKES}
    _assert_between("WSD: largest absolute difference", correct, mistakes, WSD_ATOL)
