"""Copied answers are refused: re-exports, subclasses, partials and thin wrappers of a reference, while a
student's own code that calls torch's primitives is not."""

import functools
import re
import sys

import pytest
import torch

import course_lib.optim as reference
from classroom.checks.originality import CopiedAnswerError, StudentCodeError, call_student, refuse_reference
from classroom.exercises import EXERCISES, get_exercise


class OwnSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.addcdiv_(torch.sign(p.grad), torch.ones_like(p), value=-group["lr"])


class Subclass(torch.optim.AdamW):
    pass


class Wrapper(OwnSGD):
    def step(self):
        torch.optim.AdamW(self.param_groups[0]["params"]).step()


def _param():
    p = torch.nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    return p


@pytest.mark.parametrize("answer", [Subclass, torch.optim.AdamW, reference.AdamW, reference.adamw_update])
def test_reexports_and_subclasses_are_refused(answer):
    with pytest.raises(CopiedAnswerError, match="copied answer \\(adamw\\)"):
        refuse_reference(answer, "adamw")


def test_partials_and_tuples_are_looked_through():
    with pytest.raises(CopiedAnswerError):
        refuse_reference(functools.partial(reference.newton_schulz, steps=5), "newton_schulz")
    with pytest.raises(CopiedAnswerError):
        refuse_reference((lambda x: x, reference.newton_schulz), "newton_schulz")


def _raises(err):
    def fn():
        raise err
    return fn


def test_a_wrapper_is_caught_when_it_runs_and_the_profiler_is_restored():
    sentinel = lambda *a: None  # noqa: E731 - a profiler someone else installed (a debugger, coverage)
    sys.setprofile(sentinel)
    try:
        with pytest.raises(CopiedAnswerError, match="calls the reference"):
            call_student("adamw", "step()", Wrapper([_param()]).step)
        assert sys.getprofile() is sentinel
        with pytest.raises(StudentCodeError, match="^your code raised ZeroDivisionError: division by zero$") as err:
            call_student("adamw", "your code", lambda: 1 / 0)
        assert isinstance(err.value.__cause__, ZeroDivisionError)
        assert sys.getprofile() is sentinel
        with pytest.raises(StudentCodeError, match=r"^step\(\) raised ValueError: bad\. Look at the shapes\.$"):
            call_student("adamw", "step()", _raises(ValueError("bad")), crash_hint="Look at the shapes.")
        for unchanged in (NotImplementedError("stub"), CopiedAnswerError("copied")):
            with pytest.raises(type(unchanged)) as err:
                call_student("adamw", "step()", _raises(unchanged), crash_hint="not added")
            assert err.value is unchanged
        assert sys.getprofile() is sentinel

        def enters_the_reference_then_crashes():
            torch.optim.AdamW([_param()]).step()
            raise RuntimeError("student bug after the call")

        with pytest.raises(CopiedAnswerError):
            call_student("adamw", "step()", enters_the_reference_then_crashes)
        assert sys.getprofile() is sentinel
    finally:
        sys.setprofile(None)


def test_own_code_with_torch_primitives_passes():
    refuse_reference(OwnSGD, "adamw")
    p = _param()
    before = p.detach().clone()
    call_student("adamw", "step()", OwnSGD([p]).step)
    assert not torch.equal(before, p.detach())
    # the Muon exercise may use the notebook's helper muon_lr_scale, which is not its answer
    assert call_student("muon", "muon_lr_scale", reference.muon_lr_scale, (4, 2)) == reference.muon_lr_scale((4, 2))


def test_korean_message(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(CopiedAnswerError, match="복사한 답"):
        refuse_reference(Subclass, "adamw")


def test_every_reference_resolves():
    """A typo in a reference entry would silently refuse nothing: every entry must import."""
    import importlib

    for exercise in EXERCISES.values():
        assert exercise.references, exercise.id
        for entry in exercise.references:
            module, _, attr = entry.partition(":")
            loaded = importlib.import_module(module)
            if attr:
                assert hasattr(loaded, attr), entry
    with pytest.raises(ValueError, match=re.escape("'adam'")):
        get_exercise("adam")
