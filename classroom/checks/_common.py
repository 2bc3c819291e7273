"""Helpers shared by several checkers: the statistics most tolerances bound (``max_relative_diff``,
``norm_relative_diff``), and the parameter layout, scripted gradients and frozen-parameter check of the
long optimizer runs (``adamw``, ``lion``)."""

from __future__ import annotations

import math

import torch

from .i18n import case_name, tr


def max_relative_diff(mine, reference) -> float:
    """max |mine − reference| / max |reference| (float64); inf if the shapes differ or ``mine`` has a
    NaN/inf. The statistic behind most tolerances of the notebook 04–08 checkers."""
    a = torch.as_tensor(mine).detach().double().reshape(-1)
    b = torch.as_tensor(reference).detach().double().reshape(-1)
    if a.shape != b.shape:
        return math.inf
    if not bool(torch.isfinite(a).all()):
        return math.inf
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300)) if b.numel() else 0.0


def norm_relative_diff(mine, reference) -> float:
    """‖mine − reference‖ / ‖reference‖ (float64; inf for a NaN/inf or another shape)."""
    a = torch.as_tensor(mine).detach().double().reshape(-1)
    b = torch.as_tensor(reference).detach().double().reshape(-1)
    if a.shape != b.shape or not bool(torch.isfinite(a).all()):
        return math.inf
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


# ---- long optimizer runs (AdamW, Lion): the same parameter layout and scripted gradients


def case_params(case, shapes, gen):
    """Initial values, the student's copies in one group per ``case["groups"]`` entry, and a frozen
    tensor in the first group that never gets a gradient. Returns (init, student, frozen, frozen_init, groups)."""
    dtype = case["dtype"]
    init = [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in case["groups"]]
    frozen_init = torch.randn(4, 3, generator=gen, dtype=dtype)
    student = [[x.clone().requires_grad_() for x in g] for g in init]
    frozen = frozen_init.clone().requires_grad_()  # in the first group, never gets a gradient
    groups = [dict(params=ps + ([frozen] if i == 0 else []), **hp)
              for i, (ps, hp) in enumerate(zip(student, case["groups"]))]
    return init, student, frozen, frozen_init, groups


def scripted_grad(p, index: int, step: int, case, gen):
    """The gradient of parameter ``index`` at ``step``: sometimes None (the tensor must be skipped),
    all zeros at step 4 (the state still moves; with ``case["zero_first"]`` also tensor 2's first
    gradient), otherwise random at ``case["grad_scale"]``."""
    if index == 1 and step % 3 == 0:
        return None
    if step == 4 or (case.get("zero_first") and index == 2 and step == 1):
        return torch.zeros_like(p)
    return torch.randn(p.shape, generator=gen, dtype=case["dtype"]) * case["grad_scale"]


def assert_frozen_untouched(report, case, opt, frozen, frozen_init, skip_hint: str) -> None:
    """A parameter without a gradient must keep its value and get no optimizer state."""
    if not torch.equal(frozen.detach(), frozen_init):
        report.fail(tr(f"[{case['name']}] a parameter whose .grad is None changed; skip it {skip_hint}.",
                       f"[{case_name(case['name'])}] .grad가 None인 매개변수가 바뀌었습니다. 건너뛰세요 {skip_hint}."))
    if frozen in opt.state and len(opt.state[frozen]) > 0:
        report.fail(tr(f"[{case['name']}] a parameter that never had a gradient got optimizer state; "
                       "create state only for parameters you update.",
                       f"[{case_name(case['name'])}] 기울기를 한 번도 받지 않은 매개변수에 옵티마이저 상태가 "
                       "생겼습니다. 상태는 실제로 업데이트하는 매개변수에만 만드세요."))
