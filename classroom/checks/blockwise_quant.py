"""Checker for the block-wise FP8 quantization exercise of notebook 05.

``check_blockwise_quant(quantize_fn, dequantize_fn=None)`` compares the student's block-wise quantization
(and dequantization, if given) with ``course_lib.fp8.quantize_blockwise`` / ``dequantize_blockwise``
on E4M3 and E5M2, square and ragged shapes, an outlier, an all-zero block and 1×128 tiles.

Every call into the student's code goes through ``checks.originality.call_student``: a copied answer
raises ``CopiedAnswerError``, ``NotImplementedError`` from an unfinished exercise passes through, and
any other crash becomes a ``StudentCodeError`` (an ``AssertionError``) that names it. The tolerances
were measured (the tests keep the measurement).
"""

from __future__ import annotations

import math

import torch

from course_lib.fp8 import dequantize_blockwise, quantize_blockwise
from ._common import max_relative_diff
from .i18n import tr
from .originality import StudentCodeError, call_student, refuse_reference
from .report import CheckReport

#: Fraction of q entries that may differ from the reference. Measured: correct variants (padding or a
#: loop over blocks, x · (1/scale) instead of x / scale, float64 arithmetic) differ in none (0) on the
#: checker's cases and on 20 more random tensors; the closest mistake (dividing in bfloat16) in 3.6% of a
#: case. The tolerance leaves room for the rare value that rounds the other way at an FP8 midpoint.
QUANT_MISMATCH_TOL = 5e-3
#: A differing q entry may be one FP8 step away at most: 2^-2 relative for E5M2 (2 mantissa bits),
#: 2^-3 for E4M3, or the smallest normal near zero.
QUANT_STEP_RTOL = 2.0 ** -2
#: Scales and dequantized values, relative to their largest entry. Measured: correct variants (amax ·
#: (1/fp8 max), float64, q / (1/scale)) reach at most 9.2e-8 (one float32 rounding); the closest mistakes
#: are 0.42 off (scales: amax without abs) and 1.0 (dequantized: one scale for every block).
QUANT_RTOL = 1e-6


def quant_mismatch(q, ref_q) -> float:
    """Fraction of entries of ``q`` that differ from ``ref_q`` (NaN counts as different)."""
    a, b = q.float(), ref_q.float()
    return float((~((a == b) | (a.isnan() & b.isnan()))).float().mean())


def _blockwise_cases():
    gen = torch.Generator().manual_seed(5)
    big = torch.randn(256, 384, generator=gen)
    big[7, 300] = 80.0  # an outlier in one block
    ragged = torch.randn(130, 200, generator=gen) * 3
    zero_block = torch.randn(256, 256, generator=gen)
    zero_block[:128, 128:] = 0.0
    tiles = torch.randn(4, 300, generator=gen) * torch.logspace(-2, 2, 4).unsqueeze(1)
    rect = torch.randn(64, 48, generator=gen) * torch.logspace(-1, 1, 48)
    return [
        (tr("256×384, outlier, 128×128, E4M3", "256×384, 이상값, 128×128, E4M3"), big, (128, 128),
         torch.float8_e4m3fn),
        (tr("130×200 ragged, 128×128, E4M3", "130×200 자투리, 128×128, E4M3"), ragged, (128, 128),
         torch.float8_e4m3fn),
        (tr("zero block, 128×128, E4M3", "0인 블록, 128×128, E4M3"), zero_block, (128, 128), torch.float8_e4m3fn),
        (tr("4×300 tiles 1×128, E4M3", "4×300 타일 1×128, E4M3"), tiles, (1, 128), torch.float8_e4m3fn),
        (tr("64×48, 16×32 blocks, E5M2", "64×48, 16×32 블록, E5M2"), rect, (16, 32), torch.float8_e5m2),
        (tr("130×200 ragged, 1×128, E5M2", "130×200 자투리, 1×128, E5M2"), ragged, (1, 128), torch.float8_e5m2),
    ]


def blockwise_errors(quantize_fn, dequantize_fn=None) -> list[dict]:
    """Per case of the checker: the statistics its tolerances apply to (``scales``, ``mismatch``,
    ``step``: the largest relative distance of a differing q entry, ``dequantized``), or
    ``error``: a message when the output has the wrong type, dtype or shape. Student code runs
    through ``call_student``."""
    out = []
    ex = "blockwise_quant"
    for name, x, block, dtype in _blockwise_cases():
        ref_q, ref_s = quantize_blockwise(x, block, dtype)
        row = dict(name=name, block=block, dtype=dtype, ref_scales=ref_s)
        out.append(row)
        result = call_student(ex, f"quantize_blockwise(x of shape {tuple(x.shape)}, block={block}, dtype={dtype})",
                              quantize_fn, x.clone(), block=block, dtype=dtype,
                              crash_hint=tr("Partial edge blocks must work (their amax is taken over the elements "
                                            "that exist).",
                                            "가장자리의 덜 찬 블록도 처리해야 합니다(있는 원소들로 amax를 구합니다)."))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            row["error"] = tr(f"quantize must return (q, scales), got {type(result).__name__}",
                              f"quantize는 (q, scales)를 돌려줘야 하는데 {type(result).__name__}을(를) 돌려줬습니다")
            continue
        q, scales = result
        if not isinstance(q, torch.Tensor) or q.dtype != dtype or q.shape != x.shape:
            row["error"] = tr(f"q must be a tensor of dtype {dtype} and shape {tuple(x.shape)}, got "
                              f"{getattr(q, 'dtype', type(q))} {tuple(getattr(q, 'shape', ()))}",
                              f"q는 dtype {dtype}, 모양 {tuple(x.shape)}인 텐서여야 하는데 "
                              f"{getattr(q, 'dtype', type(q))} {tuple(getattr(q, 'shape', ()))}입니다")
            continue
        row["scales_value"] = scales
        row["scales"] = max_relative_diff(scales, ref_s) if torch.is_tensor(scales) else math.inf
        qf, rf = q.float(), ref_q.float()
        row["mismatch"] = quant_mismatch(q, ref_q)
        differ = qf != rf
        tiny = float(torch.finfo(dtype).smallest_normal)
        row["step"] = float(((qf - rf).abs()[differ] / rf.abs()[differ].clamp(min=tiny)).max()) \
            if bool(differ.any()) else 0.0
        if dequantize_fn is not None:
            back = call_student(ex, f"dequantize_blockwise(q of shape {tuple(x.shape)}, block={block})",
                                dequantize_fn, ref_q, ref_s, block=block)
            row["dequantized_value"] = back
            row["ref_dequantized"] = dequantize_blockwise(ref_q, ref_s, block)
            row["dequantized"] = max_relative_diff(back, row["ref_dequantized"]) if torch.is_tensor(back) else math.inf
    return out


def check_blockwise_quant(quantize_fn, dequantize_fn=None, verbose: bool = True) -> None:
    """Compare ``quantize_fn(x, block, dtype) -> (q, scales)`` (and ``dequantize_fn(q, scales, block)``
    if given) with ``course_lib.fp8.quantize_blockwise`` / ``dequantize_blockwise``.

    Contract: ``scales`` has shape (ceil(R/br), ceil(C/bc)), scale = max(amax of block, 1e-12) / fp8 max;
    ``q = (x / scale).clamp(±fp8 max)`` cast to ``dtype``; edge blocks may be partial. Tolerances:
    ``QUANT_RTOL``, ``QUANT_MISMATCH_TOL``, ``QUANT_STEP_RTOL``.
    """
    refuse_reference((quantize_fn,) if dequantize_fn is None else (quantize_fn, dequantize_fn), "blockwise_quant")
    report = CheckReport(tr("block-wise quantization", "블록 단위 양자화"), verbose)
    try:
        rows = blockwise_errors(quantize_fn, dequantize_fn)
    except StudentCodeError as err:
        report.fail(str(err))
        report.finish()
        return
    for row in rows:
        name, block, dtype, ref_s = row["name"], row["block"], row["dtype"], row["ref_scales"]
        if "error" in row:
            report.fail(f"{name}: {row['error']}")
            continue
        fmax = torch.finfo(dtype).max
        if not report.compare(tr(f"{name}: scales", f"{name}: 스케일"), row["scales_value"], ref_s,
                              atol=QUANT_RTOL * float(ref_s.abs().max()),
                              hint=tr(f"expected shape {tuple(ref_s.shape)} = (ceil(rows/{block[0]}), ceil(cols/"
                                      f"{block[1]})) and scale = amax / {fmax:g} per block, amax = the largest |x| "
                                      "of the block (an all-zero block uses amax = 1e-12).",
                                      f"모양은 {tuple(ref_s.shape)} = (ceil(rows/{block[0]}), ceil(cols/{block[1]}))"
                                      f"이고 블록마다 scale = amax / {fmax:g}, amax는 블록 안에서 가장 큰 |x|여야 "
                                      "합니다(모두 0인 블록은 amax = 1e-12).")):
            continue
        mismatch, step = row["mismatch"], row["step"]
        if math.isnan(step) or mismatch > QUANT_MISMATCH_TOL or step > QUANT_STEP_RTOL:
            report.fail(tr(f"{name}: {mismatch:.2%} of q differ from the reference (at most "
                           f"{QUANT_MISMATCH_TOL:.1%}, each by one FP8 step, may differ by rounding). "
                           "q = x / scale of its block, clamped to ±fp8 max, then cast; no NaN for a zero block.",
                           f"{name}: q의 {mismatch:.2%}가 참조 구현과 다릅니다(반올림 차이로는 최대 "
                           f"{QUANT_MISMATCH_TOL:.1%}까지, 그것도 FP8 한 칸씩만 다를 수 있습니다). q = x / 자기 블록의 "
                           "스케일을 ±fp8 최댓값으로 잘라 낸 뒤 캐스팅합니다. 0인 블록에서 NaN이 나오면 안 됩니다."))
        elif verbose:
            print(tr(f"{name + ': q':<28s} | exact: {str(mismatch == 0):5s} | close: True  | differing: {mismatch:.2%}",
                     f"{name + ': q':<28s} | 정확히 일치: {str(mismatch == 0):5s} | 허용 오차 안: True  | "
                     f"다른 비율: {mismatch:.2%}"))
        if "dequantized_value" in row:
            ref_back = row["ref_dequantized"]
            report.compare(tr(f"{name}: dequantized", f"{name}: 역양자화"), row["dequantized_value"], ref_back,
                           atol=QUANT_RTOL * float(ref_back.abs().max()),
                           hint=tr("dequantize multiplies q (as fp32) by the scale of its block.",
                                   "역양자화는 q(fp32로 바꾼 값)에 자기 블록의 스케일을 곱합니다."))
    report.finish()
