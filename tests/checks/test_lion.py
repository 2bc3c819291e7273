"""check_lion accepts correct Lions (written several ways, the notebook's own) and rejects typical
mistakes; copied answers raise CopiedAnswerError; hints follow the notebook's language; its tolerances lie
between the correct variants and the mistakes."""

import pytest
import torch

from classroom.checks.lion import LION_CASES, LION_TOL, check_lion, lion_run
from classroom.checks.originality import CopiedAnswerError

from ._helpers import HANGUL, MISTAKE_SEEDS, SEEDS, notebook_answer, notebook_prose, report


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_lion(form="mul_add", bug=None):
    """A student-style Lion. ``form`` is a correct way to write it; ``bug`` names one typical mistake."""

    class StudentLion(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
            super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))
            self.shared = {}

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
                if bug == "defaults_not_group":
                    lr, (b1, b2), wd = self.defaults["lr"], self.defaults["betas"], self.defaults["weight_decay"]
                if bug == "swap_betas":
                    b1, b2 = b2, b1
                for p in group["params"]:
                    if p.grad is None:
                        if bug == "no_grad_gets_state":
                            self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                        continue
                    g = p.grad
                    if bug == "l2":
                        g = g + wd * p
                    state = self.shared.setdefault(tuple(p.shape), {}) if bug == "shared_state" else self.state[p]
                    if not state:
                        state["exp_avg"] = g.clone() if bug == "momentum_init_grad" else torch.zeros_like(p)
                    m = state["exp_avg"]
                    if bug == "momentum_before_sign":
                        m.mul_(b2).add_(g, alpha=1 - b2)
                    if bug not in ("l2", "no_decay", "decay_after"):
                        if bug == "decay_no_lr":
                            p.mul_(1 - wd)
                        elif form == "sub_decay":
                            p.sub_(lr * wd * p)
                        else:
                            p.mul_(1 - lr * wd)
                    if bug == "lerp_weight":
                        c = m.lerp(g, b1)
                    elif form == "lerp":
                        c = m.lerp(g, 1 - b1)
                    else:
                        c = b1 * m + (1 - b1) * g
                    if bug == "no_sign":
                        update = c
                    elif bug == "sign_zero_is_minus":
                        update = torch.where(c > 0, 1.0, -1.0).to(c.dtype)
                    else:
                        update = torch.sign(c)
                    if bug == "flipped_sign":
                        p.add_(update, alpha=lr)
                    else:
                        p.add_(update, alpha=-lr)
                    if bug == "decay_after":
                        p.mul_(1 - lr * wd)
                    if bug != "momentum_before_sign":
                        if form == "lerp":
                            m.lerp_(g, 1 - b2)
                        else:
                            m.mul_(b2).add_(g, alpha=1 - b2)
            return None

    return StudentLion


class StubLion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    def step(self, closure=None):
        # YOUR CODE HERE
        raise NotImplementedError()


@pytest.mark.parametrize("form", ["mul_add", "lerp", "sub_decay"])
def test_check_lion_accepts_correct_forms(form):
    check_lion(make_lion(form), verbose=False)


def notebook_lion():
    return notebook_answer("03_lion_and_zoo", "lion", {})["LionFromScratch"]


def test_check_lion_accepts_the_notebook_solution(capsys):
    check_lion(notebook_lion())
    out = capsys.readouterr().out
    assert "all checks passed" in out and "max diff 0.00e+00" in out


class LionSubclass(__import__("lion_pytorch").Lion):
    pass


class WrapsLionUpdate(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        from course_lib.optim import lion_update

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                    lion_update(p, p.grad, m, group["lr"], *group["betas"], group["weight_decay"])


def test_check_lion_refuses_copied_answers():
    import lion_pytorch

    from course_lib.optim import Lion

    for copied in (LionSubclass, lion_pytorch.Lion, Lion, WrapsLionUpdate):
        with pytest.raises(CopiedAnswerError):
            check_lion(copied, verbose=False)


def test_check_lion_hints_in_korean(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as info:
        check_lion(make_lion(bug="flipped_sign"), verbose=False)
    assert HANGUL.search(str(info.value)) and "첫 스텝부터 다릅니다" in str(info.value)
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        check_lion(make_lion(bug="flipped_sign"), verbose=False)
    assert not HANGUL.search(str(info.value)) and "Already the first step differs" in str(info.value)


def test_check_lion_stub_fails():
    with pytest.raises(NotImplementedError):
        check_lion(StubLion, verbose=False)


LION_BUGS = ["momentum_before_sign", "swap_betas", "no_sign", "l2", "decay_no_lr", "decay_after",
             "momentum_init_grad", "flipped_sign", "no_decay", "lerp_weight", "sign_zero_is_minus",
             "defaults_not_group", "shared_state", "no_grad_gets_state"]


@pytest.mark.parametrize("bug", LION_BUGS)
def test_check_lion_rejects(bug):
    with pytest.raises(AssertionError) as info:
        check_lion(make_lion("mul_add", bug=bug), verbose=False)
    assert not isinstance(info.value, CopiedAnswerError)


def test_rejection_hint_points_at_the_momentum_for_a_late_difference():
    with pytest.raises(AssertionError, match="Step 1 agrees"):
        check_lion(make_lion(bug="momentum_before_sign"), verbose=False)
    with pytest.raises(AssertionError, match="Already the first step differs"):
        check_lion(make_lion(bug="flipped_sign"), verbose=False)


def test_a_crash_becomes_an_assertion_with_the_error_named():
    class Crashing(StubLion):
        def step(self, closure=None):
            raise KeyError("exp_avg")

    with pytest.raises(AssertionError, match="KeyError"):
        check_lion(Crashing, verbose=False)


def test_a_frozen_parameter_that_moves_is_reported():
    base = make_lion()

    class MovesFrozen(base):
        @torch.no_grad()
        def step(self, closure=None):
            super().step()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        p.mul_(1 - group["lr"] * group["weight_decay"])

    with pytest.raises(AssertionError, match="grad is None changed"):
        check_lion(MovesFrozen, verbose=False)


def test_lion_cases_are_what_notebook_03_says():
    # "over 20–30 steps ... with two sets of betas"
    assert {c["steps"] for c in LION_CASES} <= set(range(20, 31))
    assert len({c["groups"][0]["betas"] for c in LION_CASES}) == 2
    prose = notebook_prose("03_lion_and_zoo")
    assert "over 20–30 steps" in prose["en"] and "two sets of betas" in prose["en"]
    assert "20–30스텝씩" in prose["ko"] and "두 가지 betas" in prose["ko"]


# ---- tolerances from measurement: for each statistic the checker bounds, recompute it over many seeds
# for correct variants and typical mistakes, and assert max(correct) < tolerance < min(mistake).
# The numbers quoted next to the checker's constants are these maxima and minima (run with -s).


#: Mistakes that the parameters cannot show in one dtype by design: sign(0) only matters where the
#: interpolation is exactly 0 (the float64 case with a zero first gradient), two groups are only in a
#: float64 case, and a state for a frozen parameter is caught by the state check, not by a difference.
LION_NOT_IN = {torch.float32: {"sign_zero_is_minus", "defaults_not_group", "no_grad_gets_state"},
               torch.float64: {"no_grad_gets_state"}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_lion_tolerance(dtype):
    cases = [c for c in LION_CASES if c["dtype"] == dtype]
    correct = [make_lion(form) for form in ("mul_add", "lerp", "sub_decay")] + [notebook_lion()]
    worst = max(lion_run(cls, case, seed)["diff"] for cls in correct for case in cases for seed in SEEDS)
    closest = min(max(lion_run(make_lion(bug=bug), case, seed)["diff"] for case in cases)
                  for bug in LION_BUGS if bug not in LION_NOT_IN[dtype] for seed in MISTAKE_SEEDS)
    report(f"Lion ({dtype})", worst, closest, LION_TOL[dtype])
