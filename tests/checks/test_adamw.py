"""check_adamw accepts correct solutions (every accepted form, the notebook's own, a foreach version) and
rejects typical mistakes, naming the part of AdamW that is wrong; copied answers raise CopiedAnswerError;
its tolerances lie between the correct variants and the mistakes."""

import math

import pytest
import torch

from classroom.checks.adamw import (ADAMW_CASES, ADAMW_PARTS, ADAMW_PROBE_TOL, ADAMW_TOL, ADAMW_VARIANTS,
                                    adamw_probe_statistics, adamw_run, check_adamw)
from classroom.checks.originality import CopiedAnswerError

from ._helpers import HANGUL, MISTAKE_SEEDS, SEEDS, notebook_answer, notebook_prose, report


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def notebook_adamw():
    return notebook_answer("01_adamw", "adamw", {})["AdamWFromScratch"]


def make_adamw(decay="after", form="efficient", bug=None):
    """A student-style AdamW (a hand-written loop). ``bug`` names one typical mistake."""

    class StudentAdamW(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
            self.global_step = 0
            self.shared = {}

        @torch.no_grad()
        def step(self, closure=None):
            self.global_step += 1
            for group in self.param_groups:
                lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
                if bug == "defaults_not_group":
                    lr, wd = self.defaults["lr"], self.defaults["weight_decay"]
                if bug == "swap_betas":
                    b1, b2 = b2, b1
                for p in group["params"]:
                    if p.grad is None:
                        if bug == "no_grad_gets_state":
                            self.state[p]["step"] = 0
                        continue
                    g = p.grad
                    if bug == "l2":
                        g = g + wd * p
                    if bug == "shared_state":
                        state = self.shared.setdefault(tuple(p.shape), {})
                    else:
                        state = self.state[p]
                    if not state:
                        state["step"] = 0
                        kind = dict(dtype=torch.float32) if bug == "state_float32" else {}
                        state["m"] = torch.zeros_like(p, **kind)
                        state["v"] = torch.zeros_like(p, **kind)
                    if bug != "step_from_zero":
                        state["step"] += 1
                    t = self.global_step if bug == "global_step" else state["step"]
                    if bug == "step_from_zero":
                        state["step"] += 1
                    m, v = state["m"], state["v"]
                    if decay == "before" and bug not in ("l2", "no_decay"):
                        p.mul_(1 - (wd if bug == "decay_no_lr" else lr * wd))
                    if bug == "m_without_one_minus_beta":
                        m.mul_(b1).add_(g)
                    else:
                        m.mul_(b1).add_(g, alpha=1 - b1)
                    if bug == "v_with_g":
                        v.mul_(b2).add_(g, alpha=1 - b2)
                    else:
                        v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    bc1, bc2 = 1 - b1**t, 1 - b2**t
                    if bug == "no_bias_correction":
                        bc1 = bc2 = 1.0
                    if bug == "eps_in_sqrt":
                        update = (m / bc1) / (v / bc2 + eps).sqrt()
                    elif form == "textbook":
                        update = (m / bc1) / ((v / bc2).sqrt() + eps)
                    else:
                        update = m / (v.sqrt() + eps) * (math.sqrt(bc2) / bc1)
                    if bug == "sign":
                        p.add_(update.to(p.dtype), alpha=lr)
                    else:
                        p.sub_(update.to(p.dtype), alpha=lr)
                    if decay == "after" and bug not in ("l2", "no_decay"):
                        p.mul_(1 - (wd if bug == "decay_no_lr" else lr * wd))

    return StudentAdamW


class ForeachAdamW(torch.optim.Optimizer):
    """A correct AdamW written with torch._foreach_* over each group (decay before, efficient form)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is not None and not self.state[p]:
                    self.state[p].update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
            ps = [p for p in group["params"] if p.grad is not None]
            for dtype in {p.dtype for p in ps}:  # _foreach ops want one dtype per list
                params = [p for p in ps if p.dtype == dtype]
                states = [self.state[p] for p in params]
                grads = [p.grad for p in params]
                ms, vs = [s["m"] for s in states], [s["v"] for s in states]
                torch._foreach_mul_(params, 1 - lr * wd)
                torch._foreach_lerp_(ms, grads, 1 - b1)
                torch._foreach_mul_(vs, b2)
                torch._foreach_addcmul_(vs, grads, grads, 1 - b2)
                for p, s, m, v in zip(params, states, ms, vs):
                    s["step"] += 1
                    t = s["step"]
                    p.addcdiv_(m, v.sqrt() + eps, value=-lr * math.sqrt(1 - b2**t) / (1 - b1**t))


class StubAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def step(self, closure=None):
        # YOUR CODE HERE
        raise NotImplementedError()


@pytest.mark.parametrize("decay", ["before", "after"])
@pytest.mark.parametrize("form", ["textbook", "efficient"])
def test_check_adamw_accepts_every_accepted_form(decay, form):
    check_adamw(make_adamw(decay, form), verbose=False)


def test_check_adamw_accepts_the_notebook_solution_and_a_foreach_version(capsys):
    check_adamw(notebook_adamw())
    check_adamw(ForeachAdamW, verbose=False)
    assert "all checks passed" in capsys.readouterr().out


def test_check_adamw_stub_fails():
    with pytest.raises(NotImplementedError):
        check_adamw(StubAdamW, verbose=False)


#: Each typical mistake and the part of AdamW the failure message must name.
ADAMW_BUGS = {
    "l2": "decay", "no_decay": "decay", "decay_no_lr": "decay",
    "no_bias_correction": "bias_correction", "step_from_zero": "bias_correction",
    "eps_in_sqrt": "eps", "swap_betas": "moments", "v_with_g": "moments", "m_without_one_minus_beta": "moments",
    "sign": "sign", "shared_state": "state", "global_step": "state", "no_grad_gets_state": "state",
    "state_float32": "dtype", "defaults_not_group": "groups",
}


@pytest.mark.parametrize("decay", ["before", "after"])
@pytest.mark.parametrize("form", ["textbook", "efficient"])
@pytest.mark.parametrize("bug", list(ADAMW_BUGS))
def test_check_adamw_names_the_wrong_part(bug, decay, form):
    with pytest.raises(AssertionError) as info:
        check_adamw(make_adamw(decay, form, bug=bug), verbose=False)
    message = str(info.value)
    assert not isinstance(info.value, CopiedAnswerError)
    named = [part for part, (en, _) in ADAMW_PARTS.items() if en in message]
    assert named and named[0] == ADAMW_BUGS[bug], (named, message)


def test_check_adamw_names_the_part_in_korean(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as info:
        check_adamw(make_adamw(bug="eps_in_sqrt"), verbose=False)
    message = str(info.value)
    assert f"틀린 부분: {ADAMW_PARTS['eps'][1]}" in message and HANGUL.search(message)
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        check_adamw(make_adamw(bug="eps_in_sqrt"), verbose=False)
    assert f"wrong part: {ADAMW_PARTS['eps'][0]}" in str(info.value) and not HANGUL.search(str(info.value))


def test_check_adamw_rejects_a_frozen_parameter_that_moves():
    base = make_adamw()

    class Moves(base):
        def step(self, closure=None):
            super().step()
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is None:
                            p.mul_(0.999)

    with pytest.raises(AssertionError, match="grad is None changed"):
        check_adamw(Moves, verbose=False)


class AdamWSubclass(torch.optim.AdamW):
    pass


class WrapsTorchAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.inner = None

    def step(self, closure=None):
        self.inner = self.inner or torch.optim.AdamW(self.param_groups, foreach=False)
        self.inner.step()


def test_check_adamw_refuses_copied_answers():
    from course_lib.optim import AdamW

    for copied in (AdamWSubclass, AdamW, torch.optim.AdamW, WrapsTorchAdamW):
        with pytest.raises(CopiedAnswerError):
            check_adamw(copied, verbose=False)


# ---- the notebook's prose describes the checker: the constants it quotes, and that it quotes them


def test_adamw_cases_are_what_notebook_01_says():
    # "four runs of 20 to 30 steps ... four pairs of betas ... the four correct variants"
    assert len(ADAMW_CASES) == 4 and len(ADAMW_VARIANTS) == 4
    assert {c["steps"] for c in ADAMW_CASES} <= set(range(20, 31))
    assert len({c["groups"][0]["betas"] for c in ADAMW_CASES}) == 4
    prose = notebook_prose("01_adamw")
    for claim in ("four runs of 20 to 30 steps", "four pairs of betas", "four correct variants"):
        assert claim in prose["en"], claim
    for claim in ("20–30번씩 네 번 실행", "베타 네 쌍", "올바른 네 가지 변형"):
        assert claim in prose["ko"], claim


# ---- tolerances from measurement: for each statistic the checker bounds, recompute it over many seeds
# for correct variants and typical mistakes, and assert max(correct) < tolerance < min(mistake).
# The numbers quoted next to the checker's constants are these maxima and minima (run with -s).


CORRECT_ADAMWS = {**{f"{d}, {f}": make_adamw(d, f) for d in ("before", "after") for f in ("textbook", "efficient")},
                  "foreach": ForeachAdamW}

#: Which probe statistic names each mistake (the probe of the part it gets wrong).
PROBE_STAT = {"moments": "residual", "sign": "scale", "bias_correction": "scale", "eps": "eps", "state": "state",
              "decay": "decay", "dtype": "dtype", "groups": "groups"}
SCALE_MISTAKES = {"m_without_one_minus_beta"}  # a moments mistake seen in the step's size, not its direction


def test_adamw_probe_tolerance():
    correct = dict(CORRECT_ADAMWS, notebook=notebook_adamw())
    worst = max(v for cls in correct.values() for seed in SEEDS
                for v in adamw_probe_statistics(cls, seed)["stats"].values())
    # a float32 state must pass every probe but the dtype probe (which names it)
    float32_state = max(v for seed in SEEDS for k, v in adamw_probe_statistics(make_adamw(bug="state_float32"),
                                                                               seed)["stats"].items() if k != "dtype")
    closest = math.inf
    for bug, part in ADAMW_BUGS.items():
        key = "scale" if bug in SCALE_MISTAKES else PROBE_STAT[part]
        for seed in MISTAKE_SEEDS:
            closest = min(closest, adamw_probe_statistics(make_adamw("after", "efficient", bug), seed)["stats"][key])
    report("AdamW probes", max(worst, float32_state), closest, ADAMW_PROBE_TOL)


#: Mistakes the long runs cannot see in one dtype by design: the float64 cases have one group each, the
#: float32 cases a small ε (so ε inside the square root changes nothing) and a float32 state is no mistake
#: for float32 parameters.
NOT_IN = {torch.float64: {"defaults_not_group"}, torch.float32: {"state_float32", "eps_in_sqrt"}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_adamw_run_tolerance(dtype):
    cases = [c for c in ADAMW_CASES if c["dtype"] == dtype]
    correct = dict(CORRECT_ADAMWS, notebook=notebook_adamw())
    worst = max(adamw_run(cls, case, seed)[0] for cls in correct.values() for case in cases for seed in SEEDS)
    closest = math.inf
    for bug in ADAMW_BUGS:
        if bug in NOT_IN[dtype] or bug in ("no_grad_gets_state", "step_from_zero"):  # state check / crash
            continue
        for seed in MISTAKE_SEEDS:
            closest = min(closest, max(adamw_run(make_adamw("after", "efficient", bug), c, seed)[0] for c in cases))
    report(f"AdamW runs ({dtype})", worst, closest, ADAMW_TOL[dtype])
