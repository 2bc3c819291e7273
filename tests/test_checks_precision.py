"""The precision checkers pass the notebooks' solutions and other correct answers, refuse copied answers,
let the stub's NotImplementedError through, and fail typical wrong answers (in the notebook's language)."""

from __future__ import annotations

import ast
import math
import re

import pytest
import torch
import torch.nn.functional as F

import course_lib.precision as cp
import course_lib.stability as st
from course_lib.checks.originality import CopiedAnswerError
from course_lib.checks.precision import check_blockwise_quant, check_loss_scaler
from course_lib.i18n import tr
from course_lib.nbtools import NOTEBOOKS, parse_source

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def notebook_answer(stem: str, exercise: str) -> dict:
    """The definitions (imports, functions, classes) of a notebook's answer cell for ``exercise``, run in
    a namespace that has what the notebook imported before it (torch, math, F, st); the cell's demo
    lines, which use the notebook's earlier variables, are left out."""
    cells = parse_source((NOTEBOOKS / "src" / f"{stem}.txt").read_text(encoding="utf-8"))
    source = next(c["en"] for c in cells if c.get("exercise") == ("answer", exercise))
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
    namespace = dict(torch=torch, math=math, F=F, st=st, tr=tr)
    exec(compile(tree, f"<notebook {stem}, answer {exercise}>", "exec"), namespace)  # noqa: S102
    return namespace


def assert_messages_in_both_languages(monkeypatch, check):
    """``check()`` fails with a Korean message under COURSE_LANG=ko and a message without Hangul in English."""
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as ko:
        check()
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as en:
        check()
    assert HANGUL.search(str(ko.value)), str(ko.value)
    assert not HANGUL.search(str(en.value)), str(en.value)
    return en.value, ko.value


# ---------------------------------------------------------------- loss scaler
class MyScaler:
    """A correct loss scaler written from scratch (not built on the reference), split into the same
    pieces as DynamicLossScaler so that the wrong variants below change one piece each."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval
        self.growth_tracker = 0

    def scale_loss(self, loss):
        return loss * self.scale

    def unscale_(self, optimizer):
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(self.scale)
                    found = found or not bool(torch.isfinite(p.grad).all())
        return found

    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0

    def step(self, optimizer):
        found = self.unscale_(optimizer)
        if not found:
            optimizer.step()
        self.update(found)
        return not found


class Stub(MyScaler):
    def step(self, optimizer):
        raise NotImplementedError()


def _grads(optimizer):
    return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


class NoSkip(MyScaler):
    def step(self, optimizer):
        found = self.unscale_(optimizer)
        optimizer.step()  # steps even on overflow
        self.update(found)
        return True


class GrowsEarly(MyScaler):
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


class NoResetAfterOverflow(MyScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor  # counter kept
            return
        super().update(False)


class FixedHalving(MyScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= 0.5  # ignores backoff_factor
            self.growth_tracker = 0
            return
        super().update(False)


class UnscaleWithNewScale(MyScaler):
    def step(self, optimizer):
        found = any(not bool(torch.isfinite(g).all()) for g in _grads(optimizer))
        self.update(found)  # updates first, then unscales with the new scale
        for g in _grads(optimizer):
            g.div_(self.scale)
        if not found:
            optimizer.step()
        return not found


class OverflowCountsAsGood(MyScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0


class NeverUnscales(MyScaler):
    def unscale_(self, optimizer):
        return any(not bool(torch.isfinite(g).all()) for g in _grads(optimizer))


class NoResetAfterGrowth(MyScaler):
    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker >= self.growth_interval:
            self.scale *= self.growth_factor


class ChecksLastParameterOnly(MyScaler):
    def unscale_(self, optimizer):
        grads = _grads(optimizer)
        for g in grads:
            g.div_(self.scale)
        return not bool(torch.isfinite(grads[-1]).all())


class ChecksFirstGroupOnly(MyScaler):
    def unscale_(self, optimizer):
        found = False
        for i, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                p.grad.div_(self.scale)
                found = found or (i == 0 and not bool(torch.isfinite(p.grad).all()))
        return found


class UnscalesFirstGroupOnly(MyScaler):
    def unscale_(self, optimizer):
        found = False
        for p in optimizer.param_groups[0]["params"]:
            p.grad.div_(self.scale)
        for g in _grads(optimizer):
            found = found or not bool(torch.isfinite(g).all())
        return found


class ChecksInfOnly(MyScaler):
    def unscale_(self, optimizer):
        found = False
        for g in _grads(optimizer):
            g.div_(self.scale)
            found = found or bool(torch.isinf(g).any())  # misses NaN
        return found


class ReturnsNoneAfterStep(MyScaler):
    def step(self, optimizer):
        found = self.unscale_(optimizer)
        self.update(found)
        if found:
            return False
        optimizer.step()  # and falls off the end: None


class ReturnsTensor(MyScaler):
    def step(self, optimizer):
        found = torch.stack([~torch.isfinite(g.div_(self.scale)).all() for g in _grads(optimizer)]).any()
        if not found:
            optimizer.step()
        self.update(bool(found))
        return ~found  # a tensor, not a bool


class LeavesGradientsScaled(MyScaler):
    """Unscales through the learning rate instead of the gradients (the same SGD update), so p.grad
    keeps the scaled gradients that clipping or logging after step() would then misread."""

    def step(self, optimizer):
        found = any(not bool(torch.isfinite(g).all()) for g in _grads(optimizer))
        if not found:
            lrs = [g["lr"] for g in optimizer.param_groups]
            for g in optimizer.param_groups:
                g["lr"] /= self.scale
            optimizer.step()
            for g, lr in zip(optimizer.param_groups, lrs):
                g["lr"] = lr
        self.update(found)
        return not found


class Crashes(MyScaler):
    def step(self, optimizer):
        return optimizer.param_groups[0]["params"][5].grad  # IndexError


WRONG_SCALERS = [NoSkip, GrowsEarly, NoResetAfterOverflow, FixedHalving, UnscaleWithNewScale,
                 OverflowCountsAsGood, NeverUnscales, NoResetAfterGrowth, ChecksLastParameterOnly,
                 ChecksFirstGroupOnly, UnscalesFirstGroupOnly, ChecksInfOnly, ReturnsNoneAfterStep, ReturnsTensor,
                 LeavesGradientsScaled, Crashes]


class Subclassed(cp.DynamicLossScaler):
    pass


class DelegatesToGradScaler:
    """A scaler that hands every piece to torch.amp.GradScaler."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.inner = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_factor=growth_factor,
                                          backoff_factor=backoff_factor, growth_interval=growth_interval)

    @property
    def scale(self):
        return self.inner.get_scale()

    def scale_loss(self, loss):
        return self.inner.scale(loss)

    def step(self, optimizer):
        stepped = self.inner.step(optimizer) is not None
        self.inner.update()
        return stepped


class WrapsReference(MyScaler):
    def step(self, optimizer):
        return cp.DynamicLossScaler.step(self, optimizer)


def test_loss_scaler_checker_passes_notebook_solution():
    check_loss_scaler(notebook_answer("04_mixed_precision", "loss_scaler")["LossScaler"], verbose=False)


def test_loss_scaler_checker_passes_scaler_written_from_scratch():
    check_loss_scaler(MyScaler, verbose=False)


def test_loss_scaler_checker_stub_fails():
    with pytest.raises(NotImplementedError):
        check_loss_scaler(Stub, verbose=False)


@pytest.mark.parametrize("wrong", WRONG_SCALERS, ids=lambda c: c.__name__)
def test_loss_scaler_checker_catches(wrong):
    with pytest.raises(AssertionError) as err:
        check_loss_scaler(wrong, verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


@pytest.mark.parametrize("copied", [cp.DynamicLossScaler, Subclassed, DelegatesToGradScaler, WrapsReference],
                         ids=["reference", "subclass", "delegates to GradScaler", "wrapper"])
def test_loss_scaler_checker_refuses_copies(copied):
    with pytest.raises(CopiedAnswerError):
        check_loss_scaler(copied, verbose=False)


def test_loss_scaler_checker_names_the_blind_spots():
    """The messages point at what the three new probes found: a NaN, a parameter in the second group,
    and the return value."""
    for wrong, text in ((ChecksInfOnly, "nan"), (ChecksFirstGroupOnly, "param group 1"),
                        (ChecksLastParameterOnly, "parameter 0"), (ReturnsNoneAfterStep, "returned None"),
                        (LeavesGradientsScaled, "unscaled p.grad")):
        with pytest.raises(AssertionError, match=re.escape(text)):
            check_loss_scaler(wrong, verbose=False)


def test_loss_scaler_messages_follow_the_notebook_language(monkeypatch):
    en, ko = assert_messages_in_both_languages(monkeypatch, lambda: check_loss_scaler(ChecksInfOnly, verbose=False))
    assert "GradScaler" in str(en) and "GradScaler" in str(ko)
    assert_messages_in_both_languages(monkeypatch, lambda: check_loss_scaler(Crashes, verbose=False))


# ---------------------------------------------------------------- block-wise quantization
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


def stub(*args, **kwargs):
    raise NotImplementedError()


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
    ns = notebook_answer("05_fp8", "blockwise_quant")
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
    return cp.quantize_blockwise(x, block, dtype)


def deq_wraps_reference(q, scales, block=(128, 128)):
    return cp.dequantize_blockwise(q, scales, block)


def uses_reference_expand(q, scales, block=(128, 128)):
    return q.float() * cp.expand_block_scales(scales, q.shape, block)


@pytest.mark.parametrize("quantize, dequantize", [
    (cp.quantize_blockwise, None),  # quantize_blockwise = course_lib.precision.quantize_blockwise
    (cp.quantize_blockwise, cp.dequantize_blockwise),
    (wraps_reference, None),
    (my_quantize, cp.dequantize_blockwise),
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
