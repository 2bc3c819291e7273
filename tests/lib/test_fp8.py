"""course_lib.fp8 against torch: FP8 round trips within the formats' rounding bounds, saturation, the
per-tensor, row-wise and block-wise scaling granularities, ``torch._scaled_mm`` against its emulation,
and ``FP8Linear`` against an fp32 ``nn.Linear``."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.fp8 import (FP8Linear, dequantize, dequantize_blockwise, fake_quantize, quantize_blockwise,
                            quantize_per_tensor, quantize_rowwise, relative_error, scaled_mm, scaled_mm_available,
                            swap_linears_to_fp8)
from course_lib.precision import FORMATS

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


@pytest.mark.parametrize("dtype,bound", [(E4M3, 2.0 ** -4), (E5M2, 2.0 ** -3)])
def test_fp8_round_trip_within_relative_bound(dtype, bound):
    """Round to nearest with m mantissa bits: |x - q(x)| <= 2^-(m+1) |x| for normal numbers
    (E4M3: m=3 -> 2^-4; E5M2: m=2 -> 2^-3). Below the smallest normal the error is at most half the
    subnormal spacing, times the scale."""
    fmt = FORMATS["e4m3" if dtype == E4M3 else "e5m2"]
    assert fmt.relative_error_bound == bound
    x = torch.randn(4096, dtype=torch.float64) * torch.logspace(-3, 3, 4096, dtype=torch.float64)
    q, scale = quantize_per_tensor(x.float(), dtype)
    back = dequantize(q, scale).double()
    err = (back - x).abs()
    scaled = (x / scale.double()).abs()
    normal = scaled >= fmt.smallest_normal
    assert normal.sum() > 1000
    assert bool((err[normal] <= bound * x.abs()[normal] * (1 + 1e-6)).all())
    sub_bound = fmt.smallest_subnormal / 2 * float(scale) * (1 + 1e-6)
    assert bool((err[~normal] <= sub_bound + 1e-12).all())
    # the bound is tight: some element actually comes close to it
    assert float((err[normal] / x.abs()[normal]).max()) > 0.8 * bound


def test_cast_saturates_and_never_gives_nan():
    big = torch.tensor([1e6, -1e6, 500.0])
    q, s = quantize_per_tensor(big, E4M3)
    assert torch.isfinite(q.float()).all()
    assert float(torch.tensor(1e6).clamp(-448, 448).to(E4M3).float()) == 448.0
    assert math.isinf(float(torch.tensor(1e6).to(E5M2).float()))  # E5M2 has inf


def test_zero_tensor_quantizes_to_zero():
    for fn in (lambda x: quantize_per_tensor(x), lambda x: quantize_rowwise(x),
               lambda x: quantize_blockwise(x, (2, 2))):
        q, s = fn(torch.zeros(4, 6))
        assert torch.equal(q.float(), torch.zeros(4, 6)) and bool((s > 0).all())


def test_blockwise_beats_per_tensor_with_outliers():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 256, generator=gen) * 0.05
    x[3, 17] = 2000.0  # one huge outlier in the first block
    ordinary = torch.ones_like(x, dtype=torch.bool)
    ordinary[:128, :128] = False
    errs = {g: relative_error(fake_quantize(x, g)[ordinary], x[ordinary]) for g in ("tensor", "row", "block")}
    assert errs["block"] < 0.6 * errs["tensor"], errs  # measured: about 0.026 vs 0.051
    assert errs["row"] < errs["tensor"] and errs["block"] < 1.1 * errs["row"], errs
    # with no outlier the three agree to within a factor 2
    y = torch.randn(256, 256, generator=gen)
    e = [relative_error(fake_quantize(y, g), y) for g in ("tensor", "row", "block")]
    assert max(e) < 2 * min(e) and max(e) < FORMATS["e4m3"].relative_error_bound


def test_blockwise_ragged_shapes_and_validation():
    x = torch.randn(130, 200)
    q, s = quantize_blockwise(x, (128, 128))
    assert q.shape == x.shape and s.shape == (2, 2)
    assert relative_error(dequantize_blockwise(q, s, (128, 128)), x) < 2.0 ** -4
    with pytest.raises(ValueError, match="2-D"):
        quantize_blockwise(torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="block"):
        quantize_blockwise(x, (0, 128))
    with pytest.raises(ValueError, match="scales"):
        dequantize_blockwise(q, s[:1], (128, 128))


@pytest.mark.parametrize("rowwise", [False, True])
def test_scaled_mm_matches_emulation(rowwise):
    if not scaled_mm_available("cpu", rowwise=rowwise):
        pytest.skip(f"torch._scaled_mm with {'row-wise' if rowwise else 'per-tensor'} scales does not run here")
    a, b = torch.randn(64, 96), torch.randn(48, 96)
    fn = quantize_rowwise if rowwise else quantize_per_tensor
    (qa, sa), (qb, sb) = fn(a), fn(b)
    real = scaled_mm(qa, qb, sa, sb)
    emulated = scaled_mm(qa, qb, sa, sb, emulate=True)
    torch.testing.assert_close(real, emulated, rtol=1e-5, atol=1e-4)
    assert relative_error(real, a @ b.t()) < 0.1


@pytest.mark.parametrize("granularity", ["block", "tensor"])
def test_fp8_linear_matches_fp32_reference(granularity):
    """Forward: relative error below 2 · 2^-4 (two E4M3 operands). Backward: E5M2 gradient (2^-3)
    times E4M3 operands, relative error below 0.15. And exactly the quantize→dequantize reference."""
    torch.manual_seed(0)
    ref = torch.nn.Linear(256, 128, bias=False)
    fp8 = FP8Linear.from_linear(torch.nn.Linear(256, 128, bias=False), granularity)
    fp8.weight = torch.nn.Parameter(ref.weight.detach().clone())
    x = torch.randn(4, 32, 256)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(4, 32, 128)
    y_ref, y = ref(x1), fp8(x2)
    assert relative_error(y, y_ref) < 2 * 2.0 ** -4
    y_ref.backward(g)
    y.backward(g)
    assert relative_error(x2.grad, x1.grad) < 0.15
    assert relative_error(fp8.weight.grad, ref.weight.grad) < 0.15
    # exact simulation: the same as multiplying the fake-quantized operands
    tiles = (1, 128) if granularity == "block" else None
    xq = fake_quantize(x.reshape(-1, 256), granularity, block=tiles) if tiles else fake_quantize(x.reshape(-1, 256))
    wq = fake_quantize(ref.weight.detach(), granularity, block=(128, 128))
    torch.testing.assert_close(y.detach().reshape(-1, 128), xq @ wq.t(), rtol=1e-5, atol=1e-6)


def test_swap_linears_shares_weights():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 2, bias=False))
    w0 = model[0].weight
    names = swap_linears_to_fp8(model, skip=("2",))
    assert names == ["0"] and isinstance(model[0], FP8Linear) and model[0].weight is w0
    assert type(model[2]) is torch.nn.Linear


def test_the_probe_asks_for_the_scales_it_will_be_given(monkeypatch):
    """A build whose _scaled_mm takes per-tensor scales only (older torch releases assert this in their CPU
    kernel): the per-tensor probe says yes, the row-wise probe says no, so notebook 05 emulates
    the row-wise product instead of crashing. A build that returns wrong numbers is not trusted either."""
    real = torch._scaled_mm

    def per_tensor_only(a, b, scale_a, scale_b, **kwargs):
        if scale_a.dim() or scale_b.dim():
            raise RuntimeError("Now _scaled_mm only supports per-tensor scaling for CPU backend.")
        return real(a, b, scale_a=scale_a, scale_b=scale_b, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", per_tensor_only)
    assert scaled_mm_available("cpu", rowwise=True) is False
    assert scaled_mm_available("cpu") is _runs_per_tensor(real)  # whatever this build does per tensor
    monkeypatch.setattr(torch, "_scaled_mm", lambda a, b, **kwargs: torch.zeros(a.shape[0], b.shape[1]))
    assert scaled_mm_available("cpu") is False and scaled_mm_available("cpu", rowwise=True) is False
    monkeypatch.setattr(torch, "_scaled_mm", lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("no fp8")))
    assert scaled_mm_available("cpu") is False


def _runs_per_tensor(scaled_mm_fn) -> bool:
    try:
        a = torch.ones(16, 16).to(torch.float8_e4m3fn)
        one = torch.ones(())
        return bool((scaled_mm_fn(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.float32) == 16).all())
    except (RuntimeError, NotImplementedError):
        return False
