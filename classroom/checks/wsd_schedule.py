"""Checker for the WSD schedule exercise of notebook 07.

``check_wsd_schedule(fn)`` compares the student's warmup-stable-decay LR multiplier with
``transformers.get_wsd_schedule`` at every step of several runs, 10 steps past the end included.

Every call into the student's code goes through ``checks.originality.call_student``: a copied
answer raises ``CopiedAnswerError``, an unfinished one ``NotImplementedError``, any other crash fails the
check with its name. The tolerances were measured (the tests keep the measurement).
"""

from __future__ import annotations

import torch

from .i18n import tr
from .originality import StudentCodeError, call_student, refuse_reference
from .report import CheckReport

WSD_CASES = [
    dict(warmup_steps=10, stable_steps=50, decay_steps=20, min_ratio=0.1, decay_shape="linear"),
    dict(warmup_steps=5, stable_steps=20, decay_steps=13, min_ratio=0.0, decay_shape="linear"),
    dict(warmup_steps=8, stable_steps=30, decay_steps=17, min_ratio=0.1, decay_shape="cosine"),
    dict(warmup_steps=4, stable_steps=12, decay_steps=25, min_ratio=0.05, decay_shape="1-sqrt"),
    dict(warmup_steps=0, stable_steps=10, decay_steps=10, min_ratio=0.2, decay_shape="linear"),
    dict(warmup_steps=7, stable_steps=0, decay_steps=9, min_ratio=0.1, decay_shape="cosine"),
]


#: Largest absolute difference of the multiplier at any step. Measured: correct variants (numpy instead
#: of math, warmup as a lerp, progress counted from the end, p ** 0.5, float32 tensors) reach at most
#: 8.3e-8 (float32; 2.2e-16 in float64); the closest mistake (decay progress over decay_steps + 1) 8.6e-2.
WSD_ATOL = 1e-6


def _reference_wsd(case: dict, steps: int) -> list[float]:
    from transformers import get_wsd_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_wsd_schedule(opt, num_warmup_steps=case["warmup_steps"], num_decay_steps=case["decay_steps"],
                             num_stable_steps=case["stable_steps"], min_lr_ratio=case["min_ratio"],
                             warmup_type="linear", decay_type=case["decay_shape"])
    return [sched.lr_lambdas[0](s) for s in range(steps)]


def wsd_values(fn, case: dict) -> tuple[list[float], list[float]]:
    """The student's multipliers and the reference's at every step of one case (10 past the end);
    ``WSD_ATOL`` applies to their largest absolute difference."""
    end = case["warmup_steps"] + case["stable_steps"] + case["decay_steps"]
    steps = range(end + 10)
    ref = _reference_wsd(case, len(steps))
    mine = call_student("wsd_schedule", f"wsd_lr(step, **{case})",
                        lambda: [float(fn(s, **case)) for s in steps])
    return mine, ref


def check_wsd_schedule(fn, verbose: bool = True) -> None:
    """``fn(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)`` (the LR multiplier)
    against ``transformers.get_wsd_schedule(warmup_type="linear")`` at every step of several runs,
    including 10 steps past the end. Tolerance: ``WSD_ATOL``."""
    refuse_reference(fn, "wsd_schedule")
    report = CheckReport(tr("WSD schedule", "WSD 스케줄"), verbose)
    for case in WSD_CASES:
        try:
            mine, ref = wsd_values(fn, case)
        except StudentCodeError as err:
            report.fail(str(err))
            continue
        end = case["warmup_steps"] + case["stable_steps"] + case["decay_steps"]
        name = f"w{case['warmup_steps']}/s{case['stable_steps']}/d{case['decay_steps']} {case['decay_shape']}"
        bad = next((s for s in range(len(ref)) if not abs(mine[s] - ref[s]) <= WSD_ATOL), None)
        hint = ""
        if bad is not None:
            w, st = case["warmup_steps"], case["stable_steps"]
            phase = (tr("warmup (it starts at min_ratio at step 0 and reaches 1 at step warmup_steps)",
                        "워밍업(스텝 0에서 min_ratio로 시작해 스텝 warmup_steps에서 1에 도달)") if bad < w else
                     tr("stable phase (1.0 for steps warmup_steps … warmup_steps+stable_steps−1)",
                        "유지 구간(스텝 warmup_steps … warmup_steps+stable_steps−1에서 1.0)") if bad < w + st else
                     tr("decay (progress = (step − warmup − stable)/decay_steps; min_ratio + (1 − min_ratio)·shape)",
                        "감쇠 구간(progress = (step − warmup − stable)/decay_steps, min_ratio + (1 − min_ratio)·shape)")
                     if bad < end else tr("after the end (stay at min_ratio)", "끝난 뒤(min_ratio 유지)"))
            hint = tr(f"First wrong value at step {bad}: {mine[bad]:.6f} instead of {ref[bad]:.6f}, in the {phase}.",
                      f"스텝 {bad}에서 처음 틀립니다. {ref[bad]:.6f}이어야 하는데 {mine[bad]:.6f}입니다. "
                      f"구간: {phase}.")
        report.compare(name, torch.tensor(mine, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64),
                       atol=WSD_ATOL, hint=hint)
    report.finish()
