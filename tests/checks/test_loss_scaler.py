"""check_loss_scaler passes the notebook's solution and a scaler written from scratch, refuses copied
answers, lets the stub's NotImplementedError through, and fails typical wrong answers (in the notebook's
language); its tolerances lie between the correct variants and the mistakes."""

from __future__ import annotations

import functools
import re

import pytest
import torch

import course_lib.precision as cp
from classroom.checks.loss_scaler import (SCALE_RTOL, SCALER_CASES, SCALER_RTOL, check_loss_scaler,
                                          grad_scaler_trace, scaler_errors, student_scaler_trace)
from classroom.checks.originality import CopiedAnswerError

from ._helpers import _assert_between, assert_messages_in_both_languages, notebook_definitions


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
    check_loss_scaler(notebook_definitions("04_mixed_precision", "loss_scaler")["LossScaler"], verbose=False)


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


# ---- tolerances from measurement: recompute the checker's own statistic over correct variants and
# typical mistakes, and assert max(correct) < tolerance < min(mistake) (run with -s to see the numbers).


class ReciprocalScaler(MyScaler):
    """Multiplies by a float64 1/scale instead of dividing."""

    def unscale_(self, optimizer):
        inv = 1.0 / self.scale
        grads = _grads(optimizer)
        for g in grads:
            g.mul_(inv)
        return not all(bool(torch.isfinite(g).all()) for g in grads)


class GradScalerStyle(MyScaler):
    """GradScaler's order: look for inf/NaN in the scaled gradients, then multiply by a float32 1/scale
    (foreach)."""

    def unscale_(self, optimizer):
        grads = _grads(optimizer)
        found = bool(torch.stack([~torch.isfinite(g).all() for g in grads]).any())
        torch._foreach_mul_(grads, torch.tensor(1.0 / self.scale, dtype=torch.float32).item())
        return found


class Float64Unscale(MyScaler):
    """Unscales in float64, then stores back in float32."""

    def unscale_(self, optimizer):
        found = False
        for g in _grads(optimizer):
            g.copy_(g.double() / self.scale)
            found = found or bool(torch.isnan(g).any() or torch.isinf(g).any())
        return found


class ForeachDivide(MyScaler):
    def unscale_(self, optimizer):
        grads = _grads(optimizer)
        torch._foreach_div_(grads, self.scale)
        return not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


@functools.cache
def _correct_scalers():
    return {"notebook": notebook_definitions("04_mixed_precision", "loss_scaler")["LossScaler"],
            "from scratch (divide)": MyScaler, "× float64 1/scale": ReciprocalScaler,
            "GradScaler order, foreach": GradScalerStyle, "float64 unscale": Float64Unscale,
            "foreach divide": ForeachDivide}


def _scaler_stats(cls) -> dict:
    """The largest value of each statistic over the checker's cases."""
    out = dict(scales=0.0, parameters=0.0, gradients=0.0)
    for case in SCALER_CASES:
        errors = scaler_errors(student_scaler_trace(cls, case), grad_scaler_trace(case))
        out = {k: max(out[k], errors[k]) for k in out}
    return out


def test_loss_scaler_tolerances():
    correct = {name: _scaler_stats(cls) for name, cls in _correct_scalers().items()}
    # the mistakes that only these statistics can see (the others fail the exact skip/return checks)
    numeric = {name: _scaler_stats(cls) for name, cls in (
        ("unscales with the new scale", UnscaleWithNewScale), ("never unscales", NeverUnscales),
        ("unscales the first group only", UnscalesFirstGroupOnly),
        ("leaves p.grad scaled", LeavesGradientsScaled))}
    scale_mistakes = {cls.__name__: _scaler_stats(cls)["scales"] for cls in (
        GrowsEarly, NoResetAfterOverflow, FixedHalving, OverflowCountsAsGood, NoResetAfterGrowth)}
    _assert_between("loss scaler: scale sequence", {n: s["scales"] for n, s in correct.items()}, scale_mistakes,
                    SCALE_RTOL)
    _assert_between("loss scaler: parameters and p.grad",
                    {n: max(s["parameters"], s["gradients"]) for n, s in correct.items()},
                    {n: max(s["parameters"], s["gradients"]) for n, s in numeric.items()}, SCALER_RTOL)
    # the non-power-of-two scale of case 3 really makes the correct variants differ
    assert max(s["parameters"] for s in correct.values()) > 0
