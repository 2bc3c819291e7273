"""Checker for the Muon exercise of notebook 02.

``check_muon(optimizer_class)``: the student's Muon step by step next to the closest of three accepted
Muons (``torch.optim.Muon``, Keller Jordan's operation order, a float32 Newton–Schulz).

It prints a ``CheckReport`` and raises ``AssertionError`` with a hint in the notebook's language.
A copied answer raises ``CopiedAnswerError`` and an unfinished exercise ``NotImplementedError``, both
unchanged; any other exception from the student's code becomes an ``AssertionError`` that names it.
"""

from __future__ import annotations

import math

import torch

from course_lib.optim import NS_COEFFICIENTS, Muon, muon_lr_scale
from .i18n import case_name, tr
from .originality import call_student, refuse_reference
from .report import CheckReport

#: Tolerance on the parameter change of each step, relative (Frobenius) to the change of the closest of
#: the accepted Muons (``MUON_REFERENCES``) from the same parameters, momentum and gradient
#: (``muon_step_difference``). Measured over 24 seeds: correct variants reach at most 0.085 (bfloat16 in
#: an order none of the references uses; torch's order, Keller's order, float32 and the notebook's
#: solution give 0); the closest mistake 0.28 (decay multiplied by the scaled lr), one Newton–Schulz step
#: more or fewer 0.38. Compared with torch alone, Keller's bfloat16 order reached 0.070, above the former
#: tolerance of 0.06.
MUON_REL_TOL = 0.15

MUON_CASES = [
    dict(name="nesterov, wd 0.1, original", lr=0.05, momentum=0.95, nesterov=True, weight_decay=0.1,
         adjust_lr_fn="original"),
    dict(name="plain momentum 0.9, wd 0", lr=0.02, momentum=0.9, nesterov=False, weight_decay=0.0,
         adjust_lr_fn="original"),
    dict(name="nesterov 0.8, match_rms_adamw", lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.2,
         adjust_lr_fn="match_rms_adamw"),
]
MUON_SHAPES = [(32, 8), (8, 24), (16, 16), (32, 8)]


def _keller_newton_schulz(G, steps: int, coefficients=NS_COEFFICIENTS):
    """Newton–Schulz in Keller Jordan's operation order (github.com/KellerJordan/Muon), in bfloat16."""
    a, b, c = coefficients
    X = G.bfloat16()
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


class _KellerMuon(torch.optim.Optimizer):
    """Muon as Keller Jordan writes it (momentum with lerp, bfloat16 Newton–Schulz in his order)."""

    def __init__(self, params, lr, momentum, nesterov, weight_decay, adjust_lr_fn, ns_steps=5):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      adjust_lr_fn=adjust_lr_fn, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, beta, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buf.lerp_(p.grad, 1 - beta)
                update = p.grad.lerp(buf, beta) if group["nesterov"] else buf
                update = _keller_newton_schulz(update, group["ns_steps"])
                p.mul_(1 - lr * wd)
                p.add_(update.reshape(p.shape), alpha=-lr * muon_lr_scale(p.shape, group["adjust_lr_fn"]))


#: The accepted Muons: the same algorithm, rounded differently.
MUON_REFERENCES = {
    "torch.optim.Muon (bfloat16)": lambda params, **hp: torch.optim.Muon(params, **hp),
    "Keller Jordan's order (bfloat16)": lambda params, **hp: _KellerMuon(params, **hp),
    "float32 Newton–Schulz": lambda params, **hp: Muon(params, ns_dtype=torch.float32, **hp),
}


def muon_step_difference(optimizer_class, case, seed: int, steps: int = 12) -> dict:
    """Run the student's Muon next to every accepted Muon; before each step all parameters are set to
    torch's, so each step is compared on its own. Returns ``worst`` (the statistic ``MUON_REL_TOL``
    bounds: over the whole run, the worst relative step difference from the closest reference),
    ``reference``, ``where``, and the student's optimizer, frozen parameter and its initial value."""
    gen = torch.Generator().manual_seed(seed)
    hp = {k: v for k, v in case.items() if k != "name"}
    init = [torch.randn(s, generator=gen) for s in MUON_SHAPES]
    mine = [x.clone().requires_grad_() for x in init]
    frozen_init = torch.randn(12, 6, generator=gen)
    frozen = frozen_init.clone().requires_grad_()
    opt = call_student("muon", tr("creating your optimizer", "옵티마이저 생성"),
                       lambda: optimizer_class(mine + [frozen], **hp))
    refs = {}
    for name, make in MUON_REFERENCES.items():
        params = [x.clone().requires_grad_() for x in init]
        refs[name] = (params, make(params, **hp))
    base_params = refs["torch.optim.Muon (bfloat16)"][0]
    worst = {name: (0.0, "") for name in refs}
    for step in range(1, steps + 1):
        before = [p.detach().clone() for p in base_params]
        with torch.no_grad():
            for params in [mine] + [ps for ps, _ in refs.values()]:
                for p, b in zip(params, before):
                    p.copy_(b)
        for i, p in enumerate(mine):
            g = torch.randn(p.shape, generator=gen)
            p.grad = g.clone()
            for params, _ in refs.values():
                params[i].grad = g.clone()
        call_student("muon", tr(f"your step() (step {step})", f"여러분의 step()({step}번째 스텝)"), opt.step)
        for params, ref_opt in refs.values():
            ref_opt.step()
        for name, (params, _) in refs.items():
            for i, (p, r, b) in enumerate(zip(mine, params, before)):
                d_mine, d_ref = p.detach() - b, r.detach() - b
                rel = float((d_mine - d_ref).norm() / d_ref.norm()) if bool(torch.isfinite(d_mine).all()) else math.inf
                if rel > worst[name][0]:
                    worst[name] = (rel, tr(f"step {step}, parameter {i} of shape {tuple(p.shape)}",
                                           f"{step}번째 스텝, 모양이 {tuple(p.shape)}인 {i}번 매개변수"))
    reference = min(worst, key=lambda name: worst[name][0])
    return dict(worst=worst[reference][0], where=worst[reference][1], reference=reference, opt=opt,
                frozen=frozen, frozen_init=frozen_init)


def check_muon(optimizer_class, verbose: bool = True, steps: int = 12) -> None:
    """Run ``optimizer_class(params, lr=, momentum=, nesterov=, weight_decay=, adjust_lr_fn=)`` next to
    the accepted Muons (``MUON_REFERENCES``) on 2-D parameters, each step compared on its own
    (tolerance ``MUON_REL_TOL``); a parameter without a gradient must not change and must get no state."""
    refuse_reference(optimizer_class, "muon")
    report = CheckReport(tr("check_muon: your Muon vs torch.optim.Muon",
                            "check_muon: 여러분의 Muon과 torch.optim.Muon 비교"), verbose=verbose)
    for ci, case in enumerate(MUON_CASES):
        r = muon_step_difference(optimizer_class, case, seed=300 + ci, steps=steps)
        worst, where = r["worst"], r["where"]
        if verbose:
            print(tr(f"{case['name']:<30s} | worst step difference {worst:.2e} ({where}) vs the closest accepted "
                     f"Muon: {r['reference']} | allowed {MUON_REL_TOL}",
                     f"{case['name']:<30s} | 가장 큰 스텝 차이 {worst:.2e} ({where}), 가장 가까운 올바른 Muon: "
                     f"{r['reference']} | 허용 {MUON_REL_TOL}"))
        if not worst <= MUON_REL_TOL:
            scale = {s: round(muon_lr_scale(s, case["adjust_lr_fn"]), 3) for s in MUON_SHAPES[:3]}
            report.fail(tr(
                f"[{case['name']}] your step differs from the closest accepted Muon ({r['reference']}) by {worst:.3f} "
                f"(relative) at {where}. Check, in this order: buf ← β·buf + (1−β)·g kept in state across steps; "
                "with nesterov=True orthogonalize g + β·(buf − g) (lerp(g, buf, β)), else buf itself; Newton–Schulz "
                "(5 quintic steps) AFTER the momentum; decoupled decay θ ← θ·(1 − lr·λ) with the plain lr; step "
                f"−lr·scale·O with scale for {case['adjust_lr_fn']!r} = {scale} for shapes {list(scale)}.",
                f"[{case_name(case['name'])}] 스텝이 가장 가까운 올바른 Muon({r['reference']})과 {where}에서 "
                f"{worst:.3f}(상대값)만큼 "
                "다릅니다. 이 순서로 확인하세요: buf ← β·buf + (1−β)·g를 상태에 두고 스텝마다 이어 가기, "
                "nesterov=True이면 g + β·(buf − g)(lerp(g, buf, β))를, 아니면 buf 자체를 직교화하기, 모멘텀 "
                "다음에 Newton–Schulz(5차 반복 5번), 감쇠는 스케일을 곱하지 않은 lr로 θ ← θ·(1 − lr·λ), 스텝은 "
                f"−lr·scale·O이고 {case['adjust_lr_fn']!r}의 scale은 모양 {list(scale)}에 대해 {scale}."))
        if not torch.equal(r["frozen"].detach(), r["frozen_init"]):
            report.fail(tr(f"[{case['name']}] a parameter whose .grad is None changed; skip it.",
                           f"[{case_name(case['name'])}] .grad가 None인 매개변수가 바뀌었습니다. 건너뛰세요."))
        if r["frozen"] in r["opt"].state and len(r["opt"].state[r["frozen"]]) > 0:
            report.fail(tr(f"[{case['name']}] a parameter that never had a gradient got optimizer state.",
                           f"[{case_name(case['name'])}] 기울기를 한 번도 받지 않은 매개변수에 옵티마이저 상태가 "
                           "생겼습니다."))
    report.finish()
