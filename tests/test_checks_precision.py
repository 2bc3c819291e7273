"""The precision checkers pass the reference, fail the stub, and fail typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks.precision import check_blockwise_quant, check_loss_scaler
from course_lib.precision import DynamicLossScaler, dequantize_blockwise, expand_block_scales, quantize_blockwise


# ---------------------------------------------------------------- loss scaler
class Stub(DynamicLossScaler):
    def step(self, optimizer):
        raise NotImplementedError()


def _unscale(scaler, optimizer, scale):
    found = False
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.div_(scale)
                found = found or not bool(torch.isfinite(p.grad).all())
    return found


class NoSkip(DynamicLossScaler):
    def step(self, optimizer):
        found = self.unscale_(optimizer)
        optimizer.step()  # steps even on overflow
        self.update(found)
        return True


class GrowsEarly(DynamicLossScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        if self.growth_tracker + 1 >= self.growth_interval - 1 or self.growth_interval == 1:  # off by one
            self.scale *= self.growth_factor
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1


class NoResetAfterOverflow(DynamicLossScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor  # counter kept
            return
        super().update(False)


class FixedHalving(DynamicLossScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= 0.5  # ignores backoff_factor
            self.growth_tracker = 0
            return
        super().update(False)


class UnscaleWithNewScale(DynamicLossScaler):
    def step(self, optimizer):
        found = any(not bool(torch.isfinite(p.grad).all()) for g in optimizer.param_groups for p in g["params"])
        self.update(found)  # updates first, then unscales with the new scale
        _unscale(self, optimizer, self.scale)
        if not found:
            optimizer.step()
        return not found


class OverflowCountsAsGood(DynamicLossScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0


class NeverUnscales(DynamicLossScaler):
    def unscale_(self, optimizer):
        return any(not bool(torch.isfinite(p.grad).all()) for g in optimizer.param_groups for p in g["params"])


class NoResetAfterGrowth(DynamicLossScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker >= self.growth_interval:
            self.scale *= self.growth_factor


WRONG_SCALERS = [NoSkip, GrowsEarly, NoResetAfterOverflow, FixedHalving, UnscaleWithNewScale,
                 OverflowCountsAsGood, NeverUnscales, NoResetAfterGrowth]


def test_loss_scaler_checker_passes_reference():
    check_loss_scaler(DynamicLossScaler, verbose=False)


def test_loss_scaler_checker_stub_fails():
    with pytest.raises(NotImplementedError):
        check_loss_scaler(Stub, verbose=False)


@pytest.mark.parametrize("wrong", WRONG_SCALERS, ids=lambda c: c.__name__)
def test_loss_scaler_checker_catches(wrong):
    with pytest.raises(AssertionError):
        check_loss_scaler(wrong, verbose=False)


# ---------------------------------------------------------------- block-wise quantization
def _fp8max(dtype):
    return torch.finfo(dtype).max


def _amax_blocks(x, block, floor=False):
    br, bc = block
    r, c = x.shape
    nr, nc = (r // br, c // bc) if floor else (-(-r // br), -(-c // bc))
    xp = F.pad(x.abs(), (0, max(nc * bc - c, 0), 0, max(nr * br - r, 0)))[: nr * br, : nc * bc]
    return xp.reshape(nr, br, nc, bc).amax(dim=(1, 3))


def stub(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    raise NotImplementedError()


def one_scale(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    amax = _amax_blocks(x, block)
    scales = torch.full_like(amax, float(x.abs().max().clamp(min=1e-12)) / _fp8max(dtype))
    return (x / expand_block_scales(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype)).to(dtype), scales


def scale_is_amax(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block).clamp(min=1e-12)
    return (x / expand_block_scales(scales, x.shape, block)).to(dtype), scales


def no_zero_clamp(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block) / _fp8max(dtype)
    return (x / expand_block_scales(scales, x.shape, block)).to(dtype), scales


def transposed_blocks(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    return quantize_blockwise(x.t(), block, dtype)[0].t().contiguous(), quantize_blockwise(x.t(), block, dtype)[1].t()


def rejects_ragged(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    if x.shape[0] % block[0] or x.shape[1] % block[1]:
        raise ValueError(f"shape {tuple(x.shape)} is not a multiple of {block}")
    return quantize_blockwise(x, block, dtype)


def multiplies(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block).clamp(min=1e-12) / _fp8max(dtype)
    q = (x * expand_block_scales(scales, x.shape, block)).clamp(-_fp8max(dtype), _fp8max(dtype))
    return q.to(dtype), scales


def drops_edge_blocks(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    scales = _amax_blocks(x, block, floor=True).clamp(min=1e-12) / _fp8max(dtype)
    full = F.pad(scales, (0, 1, 0, 1), value=1.0)
    return (x / expand_block_scales(full, x.shape, block)).clamp(-448, 448).to(dtype), scales


def swapped_block_arg(x, block=(128, 128), dtype=torch.float8_e4m3fn):
    return quantize_blockwise(x, (block[1], block[0]), dtype)


WRONG_QUANT = [one_scale, scale_is_amax, no_zero_clamp, transposed_blocks, rejects_ragged, multiplies,
               drops_edge_blocks, swapped_block_arg]


def deq_divides(q, scales, block=(128, 128)):
    return q.float() / expand_block_scales(scales, q.shape, block)


def deq_ignores_blocks(q, scales, block=(128, 128)):
    return q.float() * scales.flatten()[0]


def test_blockwise_checker_passes_reference():
    check_blockwise_quant(quantize_blockwise, dequantize_blockwise, verbose=False)


def test_blockwise_checker_stub_fails():
    with pytest.raises(NotImplementedError):
        check_blockwise_quant(stub, verbose=False)


@pytest.mark.parametrize("wrong", WRONG_QUANT, ids=lambda f: f.__name__)
def test_blockwise_checker_catches(wrong):
    with pytest.raises(AssertionError):
        check_blockwise_quant(wrong, verbose=False)


@pytest.mark.parametrize("wrong", [deq_divides, deq_ignores_blocks], ids=lambda f: f.__name__)
def test_blockwise_checker_catches_dequantize(wrong):
    with pytest.raises(AssertionError):
        check_blockwise_quant(quantize_blockwise, wrong, verbose=False)


def test_checker_failure_message_has_hint():
    with pytest.raises(AssertionError, match="amax"):
        check_blockwise_quant(scale_is_amax, verbose=False)
    with pytest.raises(AssertionError, match="GradScaler"):
        check_loss_scaler(NoSkip, verbose=False)
