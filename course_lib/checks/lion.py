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

import torch

from ..optim import lion_update
from .optim import _call_student, _case_params, _check_frozen, _scripted_grad
from .report import CheckReport

#: Tolerance on the parameters after the whole run (ties left out, see the module docstring). A correct
#: Lion that writes the decay as θ − lr·λ·θ instead of θ·(1 − lr·λ), or the interpolation with lerp,
#: differs by a rounding error per step: at most about 1 ulp of |θ| ≤ 4 per step, i.e. ≤ 30 × 4.8e-7
#: in float32 and ≤ 30 × 8.9e-16 in float64. Every mistake the checker looks for moves at least one
#: coordinate by lr²·λ ≥ 4.5e-4 (decay applied after the update, in float64) or by 2·lr (a wrong sign).
LION_TOL = {torch.float32: dict(atol=2e-5, rtol=0.0), torch.float64: dict(atol=1e-12, rtol=0.0)}
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

LION_HINT = ("Lion, in this order for each parameter with a gradient: (1) decoupled decay θ ← θ·(1 − lr·λ) "
             "(multiplied by lr, not added to the gradient); (2) c = β₁·m + (1−β₁)·g with the OLD momentum and "
             "β₁ = betas[0]; (3) θ ← θ − lr·sign(c) (torch.sign, so sign(0) = 0); (4) only then "
             "m ← β₂·m + (1−β₂)·g with β₂ = betas[1]. m starts at zeros, lives in self.state[p], and "
             "lr/betas/weight_decay come from each param group.")


def _first_step_hint(step: int) -> str:
    if step == 1:
        return ("Already the first step differs, before the momentum can matter: look at the sign (θ − lr·sign), "
                "the interpolation weights, the decay (θ·(1 − lr·λ)) and the lr/betas read from the group.")
    return (f"Step 1 agrees but step {step} does not, so look at what carries over between steps: the momentum "
            "update m ← β₂·m + (1−β₂)·g AFTER the sign, m starting at zeros, one state per parameter, the "
            "decay taken from the parameter before the update, and the interpolation weights (at step 1, m = 0 "
            "and sign(c) = sign(g) whatever β₁ is, so a wrong β₁ only shows from step 2 on).")


def _lion_case(optimizer_class, case, report: CheckReport, seed: int) -> None:
    import lion_pytorch

    gen = torch.Generator().manual_seed(seed)
    dtype = case["dtype"]
    init, student, frozen, frozen_init, groups = _case_params(case, LION_SHAPES, gen)
    opt = _call_student(lambda: optimizer_class(groups, **case["groups"][0]), "creating your optimizer", LION_HINT)
    # reference 1: lion_update by hand (also gives the interpolation, for the tie mask)
    refs = [[x.clone() for x in g] for g in init]
    moms = [[torch.zeros_like(x) for x in g] for g in init]
    ties = [[torch.zeros(x.shape, dtype=torch.bool) for x in g] for g in init]
    # reference 2: lion-pytorch itself, the ground truth
    lp = [[x.clone().requires_grad_() for x in g] for g in init]
    lp_opt = lion_pytorch.Lion([dict(params=ps, **hp) for ps, hp in zip(lp, case["groups"])])
    first_bad = None
    tol = LION_TOL[dtype]
    for step in range(1, case["steps"] + 1):
        for gi, hp in enumerate(case["groups"]):
            b1, b2 = hp["betas"]
            for pi, p in enumerate(student[gi]):
                grad = _scripted_grad(p, pi, step, case, gen)
                p.grad = None if grad is None else grad.clone()
                lp[gi][pi].grad = None if grad is None else grad.clone()
                if grad is None:
                    continue
                m = moms[gi][pi]
                c = m * b1 + grad * (1 - b1)
                scale = m.abs() * b1 + grad.abs() * (1 - b1)
                ties[gi][pi] |= (c != 0) & (c.abs() <= TIE_RTOL[dtype] * scale)
                lion_update(refs[gi][pi], grad, m, hp["lr"], b1, b2, hp["weight_decay"])
        _call_student(opt.step, f"your step() (step {step}, case: {case['name']})", LION_HINT)
        lp_opt.step()
        if first_bad is None:
            for g_s, g_r, g_t in zip(student, refs, ties):
                for p, r, t in zip(g_s, g_r, g_t):
                    d = (p.detach() - r).abs()[~t]
                    if not bool(torch.isfinite(d).all()) or (d.numel() and float(d.max()) > tol["atol"]):
                        first_bad = step
    for g_r, g_l in zip(refs, lp):
        for r, q in zip(g_r, g_l):
            assert torch.equal(r, q.detach()), "internal: course_lib.optim.lion_update disagrees with lion_pytorch"
    keep = torch.cat([~t.reshape(-1) for g in ties for t in g])
    mine = torch.cat([p.detach().reshape(-1) for g in student for p in g])[keep]
    reference = torch.cat([p.detach().reshape(-1) for g in lp for p in g])[keep]
    if report.verbose:
        n_ties = int((~keep).sum())
        print(f"case: {case['name']} | {case['steps']} steps | ties left out: {n_ties} of {keep.numel()} coordinates")
    hint = f"[{case['name']}] " + (_first_step_hint(first_bad) + " " if first_bad else "") + LION_HINT
    report.compare(f"  parameters ({case['tag']})", mine, reference, **tol, hint=hint)
    _check_frozen(report, case, opt, frozen, frozen_init, "(`if p.grad is None: continue`), weight decay included")


def check_lion(optimizer_class, verbose: bool = True) -> None:
    """Run ``optimizer_class(params, lr=, betas=, weight_decay=)`` next to ``lion_pytorch.Lion`` on the
    cases in ``LION_CASES``; tolerances in ``LION_TOL`` (ties in the sign left out, see the module
    docstring). Raises ``AssertionError`` with a hint; ``NotImplementedError`` passes through."""
    report = CheckReport("check_lion: your Lion vs lion_pytorch.Lion", verbose=verbose)
    for i, case in enumerate(LION_CASES):
        _lion_case(optimizer_class, case, report, seed=300 + i)
    report.finish()
