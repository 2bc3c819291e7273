"""The optimizer checkers accept correct solutions (every accepted form, the notebooks' own) and reject
typical mistakes, naming the part of AdamW that is wrong; copied answers raise CopiedAnswerError."""

import math
import re
from pathlib import Path

import pytest
import torch

from course_lib.checks.optim import ADAMW_PARTS, check_adamw, check_muon, check_newton_schulz
from course_lib.checks.originality import CopiedAnswerError
from course_lib.i18n import tr
from course_lib.optim import NS_COEFFICIENTS, muon_lr_scale

HANGUL = re.compile("[\uac00-\ud7a3]")
SRC = Path(__file__).resolve().parent.parent / "notebooks" / "src"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def notebook_answer(stem: str, exercise: str, namespace: dict) -> dict:
    """Run the notebook's ``#%% code answer=<exercise>`` cell (the reference solution) in ``namespace``."""
    text = (SRC / f"{stem}.txt").read_text(encoding="utf-8")
    cells = re.split(r"^(#%% .*)$", text, flags=re.M)
    code = next(body for header, body in zip(cells[1::2], cells[2::2])
                if header.strip() == f"#%% code answer={exercise}")
    namespace.setdefault("torch", torch)
    namespace.setdefault("math", math)
    namespace.setdefault("tr", tr)
    exec(compile(code, f"{stem}:{exercise}", "exec"), namespace)  # noqa: S102 - our own notebook source
    return namespace


def notebook_adamw():
    return notebook_answer("01_adamw", "adamw", {})["AdamWFromScratch"]


def notebook_newton_schulz():
    return notebook_answer("02_muon", "newton_schulz", {"QUINTIC": NS_COEFFICIENTS})["newton_schulz"]


def notebook_muon():
    ns = notebook_answer("02_muon", "newton_schulz", {"QUINTIC": NS_COEFFICIENTS})
    return notebook_answer("02_muon", "muon", {**ns, "muon_lr_scale": muon_lr_scale})["MuonFromScratch"]


# ------------------------------------------------------------------------------------------ AdamW


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


# ------------------------------------------------------------------------------- Newton–Schulz


def make_ns(bug=None, coefficients=NS_COEFFICIENTS, compute=torch.float32, order="grouped"):
    """A student-style Newton–Schulz; ``order``: "grouped" (X ← aX + (bA + cA²)X), "addmm" (torch's fused
    order) or "expanded" (aX + b(AX) + c(A(AX))); ``bug`` names one typical mistake."""

    def ns(G, steps=5):
        a, b, c = coefficients
        if bug == "cubic":
            a, b, c = 1.5, -0.5, 0.0
        X = G.to(compute)
        if bug == "identity":
            return G
        tall = X.shape[0] > X.shape[1]
        if tall:
            X = X.T
        if bug == "max_norm":
            X = X / X.abs().max()
        elif bug == "spectral_norm":
            X = X / torch.linalg.matrix_norm(X.float(), ord=2).to(compute)
        elif bug != "no_norm":
            X = X / (X.norm() + 1e-7)
        n = {"steps_plus_one": steps + 1, "fixed_5": 5, "steps_minus_one": steps - 1}.get(bug, steps)
        for _ in range(n):
            A = X @ X.T
            if order == "addmm":
                X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)
            elif order == "expanded":
                AX = A @ X
                X = a * X + b * AX + c * (A @ AX)
            else:
                X = a * X + (b * A + c * A @ A) @ X
        if tall and bug != "no_transpose_back":
            X = X.T
        return X

    return ns


def ns_in_place(G, steps=5):
    X = G if G.dtype == torch.float32 else G.float()
    X /= X.norm()  # changes the caller's tensor for float32 input
    return make_ns()(X, steps)


def ns_stub(G, steps=5):
    # YOUR CODE HERE
    raise NotImplementedError()


#: Correct Newton–Schulz functions: the notebook's, float32/float64/bfloat16, three operation orders.
CORRECT_NS = {
    "float32": make_ns(), "float64": make_ns(compute=torch.float64),
    "bf16 grouped (Keller)": make_ns(compute=torch.bfloat16),
    "bf16 addmm (torch)": make_ns(compute=torch.bfloat16, order="addmm"),
    "bf16 expanded": make_ns(compute=torch.bfloat16, order="expanded"),
    "float32 expanded": make_ns(order="expanded"),
}

WRONG_NS = {
    "cubic": make_ns("cubic"), "identity": make_ns("identity"), "no_norm": make_ns("no_norm"),
    "max_norm": make_ns("max_norm"), "spectral_norm": make_ns("spectral_norm"), "steps+1": make_ns("steps_plus_one"),
    "steps-1": make_ns("steps_minus_one"), "fixed_5": make_ns("fixed_5"),
    "no_transpose_back": make_ns("no_transpose_back"),
    "typo_coefficient": make_ns(coefficients=(3.4445, -4.7750, 2.315)),
    "other_coefficients": make_ns(coefficients=(2.0, -1.5, 0.5)),
    "bf16 steps-1": make_ns("steps_minus_one", compute=torch.bfloat16),
}


@pytest.mark.parametrize("name", list(CORRECT_NS))
def test_check_newton_schulz_accepts_correct_variants(name):
    check_newton_schulz(CORRECT_NS[name], verbose=False)


def test_check_newton_schulz_accepts_the_notebook_solution(capsys):
    check_newton_schulz(notebook_newton_schulz())
    assert "all checks passed" in capsys.readouterr().out


def test_check_newton_schulz_stub_fails():
    with pytest.raises(NotImplementedError):
        check_newton_schulz(ns_stub, verbose=False)


@pytest.mark.parametrize("wrong", [*WRONG_NS.values(), ns_in_place, lambda G, steps=5: None],
                         ids=[*WRONG_NS, "in_place", "returns_none"])
def test_check_newton_schulz_rejects(wrong):
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(wrong, verbose=False)
    assert not isinstance(info.value, CopiedAnswerError)


def test_check_newton_schulz_hints_in_korean(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(make_ns("cubic"), verbose=False)
    assert HANGUL.search(str(info.value)) and "상대 오차" in str(info.value)
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(make_ns("cubic"), verbose=False)
    assert not HANGUL.search(str(info.value)) and "relative error" in str(info.value)


def ns_calls_course_lib(G, steps=5):
    from course_lib import optim

    return optim.newton_schulz(G, steps, dtype=torch.float32)


def ns_calls_torch(G, steps=5):
    from torch.optim._muon import _zeropower_via_newtonschulz

    return _zeropower_via_newtonschulz(G.float(), NS_COEFFICIENTS, steps, 1e-7)


def test_check_newton_schulz_refuses_copied_answers():
    from course_lib.optim import newton_schulz

    for copied in (newton_schulz, ns_calls_course_lib, ns_calls_torch):
        with pytest.raises(CopiedAnswerError):
            check_newton_schulz(copied, verbose=False)


# ------------------------------------------------------------------------------------------- Muon


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
