"""Checker for the Lion exercise of notebook 03.

``check_lion(optimizer_class)`` runs the student's Lion next to ``lion_pytorch.Lion`` (and
``course_lib.optim.lion_update``, which equals it bit for bit) over 20–30 steps, on 1-D, 2-D and 3-D
tensors, in float32 and float64, with betas (0.9, 0.99) and (0.95, 0.98), weight decay on and off, an
all-zero gradient, a tensor whose gradient is sometimes ``None``, a parameter that never gets one and
two param groups with different hyperparameters.

Comparing a sign-based optimizer needs care, because ``sign`` is discontinuous: two correct programs
that compute β₁·m + (1−β₁)·g in a different order (``lerp`` instead of ``mul``/``add``) round
differently, and where that interpolation is within rounding of 0 their signs may differ and the
coordinate then moves 2·lr apart. Lion's momentum depends only on the gradients, never on the
parameters, so such a "tie" affects that one coordinate only. The checker records, in the reference
run, every coordinate whose interpolation was ever that close to 0 (``TIE_RTOL`` relative to
β₁·|m| + (1−β₁)·|g|) and leaves those out of the comparison; every other coordinate must agree within
``LION_TOL``. On the checker's fixed data there happen to be no ties at all (the report prints the count).
"""

from __future__ import annotations

import math

import torch

from course_lib.optim import lion_update
from .i18n import case_name, tr
from ._common import case_params, assert_frozen_untouched, scripted_grad
from .originality import call_student, refuse_reference
from .report import CheckReport

#: Tolerance on max |difference| of the parameters after the whole run (``lion_run``, ties left out, see
#: the module docstring). A correct Lion that writes the decay as θ − lr·λ·θ instead of θ·(1 − lr·λ), or
#: the interpolation with lerp, differs by rounding only. Measured (correct: 20 seeds, mistakes: 5):
#: correct variants reach at most 1.7e-6 in float32 and 1.3e-15 in float64; the closest mistake (decay
#: applied after the update) 1.9e-4 and 7.8e-3.
LION_TOL = {torch.float32: 2e-5, torch.float64: 1e-12}
#: A coordinate is a "tie" when |β₁·m + (1−β₁)·g| ≤ TIE_RTOL · (β₁·|m| + (1−β₁)·|g|): within the
#: rounding that a different but correct order of operations can accumulate in m over ≤ 30 steps.
TIE_RTOL = {torch.float32: 1e3 * torch.finfo(torch.float32).eps, torch.float64: 1e3 * torch.finfo(torch.float64).eps}

LION_SHAPES = [(6, 5), (7,), (3, 4, 2), (6, 5)]  # the repeated shape catches state shared between tensors

LION_CASES = [
    dict(name="float32, betas (0.9, 0.99), wd 0.1", tag="fp32", dtype=torch.float32, steps=25, grad_scale=1.0,
         groups=[dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)]),
    dict(name="float64, betas (0.95, 0.98), wd 0.5, zero first gradient", tag="fp64", dtype=torch.float64,
         steps=20, grad_scale=1.0, zero_first=True,
         groups=[dict(lr=3e-2, betas=(0.95, 0.98), weight_decay=0.5)]),
    dict(name="float64, two groups (wd 0 / wd 1.0)", tag="fp64, 2 groups", dtype=torch.float64, steps=24,
         grad_scale=0.3,
         groups=[dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0),
                 dict(lr=3e-3, betas=(0.95, 0.98), weight_decay=1.0)]),
    dict(name="float32, wd off, betas (0.95, 0.98), tiny grads", tag="fp32", dtype=torch.float32, steps=30,
         grad_scale=1e-3, groups=[dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.0)]),
]


def _lion_hint() -> str:
    return tr("Lion, in this order for each parameter with a gradient: (1) decoupled decay θ ← θ·(1 − lr·λ) "
              "(multiplied by lr, not added to the gradient); (2) c = β₁·m + (1−β₁)·g with the OLD momentum and "
              "β₁ = betas[0]; (3) θ ← θ − lr·sign(c) (torch.sign, so sign(0) = 0); (4) only then "
              "m ← β₂·m + (1−β₂)·g with β₂ = betas[1]. m starts at zeros, lives in self.state[p], and "
              "lr/betas/weight_decay come from each param group.",
              "기울기가 있는 매개변수마다 Lion은 이 순서입니다. (1) 분리된 가중치 감쇠 θ ← θ·(1 − lr·λ)(기울기에 "
              "더하지 않고 lr을 곱함), (2) *이전* 모멘텀과 β₁ = betas[0]으로 c = β₁·m + (1−β₁)·g, "
              "(3) θ ← θ − lr·sign(c)(torch.sign이라 sign(0) = 0), (4) 그다음에야 β₂ = betas[1]로 "
              "m ← β₂·m + (1−β₂)·g. m은 0에서 시작해 self.state[p]에 두고, lr·betas·weight_decay는 매개변수 "
              "그룹마다 읽습니다.")


def _first_step_hint(step: int) -> str:
    if step == 1:
        return tr("Already the first step differs, before the momentum can matter: look at the sign (θ − lr·sign), "
                  "the interpolation weights, the decay (θ·(1 − lr·λ)) and the lr/betas read from the group.",
                  "모멘텀이 영향을 주기도 전인 첫 스텝부터 다릅니다. 부호(θ − lr·sign), 보간 가중치, 감쇠"
                  "(θ·(1 − lr·λ)), 그룹에서 읽은 lr·betas를 보세요.")
    return tr(f"Step 1 agrees but step {step} does not, so look at what carries over between steps: the momentum "
              "update m ← β₂·m + (1−β₂)·g AFTER the sign, m starting at zeros, one state per parameter, the "
              "decay taken from the parameter before the update, and the interpolation weights (at step 1, m = 0 "
              "and sign(c) = sign(g) whatever β₁ is, so a wrong β₁ only shows from step 2 on).",
              f"1번째 스텝은 맞는데 {step}번째 스텝이 다르니, 스텝 사이에 이어지는 것을 보세요: 부호를 구한 *다음*의 "
              "모멘텀 업데이트 m ← β₂·m + (1−β₂)·g, 0에서 시작하는 m, 매개변수마다 따로 두는 상태, 업데이트 전 "
              "매개변수로 계산하는 감쇠, 보간 가중치(1번째 스텝에서는 m = 0이라 β₁이 무엇이든 sign(c) = sign(g)"
              "이므로, 잘못된 β₁은 2번째 스텝부터 드러납니다).")


def lion_run(optimizer_class, case, seed: int) -> dict:
    """One run of ``case`` next to lion_pytorch.Lion. Returns ``diff`` (max |difference| of the
    parameters, ties left out: the statistic ``LION_TOL`` bounds), ``first_bad`` (the first step where
    some coordinate differs by more than the tolerance, or None), ``ties``, ``coordinates``, and the
    student's optimizer, frozen parameter and its initial value."""
    import lion_pytorch

    gen = torch.Generator().manual_seed(seed)
    dtype = case["dtype"]
    init, student, frozen, frozen_init, groups = case_params(case, LION_SHAPES, gen)
    opt = call_student("lion", tr("creating your optimizer", "옵티마이저 생성"),
                       lambda: optimizer_class(groups, **case["groups"][0]), crash_hint=_lion_hint())
    # reference 1: lion_update by hand (also gives the interpolation, for the tie mask)
    refs = [[x.clone() for x in g] for g in init]
    moms = [[torch.zeros_like(x) for x in g] for g in init]
    ties = [[torch.zeros(x.shape, dtype=torch.bool) for x in g] for g in init]
    # reference 2: lion-pytorch itself, the ground truth
    lp = [[x.clone().requires_grad_() for x in g] for g in init]
    lp_opt = lion_pytorch.Lion([dict(params=ps, **hp) for ps, hp in zip(lp, case["groups"])])
    first_bad = None
    for step in range(1, case["steps"] + 1):
        for gi, hp in enumerate(case["groups"]):
            b1, b2 = hp["betas"]
            for pi, p in enumerate(student[gi]):
                grad = scripted_grad(p, pi, step, case, gen)
                p.grad = None if grad is None else grad.clone()
                lp[gi][pi].grad = None if grad is None else grad.clone()
                if grad is None:
                    continue
                m = moms[gi][pi]
                c = m * b1 + grad * (1 - b1)
                scale = m.abs() * b1 + grad.abs() * (1 - b1)
                ties[gi][pi] |= (c != 0) & (c.abs() <= TIE_RTOL[dtype] * scale)
                lion_update(refs[gi][pi], grad, m, hp["lr"], b1, b2, hp["weight_decay"])
        call_student("lion", tr(f"your step() (step {step}, case: {case['name']})",
                                f"여러분의 step()({step}번째 스텝, 설정: {case_name(case['name'])})"), opt.step,
                     crash_hint=_lion_hint())
        lp_opt.step()
        if first_bad is None:
            for g_s, g_r, g_t in zip(student, refs, ties):
                for p, r, t in zip(g_s, g_r, g_t):
                    d = (p.detach() - r).abs()[~t]
                    if not bool(torch.isfinite(d).all()) or (d.numel() and float(d.max()) > LION_TOL[dtype]):
                        first_bad = step
    for g_r, g_l in zip(refs, lp):
        for r, q in zip(g_r, g_l):
            assert torch.equal(r, q.detach()), "internal: course_lib.optim.lion_update disagrees with lion_pytorch"
    keep = torch.cat([~t.reshape(-1) for g in ties for t in g])
    mine = torch.cat([p.detach().reshape(-1) for g in student for p in g])[keep].double()
    reference = torch.cat([p.detach().reshape(-1) for g in lp for p in g])[keep].double()
    diff = float((mine - reference).abs().max()) if bool(torch.isfinite(mine).all()) else math.inf
    return dict(diff=diff, first_bad=first_bad, ties=int((~keep).sum()), coordinates=keep.numel(), opt=opt,
                frozen=frozen, frozen_init=frozen_init)


def check_lion(optimizer_class, verbose: bool = True) -> None:
    """Run ``optimizer_class(params, lr=, betas=, weight_decay=)`` next to ``lion_pytorch.Lion`` on the
    cases in ``LION_CASES``; tolerances in ``LION_TOL`` (ties in the sign left out, see the module
    docstring). Raises ``AssertionError`` with a hint; ``NotImplementedError`` and ``CopiedAnswerError``
    pass through."""
    refuse_reference(optimizer_class, "lion")
    report = CheckReport(tr("check_lion: your Lion vs lion_pytorch.Lion",
                            "check_lion: 여러분의 Lion과 lion_pytorch.Lion 비교"),
                         verbose=verbose)
    for i, case in enumerate(LION_CASES):
        r = lion_run(optimizer_class, case, seed=300 + i)
        tol = LION_TOL[case["dtype"]]
        if verbose:
            print(tr(f"case: {case['name']} | {case['steps']} steps | ties left out: {r['ties']} of {r['coordinates']} "
                     f"coordinates | max diff {r['diff']:.2e} (allowed {tol:.0e})",
                     f"설정: {case_name(case['name'])} | {case['steps']}스텝 | "
                     f"제외한 동률 좌표: {r['coordinates']}개 중 {r['ties']}개 "
                     f"| 최대 차이 {r['diff']:.2e} (허용 {tol:.0e})"))
        if not r["diff"] <= tol:
            first = _first_step_hint(r["first_bad"]) + " " if r["first_bad"] else ""
            report.fail(tr(f"[{case['name']}] your parameters differ from lion_pytorch.Lion by {r['diff']:.2e} "
                           f"(allowed {tol:.0e}). ",
                           f"[{case_name(case['name'])}] 매개변수가 lion_pytorch.Lion과 {r['diff']:.2e}만큼 "
                           f"다릅니다(허용 {tol:.0e}). ")
                        + first + _lion_hint())
        assert_frozen_untouched(report, case, r["opt"], r["frozen"], r["frozen_init"],
                      tr("(`if p.grad is None: continue`), weight decay included",
                         "(`if p.grad is None: continue`, 가중치 감쇠도 포함)"))
    report.finish()
