"""check_muon accepts correct Muons (float32 and bfloat16 Newton–Schulz in three operation orders, Keller
Jordan's code, the notebook's own) and rejects typical mistakes; copied answers raise CopiedAnswerError;
hints follow the notebook's language; its tolerance lies between the correct variants and the mistakes."""

import pytest
import torch

from classroom.checks.muon import MUON_CASES, MUON_REFERENCES, MUON_REL_TOL, check_muon, muon_step_difference
from classroom.checks.originality import CopiedAnswerError
from course_lib.optim import NS_COEFFICIENTS, muon_lr_scale

from ._helpers import HANGUL, MISTAKE_SEEDS, make_ns, notebook_answer, notebook_prose, report


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def notebook_muon():
    ns = notebook_answer("02_muon", "newton_schulz", {"QUINTIC": NS_COEFFICIENTS})
    return notebook_answer("02_muon", "muon", {**ns, "muon_lr_scale": muon_lr_scale})["MuonFromScratch"]


def make_muon(bug=None, ns=None):
    """A student-style Muon (``ns``: its Newton–Schulz, float32 by default); ``bug`` names one mistake."""
    ns = ns or make_ns()

    class StudentMuon(torch.optim.Optimizer):
        def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0,
                     adjust_lr_fn="original", ns_steps=5):
            super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                          adjust_lr_fn=adjust_lr_fn, ns_steps=ns_steps))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                lr, beta, wd = group["lr"], group["momentum"], group["weight_decay"]
                steps = group["ns_steps"] + {"ns_minus_one": -1, "ns_plus_one": 1}.get(bug, 0)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad
                    if bug == "l2":
                        g = g + wd * p
                    state = self.state[p]
                    if "buf" not in state or bug == "no_buffer":
                        state["buf"] = torch.zeros_like(g)
                    buf = state["buf"]
                    if bug == "ns_before_momentum":
                        buf.lerp_(ns(g, steps).to(buf.dtype), 1 - beta)
                        update = buf
                    else:
                        if bug == "momentum_without_one_minus_beta":
                            buf.mul_(beta).add_(g)
                        else:
                            buf.lerp_(g, 1 - beta)
                        nesterov = group["nesterov"] and bug != "no_nesterov"
                        update = g.lerp(buf, beta) if nesterov else buf
                        if bug == "nesterov_always":
                            update = g.lerp(buf, beta)
                        update = (make_ns("cubic") if bug == "cubic" else ns)(update, steps)
                    scale = muon_lr_scale(p.shape, group["adjust_lr_fn"])
                    if bug == "no_scale":
                        scale = 1.0
                    elif bug == "inverted_scale":
                        scale = 1.0 / scale
                    elif bug == "other_scale_rule":
                        other = "match_rms_adamw" if group["adjust_lr_fn"] == "original" else "original"
                        scale = muon_lr_scale(p.shape, other)
                    if bug == "decay_no_lr":
                        p.mul_(1 - wd)
                    elif bug not in ("no_decay", "l2"):
                        p.mul_(1 - (lr * scale if bug == "decay_scaled_lr" else lr) * wd)
                    p.add_(update.to(p.dtype), alpha=-lr * scale)

    return StudentMuon


class KellerMuon(torch.optim.Optimizer):
    """Muon in Keller Jordan's operation order (github.com/KellerJordan/Muon), bfloat16 Newton–Schulz."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0, adjust_lr_fn="original"):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      adjust_lr_fn=adjust_lr_fn))

    @staticmethod
    def zeropower(G, steps=5):
        a, b, c = (3.4445, -4.7750, 2.0315)
        X = G.bfloat16()
        X = X / (X.norm() + 1e-7)
        if G.size(-2) > G.size(-1):
            X = X.mT
        for _ in range(steps):
            A = X @ X.mT
            B = b * A + c * A @ A
            X = a * X + B @ X
        if G.size(-2) > G.size(-1):
            X = X.mT
        return X

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                momentum = state["momentum_buffer"]
                grad, beta = p.grad, group["momentum"]
                momentum.lerp_(grad, 1 - beta)
                update = grad.lerp_(momentum, beta) if group["nesterov"] else momentum
                update = self.zeropower(update)
                scale = muon_lr_scale(p.shape, group["adjust_lr_fn"])
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.reshape(p.shape), alpha=-group["lr"] * scale)


#: Correct Muons: float32 and bfloat16 Newton–Schulz in three operation orders, Keller Jordan's code.
CORRECT_MUONS = {
    "float32": make_muon(), "bf16 grouped": make_muon(ns=make_ns(compute=torch.bfloat16)),
    "bf16 addmm (torch's order)": make_muon(ns=make_ns(compute=torch.bfloat16, order="addmm")),
    "bf16 expanded": make_muon(ns=make_ns(compute=torch.bfloat16, order="expanded")),
    "Keller Jordan's": KellerMuon,
}
MUON_BUGS = ["ns_minus_one", "ns_plus_one", "cubic", "no_nesterov", "nesterov_always",
             "momentum_without_one_minus_beta", "ns_before_momentum", "decay_no_lr", "no_decay", "l2",
             "decay_scaled_lr", "no_scale", "inverted_scale", "other_scale_rule", "no_buffer"]


class StubMuon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0, adjust_lr_fn="original"):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      adjust_lr_fn=adjust_lr_fn))

    def step(self, closure=None):
        # YOUR CODE HERE
        raise NotImplementedError()


@pytest.mark.parametrize("name", list(CORRECT_MUONS))
def test_check_muon_accepts_correct_variants(name):
    check_muon(CORRECT_MUONS[name], verbose=False)


def test_check_muon_accepts_the_notebook_solution(capsys):
    check_muon(notebook_muon())
    assert "all checks passed" in capsys.readouterr().out


def test_check_muon_stub_fails():
    with pytest.raises(NotImplementedError):
        check_muon(StubMuon, verbose=False)


@pytest.mark.parametrize("bug", MUON_BUGS)
def test_check_muon_rejects(bug):
    with pytest.raises(AssertionError) as info:
        check_muon(make_muon(bug), verbose=False)
    assert not isinstance(info.value, CopiedAnswerError)


def test_check_muon_hints_in_korean(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as info:
        check_muon(make_muon("no_nesterov"), verbose=False)
    assert HANGUL.search(str(info.value)) and "가장 가까운 올바른 Muon" in str(info.value)
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        check_muon(make_muon("no_nesterov"), verbose=False)
    assert not HANGUL.search(str(info.value)) and "closest accepted Muon" in str(info.value)


class MuonSubclass(torch.optim.Muon):
    pass


def test_check_muon_refuses_copied_answers():
    from course_lib.optim import Muon

    calls_course_ns = make_muon(ns=lambda G, steps: __import__("course_lib.optim").optim.newton_schulz(G, steps))
    for copied in (MuonSubclass, torch.optim.Muon, Muon, calls_course_ns):
        with pytest.raises(CopiedAnswerError):
            check_muon(copied, verbose=False)


# ---- the notebook's prose describes the checker: the constants it quotes, and that it quotes them


def test_muon_tolerance_is_what_notebook_02_says():
    assert MUON_REL_TOL == 0.15 and len(MUON_REFERENCES) == 3
    prose = notebook_prose("02_muon")
    assert "the closest of these three accepted Muons" in prose["en"]
    assert f"by up to {MUON_REL_TOL:.0%}" in prose["en"]
    assert "세 가지 올바른 Muon 중 가장 가까운 것" in prose["ko"]
    assert f"최대 {MUON_REL_TOL:.0%}" in prose["ko"]


# ---- tolerances from measurement: for each statistic the checker bounds, recompute it over many seeds
# for correct variants and typical mistakes, and assert max(correct) < tolerance < min(mistake).
# The numbers quoted next to the checker's constants are these maxima and minima (run with -s).


def test_muon_tolerance():
    seeds = range(24)
    correct = dict(CORRECT_MUONS, notebook=notebook_muon())
    worst = max(muon_step_difference(cls, case, seed)["worst"]
                for cls in correct.values() for case in MUON_CASES for seed in seeds)
    closest = min(max(muon_step_difference(make_muon(bug), case, seed)["worst"] for case in MUON_CASES)
                  for bug in MUON_BUGS for seed in MISTAKE_SEEDS)
    report("Muon step difference", worst, closest, MUON_REL_TOL)
