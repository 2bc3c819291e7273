"""check_blockwise_quant passes the notebook's solution and code written from scratch, refuses copied
answers, lets the stub's NotImplementedError through, and fails typical wrong answers (in the notebook's
language); its tolerances lie between the correct variants and the mistakes."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

import course_lib.fp8 as fp8
from classroom.checks.blockwise_quant import (QUANT_MISMATCH_TOL, QUANT_RTOL, QUANT_STEP_RTOL, blockwise_errors,
                                              check_blockwise_quant, quant_mismatch)
from classroom.checks.originality import CopiedAnswerError
from course_lib.fp8 import quantize_blockwise

from ._helpers import _assert_between, assert_messages_in_both_languages, notebook_definitions, stub


def _fp8max(dtype):
    return torch.finfo(dtype).max


def _expand(scales, shape, block):
    return scales.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)[: shape[0], : shape[1]]


def _amax_blocks(x, block, floor=False, absolute=True):
    br, bc = block
    r, c = x.shape
    nr, nc = (r // br, c // bc) if floor else (-(-r // br), -(-c // bc))
    v = x.abs() if absolute else x
    xp = F.pad(v, (0, max(nc * bc - c, 0), 0, max(nr * br - r, 0)))[: nr * br, : nc * bc]
    return xp.reshape(nr, br, nc, bc).amax(dim=(1, 3))


def my_quantize(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    """Block-wise quantization written from scratch."""
    scales = _amax_blocks(x.float(), block).clamp(min=1e-12) / _fp8max(dtype)
    q = (x.float() / _expand(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype)).to(dtype)
    return q, scales


def my_dequantize(q, scales, block=(128, 128)):
    return q.float() * _expand(scales, q.shape, block)


def one_scale(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    amax = _amax_blocks(x, block)
    scales = torch.full_like(amax, float(x.abs().max().clamp(min=1e-12)) / _fp8max(dtype))
    return (x / _expand(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype)).to(dtype), scales


def scale_is_amax(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block).clamp(min=1e-12)
    return (x / _expand(scales, x.shape, block)).to(dtype), scales


def no_zero_clamp(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block) / _fp8max(dtype)
    return (x / _expand(scales, x.shape, block)).to(dtype), scales


def amax_without_abs(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block, absolute=False).clamp(min=1e-12) / _fp8max(dtype)
    return (x / _expand(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype)).to(dtype), scales


def transposed_blocks(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    q, s = my_quantize(x.t(), block, dtype)
    return q.t().contiguous(), s.t()


def rejects_ragged(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    if x.shape[0] % block[0] or x.shape[1] % block[1]:
        raise ValueError(f"shape {tuple(x.shape)} is not a multiple of {block}")
    return my_quantize(x, block, dtype)


def multiplies(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block).clamp(min=1e-12) / _fp8max(dtype)
    q = (x * _expand(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype))
    return q.to(dtype), scales


def divides_in_bfloat16(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block).clamp(min=1e-12) / _fp8max(dtype)
    q = (x.bfloat16() / _expand(scales, x.shape, block).bfloat16()).float()
    return q.clamp(-_fp8max(dtype), _fp8max(dtype)).to(dtype), scales


def drops_edge_blocks(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block, floor=True).clamp(min=1e-12) / _fp8max(dtype)
    full = F.pad(scales, (0, 1, 0, 1), value=1.0)
    return (x / _expand(full, x.shape, block)).clamp(-448, 448).to(dtype), scales


def swapped_block_arg(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    return my_quantize(x, (block[1], block[0]), dtype)


def returns_fp32(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    q, s = my_quantize(x, block, dtype)
    return q.float(), s


WRONG_QUANT = [one_scale, scale_is_amax, no_zero_clamp, amax_without_abs, transposed_blocks, rejects_ragged,
               multiplies, divides_in_bfloat16, drops_edge_blocks, swapped_block_arg, returns_fp32]


def deq_divides(q, scales, block=(128, 128)):
    return q.float() / _expand(scales, q.shape, block)


def deq_ignores_blocks(q, scales, block=(128, 128)):
    return q.float() * scales.flatten()[0]


def test_blockwise_checker_passes_notebook_solution():
    ns = notebook_definitions("05_fp8", "blockwise_quant")
    check_blockwise_quant(ns["quantize_blockwise"], ns["dequantize_blockwise"], verbose=False)


def test_blockwise_checker_passes_code_written_from_scratch():
    check_blockwise_quant(my_quantize, my_dequantize, verbose=False)


def test_blockwise_checker_stub_fails():
    with pytest.raises(NotImplementedError):
        check_blockwise_quant(stub, verbose=False)
    with pytest.raises(NotImplementedError):
        check_blockwise_quant(my_quantize, stub, verbose=False)


@pytest.mark.parametrize("wrong", WRONG_QUANT, ids=lambda f: f.__name__)
def test_blockwise_checker_catches(wrong):
    with pytest.raises(AssertionError) as err:
        check_blockwise_quant(wrong, verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


@pytest.mark.parametrize("wrong", [deq_divides, deq_ignores_blocks], ids=lambda f: f.__name__)
def test_blockwise_checker_catches_dequantize(wrong):
    with pytest.raises(AssertionError):
        check_blockwise_quant(my_quantize, wrong, verbose=False)


def wraps_reference(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    return fp8.quantize_blockwise(x, block, dtype)


def deq_wraps_reference(q, scales, block=(128, 128)):
    return fp8.dequantize_blockwise(q, scales, block)


def uses_reference_expand(q, scales, block=(128, 128)):
    return q.float() * fp8.expand_block_scales(scales, q.shape, block)


@pytest.mark.parametrize("quantize, dequantize", [
    (fp8.quantize_blockwise, None),  # quantize_blockwise = course_lib.fp8.quantize_blockwise
    (fp8.quantize_blockwise, fp8.dequantize_blockwise),
    (wraps_reference, None),
    (my_quantize, fp8.dequantize_blockwise),
    (my_quantize, deq_wraps_reference),
    (my_quantize, uses_reference_expand),
], ids=["re-export", "both re-exported", "wrapper", "dequantize re-exported", "dequantize wrapper",
        "calls expand_block_scales"])
def test_blockwise_checker_refuses_copies(quantize, dequantize):
    with pytest.raises(CopiedAnswerError):
        check_blockwise_quant(quantize, dequantize, verbose=False)


def test_blockwise_failure_message_has_hint():
    with pytest.raises(AssertionError, match="amax"):
        check_blockwise_quant(scale_is_amax, verbose=False)
    with pytest.raises(AssertionError, match="ValueError"):
        check_blockwise_quant(rejects_ragged, verbose=False)


def test_blockwise_messages_follow_the_notebook_language(monkeypatch):
    for wrong in (scale_is_amax, multiplies, rejects_ragged, returns_fp32):
        assert_messages_in_both_languages(monkeypatch, lambda w=wrong: check_blockwise_quant(w, verbose=False))


# ---- tolerances from measurement: recompute the checker's own statistic over correct variants and
# typical mistakes, and assert max(correct) < tolerance < min(mistake) (run with -s to see the numbers).


F8 = (torch.float8_e4m3fn, torch.float8_e5m2)


def quantize_loop(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    """A loop over blocks, slicing instead of padding."""
    br, bc = block
    fmax = torch.finfo(dtype).max
    nr, nc = -(-x.shape[0] // br), -(-x.shape[1] // bc)
    scales = torch.empty(nr, nc)
    q = torch.empty(x.shape, dtype=dtype)
    for i in range(nr):
        for j in range(nc):
            tile = x[i * br:(i + 1) * br, j * bc:(j + 1) * bc].float()
            scales[i, j] = max(float(tile.abs().max()), 1e-12) / fmax
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = (tile / scales[i, j]).clamp(-fmax, fmax).to(dtype)
    return q, scales


def quantize_reciprocal(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    """x · (1/scale), and scale = amax · (1/fp8 max)."""
    fmax = torch.finfo(dtype).max
    scales = _amax_blocks(x.float(), block).clamp(min=1e-12) * (1.0 / fmax)
    q = (x.float() * _expand(1.0 / scales, x.shape, block)).clamp(-fmax, fmax).to(dtype)
    return q, scales


def quantize_float64(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    """Everything in float64; the scales stored as float32."""
    fmax = torch.finfo(dtype).max
    scales = _amax_blocks(x.double(), block).clamp(min=1e-12) / fmax
    q = (x.double() / _expand(scales, x.shape, block)).clamp(-fmax, fmax).to(dtype)
    return q, scales.float()


def dequantize_float64(q, scales, block=(128, 128)):
    return (q.double() * _expand(scales.double(), q.shape, block)).float()


def dequantize_divide_reciprocal(q, scales, block=(128, 128)):
    return q.float() / _expand(1.0 / scales, q.shape, block)


@functools.cache
def _correct_quantizers():
    ns = notebook_definitions("05_fp8", "blockwise_quant")
    return {"notebook": (ns["quantize_blockwise"], ns["dequantize_blockwise"]),
            "from scratch": (my_quantize, my_dequantize),
            "loop, slicing": (quantize_loop, dequantize_float64),
            "reciprocal": (quantize_reciprocal, dequantize_divide_reciprocal),
            "float64": (quantize_float64, dequantize_float64)}


def _quant_stats(quantize, dequantize=None) -> dict:
    rows = blockwise_errors(quantize, dequantize)
    assert not any("error" in r for r in rows)
    out = {k: max(r[k] for r in rows) for k in ("scales", "mismatch", "step")}
    if dequantize is not None:
        out["dequantized"] = max(r["dequantized"] for r in rows)
    return out


def _extra_seed_mismatch(quantize) -> float:
    """The mismatch fraction on 20 more random tensors (several seeds, both formats, ragged shapes)."""
    worst = 0.0
    for seed in range(20):
        gen = torch.Generator().manual_seed(1000 + seed)
        x = torch.randn(96 + seed, 160 + 3 * seed, generator=gen) * 10 ** (seed % 5 - 2)
        block, dtype = ((1, 128), (32, 64))[seed % 2], F8[seed % 2 == 0]
        ref_q, _ = quantize_blockwise(x, block, dtype)
        q, _ = quantize(x, block=block, dtype=dtype)
        worst = max(worst, quant_mismatch(q, ref_q))
    return worst


def test_blockwise_quant_tolerances():
    correct = {name: _quant_stats(*fns) for name, fns in _correct_quantizers().items()}
    for name, (quantize, _) in _correct_quantizers().items():
        correct[name]["mismatch"] = max(correct[name]["mismatch"], _extra_seed_mismatch(quantize))
    # scales: every mistake in the scale (rows 1–2 of the contract)
    scale_mistakes = {f.__name__: _quant_stats(f)["scales"] for f in (
        one_scale, scale_is_amax, amax_without_abs, drops_edge_blocks)}
    # q: the mistakes that get the scales right
    q_mistakes = {f.__name__: _quant_stats(f)["mismatch"] for f in (
        multiplies, divides_in_bfloat16, no_zero_clamp)}
    q_mistakes["divides_in_bfloat16 (extra seeds)"] = _extra_seed_mismatch(divides_in_bfloat16)
    deq_mistakes = {f.__name__: _quant_stats(my_quantize, f)["dequantized"] for f in (
        deq_divides, deq_ignores_blocks)}
    _assert_between("block-wise: scales", {n: s["scales"] for n, s in correct.items()}, scale_mistakes,
                    QUANT_RTOL)
    _assert_between("block-wise: fraction of q that differ", {n: s["mismatch"] for n, s in correct.items()},
                    q_mistakes, QUANT_MISMATCH_TOL)
    _assert_between("block-wise: dequantized", {n: s["dequantized"] for n, s in correct.items()}, deq_mistakes,
                    QUANT_RTOL)
    # a differing q entry of a correct variant is one FP8 step away at most
    assert max(s["step"] for s in correct.values()) <= QUANT_STEP_RTOL
