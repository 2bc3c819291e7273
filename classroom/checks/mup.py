"""Checker for the μP exercise of notebook 06.

``check_mup(settings_fn, attention_scale_fn)`` compares the student's μP settings (init std, LR multiplier,
output multiplier per role) and attention scale with ``course_lib.mup``, then a model built with them with
the reference μP model.

Every call into the student's code goes through ``checks.originality.call_student``: a copied
answer raises ``CopiedAnswerError``, an unfinished one ``NotImplementedError``, any other crash fails the
check with its name. The tolerances were measured (the tests keep the measurement).
"""

from __future__ import annotations

import math

import torch

from ._common import max_relative_diff
from .i18n import tr
from .originality import StudentCodeError, call_student, refuse_reference
from .report import CheckReport

#: Relative error of each μP number (init std, LR multiplier, output multiplier, attention scale) and of
#: the logits and LRs of a model built with them (relative to their largest entry). Measured: correct
#: variants (fan_in ** -0.5, √m / √fan_in, the numbers in float32) reach at most 1.7e-8; the closest
#: mistake (the readout initialised with 1/√fan_in) 0.65.
MUP_RTOL = 1e-5

MUP_SETTINGS_CASES = [(role, fan_in, mult) for role in ("embedding", "hidden", "readout")
                      for fan_in, mult in ((32, 1.0), (64, 2.0), (256, 8.0), (512, 4.0))]
MUP_ATTENTION_CASES = [(8, 8), (16, 8), (64, 8), (32, 16)]


def mup_errors(settings_fn, attention_scale_fn) -> dict:
    """The statistics ``MUP_RTOL`` applies to: ``settings`` {(role, fan_in, m): relative error of the
    triple, or None if it is not 3 numbers}, ``attention`` {(d, base): relative error}."""
    from course_lib.mup import mup_attention_scale, mup_param_settings

    settings, attention = {}, {}
    for role, fan_in, mult in MUP_SETTINGS_CASES:
        got = call_student("mup", f"mup_settings({role!r}, {fan_in}, {mult})", settings_fn, role, fan_in, mult)
        try:
            values = [float(v) for v in got]
        except (TypeError, ValueError):
            values = []
        ref = mup_param_settings(role, fan_in, mult)
        settings[(role, fan_in, mult)] = (max(abs(a - b) / abs(b) for a, b in zip(values, ref))
                                          if len(values) == 3 else None, got)
    for head_dim, base in MUP_ATTENTION_CASES:
        got = call_student("mup", f"mup_attention({head_dim}, {base})", attention_scale_fn, head_dim, base)
        ref = mup_attention_scale(head_dim, base)
        try:
            attention[(head_dim, base)] = (abs(float(got) - ref) / ref, got)
        except (TypeError, ValueError):
            attention[(head_dim, base)] = (math.inf, got)
    return dict(settings=settings, attention=attention)


def mup_model_errors(settings_fn, attention_scale_fn) -> list[dict]:
    """Models of width 16 and 64 built with the student's functions vs the reference μP model: the
    relative error of their logits and of their param-group LRs (the statistics of ``MUP_RTOL``)."""
    from course_lib.mup import WidthScalableTransformer

    x = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    rows = []
    for width in (16, 64):
        torch.manual_seed(0)
        mine = call_student("mup", tr(f"building a width-{width} model with your functions",
                                      f"여러분의 함수로 폭 {width} 모델 만들기"),
                            WidthScalableTransformer, 64, width, 16, depth=1, n_heads=2, settings_fn=settings_fn,
                            attention_scale_fn=attention_scale_fn)
        torch.manual_seed(0)
        ref = WidthScalableTransformer(64, width, 16, depth=1, n_heads=2, parametrization="mup")
        with torch.no_grad():
            logits, ref_logits = mine(x), ref(x)
        lrs = {n: g["lr"] for g in mine.param_groups(1e-2) for n in g["names"]}
        ref_lrs = {n: g["lr"] for g in ref.param_groups(1e-2) for n in g["names"]}
        lrs, ref_lrs = (torch.tensor([d[n] for n in sorted(d)], dtype=torch.float64) for d in (lrs, ref_lrs))
        rows.append(dict(width=width, logits=(logits, ref_logits), lrs=(lrs, ref_lrs),
                         logits_error=max_relative_diff(logits, ref_logits), lrs_error=max_relative_diff(lrs, ref_lrs)))
    return rows


_MUP_HINTS = {
    "embedding": ("embeddings are 'input weights': constant init std 1 and an unscaled Adam LR.",
                  "임베딩은 '입력 가중치'입니다. 초기화 표준편차는 상수 1, Adam 학습률은 그대로입니다."),
    "hidden": ("hidden matrices: init std 1/√fan_in, Adam LR × 1/width_mult (Adam's update is Θ(1) per entry, "
               "and fan_in of them add up).",
               "은닉 행렬: 초기화 표준편차 1/√fan_in, Adam 학습률 × 1/width_mult(Adam의 업데이트는 원소마다 Θ(1)이고 "
               "fan_in개가 더해집니다)."),
    "readout": ("the readout keeps the base model's init (std = √(width_mult/fan_in) = 1/√base_fan_in), an unscaled "
                "LR, and multiplies its output by 1/width_mult.",
                "리드아웃은 기준 모델의 초기화(표준편차 = √(width_mult/fan_in) = 1/√base_fan_in)와 그대로인 학습률을 "
                "쓰고, 출력에 1/width_mult를 곱합니다."),
}


def check_mup(settings_fn, attention_scale_fn, verbose: bool = True) -> None:
    """``settings_fn(role, fan_in, width_mult) -> (init_std, lr_multiplier, forward_multiplier)`` and
    ``attention_scale_fn(head_dim, base_head_dim)`` against ``course_lib.mup``'s μP for Adam (which
    the tests check against Microsoft's ``mup``), then a model built with them against the
    reference model: same initial weights, same logits, same optimizer LRs. Tolerance: ``MUP_RTOL``."""
    from course_lib.mup import mup_attention_scale, mup_param_settings

    refuse_reference((settings_fn, attention_scale_fn), "mup")
    report = CheckReport(tr("μP init / LR multipliers", "μP 초기화 / 학습률 배수"), verbose)
    try:
        errors = mup_errors(settings_fn, attention_scale_fn)
    except StudentCodeError as err:
        report.fail(str(err))
        report.finish()
        return
    for (role, fan_in, mult), (error, got) in errors["settings"].items():
        if error is None:
            report.fail(tr(f"settings_fn({role!r}, {fan_in}, {mult}) must return 3 numbers, got {got!r}",
                           f"settings_fn({role!r}, {fan_in}, {mult})은(는) 숫자 3개를 돌려줘야 하는데 {got!r}을(를) "
                           "돌려줬습니다"))
            continue
        ref = mup_param_settings(role, fan_in, mult)
        report.compare(f"{role} fan_in={fan_in} m={mult:g}", torch.tensor([float(v) for v in got], dtype=torch.float64),
                       torch.tensor(ref, dtype=torch.float64), rtol=MUP_RTOL, hint=tr(*_MUP_HINTS[role]))
    for (head_dim, base), (error, got) in errors["attention"].items():
        if not math.isfinite(error):
            report.fail(tr(f"attention_scale_fn({head_dim}, {base}) must return a number, got {got!r}",
                           f"attention_scale_fn({head_dim}, {base})은(는) 숫자를 돌려줘야 하는데 {got!r}입니다"))
            continue
        report.compare(tr(f"attention scale d={head_dim} base={base}", f"어텐션 스케일 d={head_dim} base={base}"),
                       float(got), mup_attention_scale(head_dim, base), rtol=MUP_RTOL,
                       hint=tr("μP scales attention logits by 1/d (not 1/√d), times √base_head_dim so that it "
                               "equals 1/√d at the base width.",
                               "μP는 어텐션 로짓을 1/√d가 아니라 1/d에 비례하게 스케일하고, 기준 폭에서 1/√d와 "
                               "같아지도록 √base_head_dim을 곱합니다."))
    if not report.failures:
        try:
            rows = mup_model_errors(settings_fn, attention_scale_fn)
        except StudentCodeError as err:
            report.fail(str(err))
            rows = []
        for row in rows:
            width = row["width"]
            logits, ref_logits = row["logits"]
            report.compare(tr(f"logits at width {width}", f"폭 {width}의 로짓"), logits, ref_logits,
                           atol=MUP_RTOL * float(ref_logits.abs().max()))
            lrs, ref_lrs = row["lrs"]
            report.compare(tr(f"param-group LRs at width {width}", f"폭 {width}의 그룹별 학습률"), lrs, ref_lrs,
                           atol=MUP_RTOL * float(ref_lrs.abs().max()))
    report.finish()
