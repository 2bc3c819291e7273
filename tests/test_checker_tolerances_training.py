"""Where the tolerances of the notebook 04–08 checkers come from: each test recomputes the checker's own
statistic (the functions in course_lib.checks.precision / .training) over correct variants and over
typical mistakes, and asserts max(correct) < tolerance < min(mistake). Run with -s to see the numbers."""

from __future__ import annotations

import functools
import math

import torch

from course_lib.checks import precision as cpc
from course_lib.checks import training as ctr
from course_lib.precision import quantize_blockwise
from tests import test_checks_precision as tp
from tests import test_checks_training as tt


def _show(title, correct: dict, mistakes: dict, tol: float):
    print(f"\n{title}: tolerance {tol:g}")
    for label, values in (("correct", correct), ("mistake", mistakes)):
        for name, value in sorted(values.items(), key=lambda kv: kv[1]):
            print(f"  {label:8s} {name:32s} {value:.3e}")


def _assert_between(title, correct: dict, mistakes: dict, tol: float):
    _show(title, correct, mistakes, tol)
    worst = max(correct, key=correct.get)
    closest = min(mistakes, key=mistakes.get)
    assert correct[worst] < tol, f"{title}: correct variant {worst!r} reaches {correct[worst]:.3e} ≥ {tol:g}"
    assert mistakes[closest] > tol, f"{title}: mistake {closest!r} reaches only {mistakes[closest]:.3e} ≤ {tol:g}"


# ---------------------------------------------------------------------------- loss scaler


class ReciprocalScaler(tp.MyScaler):
    """Multiplies by a float64 1/scale instead of dividing."""

    def unscale_(self, optimizer):
        inv = 1.0 / self.scale
        grads = tp._grads(optimizer)
        for g in grads:
            g.mul_(inv)
        return not all(bool(torch.isfinite(g).all()) for g in grads)


class GradScalerStyle(tp.MyScaler):
    """GradScaler's order: look for inf/NaN in the scaled gradients, then multiply by a float32 1/scale
    (foreach)."""

    def unscale_(self, optimizer):
        grads = tp._grads(optimizer)
        found = bool(torch.stack([~torch.isfinite(g).all() for g in grads]).any())
        torch._foreach_mul_(grads, torch.tensor(1.0 / self.scale, dtype=torch.float32).item())
        return found


class Float64Unscale(tp.MyScaler):
    """Unscales in float64, then stores back in float32."""

    def unscale_(self, optimizer):
        found = False
        for g in tp._grads(optimizer):
            g.copy_(g.double() / self.scale)
            found = found or bool(torch.isnan(g).any() or torch.isinf(g).any())
        return found


class ForeachDivide(tp.MyScaler):
    def unscale_(self, optimizer):
        grads = tp._grads(optimizer)
        torch._foreach_div_(grads, self.scale)
        return not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


@functools.lru_cache(maxsize=None)
def _correct_scalers():
    return {"notebook": tp.notebook_answer("04_mixed_precision", "loss_scaler")["LossScaler"],
            "from scratch (divide)": tp.MyScaler, "× float64 1/scale": ReciprocalScaler,
            "GradScaler order, foreach": GradScalerStyle, "float64 unscale": Float64Unscale,
            "foreach divide": ForeachDivide}


def _scaler_stats(cls) -> dict:
    """The largest value of each statistic over the checker's cases."""
    out = dict(scales=0.0, parameters=0.0, gradients=0.0)
    for case in cpc.SCALER_CASES:
        errors = cpc.scaler_errors(cpc.student_scaler_trace(cls, case), cpc._torch_trace(case))
        out = {k: max(out[k], errors[k]) for k in out}
    return out


def test_loss_scaler_tolerances():
    correct = {name: _scaler_stats(cls) for name, cls in _correct_scalers().items()}
    # the mistakes that only these statistics can see (the others fail the exact skip/return checks)
    numeric = {name: _scaler_stats(cls) for name, cls in (
        ("unscales with the new scale", tp.UnscaleWithNewScale), ("never unscales", tp.NeverUnscales),
        ("unscales the first group only", tp.UnscalesFirstGroupOnly),
        ("leaves p.grad scaled", tp.LeavesGradientsScaled))}
    scale_mistakes = {cls.__name__: _scaler_stats(cls)["scales"] for cls in (
        tp.GrowsEarly, tp.NoResetAfterOverflow, tp.FixedHalving, tp.OverflowCountsAsGood, tp.NoResetAfterGrowth)}
    _assert_between("loss scaler: scale sequence", {n: s["scales"] for n, s in correct.items()}, scale_mistakes,
                    cpc.SCALE_RTOL)
    _assert_between("loss scaler: parameters and p.grad",
                    {n: max(s["parameters"], s["gradients"]) for n, s in correct.items()},
                    {n: max(s["parameters"], s["gradients"]) for n, s in numeric.items()}, cpc.SCALER_RTOL)
    # the non-power-of-two scale of case 3 really makes the correct variants differ
    assert max(s["parameters"] for s in correct.values()) > 0


# ---------------------------------------------------------------------------- block-wise quantization

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
    scales = tp._amax_blocks(x.float(), block).clamp(min=1e-12) * (1.0 / fmax)
    q = (x.float() * tp._expand(1.0 / scales, x.shape, block)).clamp(-fmax, fmax).to(dtype)
    return q, scales


def quantize_float64(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    """Everything in float64; the scales stored as float32."""
    fmax = torch.finfo(dtype).max
    scales = tp._amax_blocks(x.double(), block).clamp(min=1e-12) / fmax
    q = (x.double() / tp._expand(scales, x.shape, block)).clamp(-fmax, fmax).to(dtype)
    return q, scales.float()


def dequantize_float64(q, scales, block=(128, 128)):
    return (q.double() * tp._expand(scales.double(), q.shape, block)).float()


def dequantize_divide_reciprocal(q, scales, block=(128, 128)):
    return q.float() / tp._expand(1.0 / scales, q.shape, block)


@functools.lru_cache(maxsize=None)
def _correct_quantizers():
    ns = tp.notebook_answer("05_fp8", "blockwise_quant")
    return {"notebook": (ns["quantize_blockwise"], ns["dequantize_blockwise"]),
            "from scratch": (tp.my_quantize, tp.my_dequantize),
            "loop, slicing": (quantize_loop, dequantize_float64),
            "reciprocal": (quantize_reciprocal, dequantize_divide_reciprocal),
            "float64": (quantize_float64, dequantize_float64)}


def _quant_stats(quantize, dequantize=None) -> dict:
    rows = cpc.blockwise_errors(quantize, dequantize)
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
        worst = max(worst, cpc.quant_mismatch(q, ref_q))
    return worst


def test_blockwise_quant_tolerances():
    correct = {name: _quant_stats(*fns) for name, fns in _correct_quantizers().items()}
    for name, (quantize, _) in _correct_quantizers().items():
        correct[name]["mismatch"] = max(correct[name]["mismatch"], _extra_seed_mismatch(quantize))
    # scales: every mistake in the scale (rows 1–2 of the contract)
    scale_mistakes = {f.__name__: _quant_stats(f)["scales"] for f in (
        tp.one_scale, tp.scale_is_amax, tp.amax_without_abs, tp.drops_edge_blocks)}
    # q: the mistakes that get the scales right
    q_mistakes = {f.__name__: _quant_stats(f)["mismatch"] for f in (
        tp.multiplies, tp.divides_in_bfloat16, tp.no_zero_clamp)}
    q_mistakes["divides_in_bfloat16 (extra seeds)"] = _extra_seed_mismatch(tp.divides_in_bfloat16)
    deq_mistakes = {f.__name__: _quant_stats(tp.my_quantize, f)["dequantized"] for f in (
        tp.deq_divides, tp.deq_ignores_blocks)}
    _assert_between("block-wise: scales", {n: s["scales"] for n, s in correct.items()}, scale_mistakes,
                    cpc.QUANT_RTOL)
    _assert_between("block-wise: fraction of q that differ", {n: s["mismatch"] for n, s in correct.items()},
                    q_mistakes, cpc.QUANT_MISMATCH_TOL)
    _assert_between("block-wise: dequantized", {n: s["dequantized"] for n, s in correct.items()}, deq_mistakes,
                    cpc.QUANT_RTOL)
    # a differing q entry of a correct variant is one FP8 step away at most
    assert max(s["step"] for s in correct.values()) <= cpc.QUANT_STEP_RTOL


# ---------------------------------------------------------------------------- μP


def _mup_stat(settings, scale, model=True) -> float:
    errors = ctr.mup_errors(settings, scale)
    values = [e for e, _ in errors["settings"].values()] + [e for e, _ in errors["attention"].values()]
    if model:
        values += [max(r["logits_error"], r["lrs_error"]) for r in ctr.mup_model_errors(settings, scale)]
    return max(values)


def test_mup_tolerance():
    ns = tp.notebook_answer("06_mup", "mup")
    correct = {"notebook": _mup_stat(ns["mup_settings"], ns["mup_attention"])}
    correct.update({name: _mup_stat(*fns) for name, fns in tt.CORRECT_MUP.items()})
    mistakes = {kind: _mup_stat(*tt.mup_variant(kind), model=False) for kind in tt.MUP_MISTAKES}
    _assert_between("μP: relative error", correct, mistakes, ctr.MUP_RTOL)


# ---------------------------------------------------------------------------- WSD


def _wsd_stat(fn) -> float:
    worst = 0.0
    for case in ctr.WSD_CASES:
        mine, ref = ctr.wsd_values(fn, case)
        worst = max(worst, max(abs(a - b) for a, b in zip(mine, ref)))
    return worst


def test_wsd_tolerance():
    correct = {"notebook": _wsd_stat(tp.notebook_answer("07_lr_schedules", "wsd_schedule")["wsd_lr"])}
    correct.update({name: _wsd_stat(fn) for name, fn in tt.CORRECT_WSD.items()})
    mistakes = {kind: _wsd_stat(tt.wsd_variant(kind)) for kind in tt.WSD_MISTAKES}
    _assert_between("WSD: largest absolute difference", correct, mistakes, ctr.WSD_ATOL)


# ---------------------------------------------------------------------------- gradient accumulation


def _accumulation_stat(fn, seeds=(0,)) -> float:
    worst = 0.0
    for offset in seeds:
        for i, case in enumerate(ctr.ACCUMULATION_CASES):
            row = ctr.accumulation_run(fn, i + offset, case)
            worst = max(worst, row.get("loss", math.inf), row["gradients"], row["update"])
    return worst


def test_grad_accumulation_tolerance():
    ns = tp.notebook_answer("08_stability", "grad_accumulation")
    correct = {"notebook": _accumulation_stat(ns["accumulate_step"], seeds=(0, 10, 20, 30))}
    correct.update({name: _accumulation_stat(fn, seeds=(0, 10, 20, 30))
                    for name, fn in tt.CORRECT_ACCUMULATION.items()})
    mistakes = {kind: _accumulation_stat(tt.accumulation_variant(kind)) for kind in tt.ACCUMULATION_MISTAKES}
    _assert_between("gradient accumulation: relative error", correct, mistakes, ctr.ACCUMULATION_RTOL)
