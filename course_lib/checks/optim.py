"""Checkers for the optimizer exercises of notebooks 01 (AdamW) and 02 (Muon).

- ``check_adamw(optimizer_class)``: first one short probe per part of AdamW (moments, sign, bias
  correction, ε, per-parameter state, weight decay, state dtype, param groups), so a failure names the
  part that is wrong; then long runs next to ``torch.optim.AdamW`` (and the three other accepted ways to
  write the same algorithm) over many steps, shapes, dtypes and settings.
- ``check_newton_schulz(fn)``: the student's quintic Newton–Schulz next to
  ``course_lib.optim.newton_schulz`` in float32 and next to the exact polar factor U·Vᵀ from an SVD.
- ``check_muon(optimizer_class)``: the student's Muon step by step next to the closest of three
  accepted Muons (``torch.optim.Muon``, Keller Jordan's operation order, a float32 Newton–Schulz).

Each prints a ``CheckReport`` and raises ``AssertionError`` with a hint in the notebook's language.
A copied answer raises ``CopiedAnswerError`` and an unfinished exercise ``NotImplementedError``, both
unchanged; any other exception from the student's code becomes an ``AssertionError`` that names it.
"""

from __future__ import annotations

import math

import torch

from ..optim import NS_COEFFICIENTS, Muon, muon_lr_scale, newton_schulz
from .i18n import case_name, tr
from .originality import CopiedAnswerError, StudentCodeError, refuse_reference, student_call
from .report import CheckReport


def _call_student(exercise: str, fn, what: str, hint: str = ""):
    """``student_call`` with the checker's ``hint`` added to a crash report. ``what`` and ``hint`` are
    already in the notebook's language."""
    try:
        return student_call(exercise, what, fn)
    except StudentCodeError as err:
        if not hint:
            raise
        raise StudentCodeError(f"{err}. {hint}") from err.__cause__


# ------------------------------------------------------------------------------------------ AdamW

#: Tolerance (max |difference| of the parameters) after a whole AdamW run, against the closest of the
#: four accepted forms (``adamw_run``). Measured by tests/test_checker_tolerances_optim.py: correct
#: variants (the four forms, a foreach version, the notebook's solution; 20 seeds) reach at most 2.4e-7 in
#: float32 and 4.4e-16 in float64; the closest mistake (5 seeds) 5.2e-3 in float32 (a global step
#: counter) and 4.2e-9 in float64 (m and v kept in float32).
ADAMW_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

#: Tolerance of the per-part probes (float64): relative change of the step (direction, size) or the
#: difference of the parameters in units of lr (``adamw_probe_statistics``). Measured over 20 seeds:
#: correct variants reach at most 2.5e-12, a float32 state (which only the dtype probe may name) 3.2e-7
#: on the other probes; the closest mistake 0.127 on its own probe (a global step counter).
ADAMW_PROBE_TOL = 1e-4

ADAMW_VARIANTS = {
    "decay before, textbook (torch)": ("before", "textbook"),
    "decay before, efficient": ("before", "efficient"),
    "decay after, textbook": ("after", "textbook"),
    "decay after, efficient": ("after", "efficient"),
}

#: The parts of AdamW the probes name, in the order they are probed (each probe assumes the parts
#: before it are right).
ADAMW_PARTS = {
    "moments": ("moments (m ← β₁·m + (1−β₁)·g, v ← β₂·v + (1−β₂)·g², betas in that order)",
                "모멘트(m ← β₁·m + (1−β₁)·g, v ← β₂·v + (1−β₂)·g², betas는 이 순서)"),
    "sign": ("sign of the step (θ ← θ − lr·…)", "스텝의 부호(θ ← θ − lr·…)"),
    "bias_correction": ("bias correction (1−β₁ᵗ and 1−β₂ᵗ, t = 1 at the first update)",
                        "편향 보정(1−β₁ᵗ와 1−β₂ᵗ, 첫 업데이트에서 t = 1)"),
    "eps": ("ε placement (added to √v̂, outside the square root)", "ε의 위치(제곱근 밖에서 √v̂에 더함)"),
    "state": ("per-parameter state (each parameter its own step count t, m and v)",
              "매개변수별 상태(매개변수마다 따로 두는 스텝 수 t, m, v)"),
    "decay": ("weight decay (decoupled: θ ← θ·(1 − lr·λ))", "가중치 감쇠(분리형: θ ← θ·(1 − lr·λ))"),
    "dtype": ("state dtype (m and v in the parameter's dtype)", "상태의 dtype(m과 v는 매개변수와 같은 dtype)"),
    "groups": ("param groups (lr, betas, eps, weight_decay read from each group)",
               "매개변수 그룹(lr, betas, eps, weight_decay를 그룹마다 읽기)"),
}


def adamw_part(part: str) -> str:
    """The label of one part of AdamW, as a failure message names it."""
    return tr(*ADAMW_PARTS[part])


def _wrong_part(part: str, detail: str) -> str:
    return tr(f"wrong part: {adamw_part(part)}. ", f"틀린 부분: {adamw_part(part)}. ") + detail


def _reference_adamw_step(p, grad, state, lr, beta1, beta2, eps, weight_decay, decay, bias_form):
    """One AdamW step in one of the four accepted forms (all the same algorithm up to O(lr²·λ) and ε)."""
    if not state:
        state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
    state["step"] += 1
    t, m, v = state["step"], state["m"], state["v"]
    if decay == "before":
        p.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
    if bias_form == "textbook":
        p.sub_(lr * (m / bc1) / ((v / bc2).sqrt() + eps))
    else:
        p.addcdiv_(m, v.sqrt() + eps, value=-lr * math.sqrt(bc2) / bc1)
    if decay == "after":
        p.mul_(1 - lr * weight_decay)


# ---- probes: one short run per part, in float64, compared with every accepted form


def _student_run(optimizer_class, init, groups, grads, probe: str, defaults=None):
    """The student's parameters after every step, on ``init`` (one list of tensors per group in
    ``groups``) with ``grads[step][group][i]`` (None: no gradient). ``defaults``: the constructor's
    keyword arguments (the first group's values unless given)."""
    params = [[x.clone().requires_grad_() for x in g] for g in init]
    param_groups = [dict(params=ps, **hp) for ps, hp in zip(params, groups)]
    opt = _call_student("adamw", lambda: optimizer_class(param_groups, **(defaults or groups[0])),
                        tr("creating your optimizer", "옵티마이저 생성"))
    mine = []
    for step, step_grads in enumerate(grads, start=1):
        for ps, gs in zip(params, step_grads):
            for p, g in zip(ps, gs):
                p.grad = None if g is None else g.clone()
        _call_student("adamw", opt.step, tr(f"your step() (probe of the {probe}, step {step})",
                                            f"여러분의 step()({probe} 확인, {step}번째 스텝)"))
        mine.append([p.detach().clone() for ps in params for p in ps])
    return mine


def _reference_run(init, groups, grads):
    """The same run in each of the four accepted forms: {form: parameters after every step}."""
    theirs = {}
    for name, (decay, form) in ADAMW_VARIANTS.items():
        params, states, after = [[x.clone() for x in g] for g in init], {}, []
        for step_grads in grads:
            for gi, (hp, ps, gs) in enumerate(zip(groups, params, step_grads)):
                for pi, (p, g) in enumerate(zip(ps, gs)):
                    if g is not None:
                        _reference_adamw_step(p, g, states.setdefault((gi, pi), {}), hp["lr"], *hp["betas"],
                                              hp["eps"], hp["weight_decay"], decay, form)
            after.append([p.clone() for ps in params for p in ps])
        theirs[name] = after
    return theirs


def _probe_run(optimizer_class, init, groups, grads, probe: str, defaults=None):
    """(student, {form: reference}) parameters after every step."""
    return (_student_run(optimizer_class, init, groups, grads, probe, defaults),
            _reference_run(init, groups, grads))


def _distance_in_lr(mine, theirs, lr) -> float:
    """max |θ_student − θ_reference| / lr over every step and coordinate, for the closest accepted form."""
    best = math.inf
    for ref in theirs.values():
        worst = 0.0
        for a_step, b_step in zip(mine, ref):
            for a, b in zip(a_step, b_step):
                d = (a.double() - b.double()).abs()
                worst = max(worst, float(d.max()) / lr if bool(torch.isfinite(d).all()) else math.inf)
        best = min(best, worst)
    return best


def _positive_grads(gen, shape, steps, low=0.2, high=2.0):
    return [(low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)) for _ in range(steps)]


def _probe_moments_and_bias(optimizer_class, gen) -> tuple[str | None, dict]:
    """wd = 0, ε tiny, positive gradients: the direction of each step (up to a scalar) only depends on
    the moments, its size on the bias correction; step 1 must be exactly −lr (lr·sign(g), g > 0)."""
    hp = dict(lr=0.1, betas=(0.5, 0.9), eps=1e-12, weight_decay=0.0)
    init = [torch.randn(12, generator=gen, dtype=torch.float64)]
    grads = [[[g]] for g in _positive_grads(gen, (12,), 4)]
    try:
        mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("bias_correction"))
    except AssertionError as err:
        if "ZeroDivisionError" in str(err):  # 1 − β₁⁰ = 0: the step counter starts at 0
            return _wrong_part("bias_correction", tr(
                "Your step() divided by zero: at the first update t must be 1 (increment the step count "
                "before using it), so that 1 − β₁ᵗ is not 0.",
                "여러분의 step()에서 0으로 나누었습니다. 첫 업데이트에서 t는 1이어야 합니다(스텝 수를 먼저 "
                "늘리고 쓰세요). 그래야 1 − β₁ᵗ가 0이 되지 않습니다.")), dict(residual=math.inf, scale=math.inf)
        raise
    ref = theirs["decay before, textbook (torch)"]
    before_s, before_r = init[0], init[0]
    ks, residuals = [], []
    for step, (a, b) in enumerate(zip(mine, ref), start=1):
        u_s, u_r = a[0] - before_s, b[0] - before_r
        before_s, before_r = a[0], b[0]
        if not bool(torch.isfinite(u_s).all()):
            return _wrong_part("bias_correction", tr(
                f"Step {step} produced inf/nan. With t = 0 the correction 1 − β₁ᵗ is 0 and you divide by it: "
                "count t from 1 (increment before use).",
                f"{step}번째 스텝에서 inf/nan이 나왔습니다. t = 0이면 보정값 1 − β₁ᵗ가 0이 되어 0으로 나누게 "
                "됩니다. t는 1부터 세세요(쓰기 전에 늘리기).")), dict(residual=math.inf, scale=math.inf)
        k = float((u_s @ u_r) / (u_r @ u_r))
        residuals.append(float((u_s - k * u_r).norm() / (abs(k) * u_r.norm())) if k != 0 else 0.0)
        ks.append(k)
    stats = dict(residual=max(residuals), scale=max(abs(k - 1) for k in ks))
    if stats["residual"] > ADAMW_PROBE_TOL:
        step = next(i for i, r in enumerate(residuals, start=1) if r > ADAMW_PROBE_TOL)
        return _wrong_part("moments", tr(
            f"With weight decay 0, betas (0.5, 0.9) and positive gradients, the direction of your step {step} "
            "differs from AdamW's by "
            f"{residuals[step - 1]:.1e} (relative), whatever its size: m must average g and v must average "
            "g² (addcmul_(g, g)), β₁ = betas[0] for m and β₂ = betas[1] for v.",
            f"가중치 감쇠 0, betas (0.5, 0.9), 양수 기울기로 돌렸을 때 {step}번째 스텝의 방향이 크기와 상관없이 "
            f"AdamW와 {residuals[step - 1]:.1e}(상대값)만큼 다릅니다. m은 g의 평균, v는 g²의 평균"
            "(addcmul_(g, g))이어야 하고, m에는 β₁ = betas[0], v에는 β₂ = betas[1]을 씁니다.")), stats
    if stats["scale"] > ADAMW_PROBE_TOL:
        if ks[0] < 0:
            return _wrong_part("sign", tr(
                "Your first step moves the parameters up the gradient (+lr instead of −lr): subtract the update.",
                "첫 스텝이 기울기 방향으로(−lr이 아니라 +lr) 움직입니다. 업데이트를 빼야 합니다.")), stats
        if max(abs(k / ks[0] - 1) for k in ks) <= ADAMW_PROBE_TOL:  # the same factor at every step
            return _wrong_part("moments", tr(
                f"Every step of yours is {ks[0]:.3f}× AdamW's, the same factor at every step (a wrong bias "
                "correction would change with t): look at the weights (1−β₁) of g in m and (1−β₂) of g² in v, "
                "and at lr.",
                f"모든 스텝이 AdamW의 {ks[0]:.3f}배로, 스텝마다 같은 배수입니다(편향 보정이 틀렸다면 t에 따라 "
                "달라집니다). m에서 g에 곱하는 (1−β₁), v에서 g²에 곱하는 (1−β₂), 그리고 lr을 보세요.")), stats
        step = next(i for i, k in enumerate(ks, start=1) if abs(k - 1) > ADAMW_PROBE_TOL)
        no_correction = (1 - 0.5) / math.sqrt(1 - 0.9)
        return _wrong_part("bias_correction", tr(
            f"Your step {step} has the right direction but {ks[step - 1]:.3f}× AdamW's size. At t = 1 (weight "
            f"decay 0, tiny ε) AdamW's step is exactly lr·sign(g); without the bias correction it would be "
            f"(1−β₁)/√(1−β₂) = {no_correction:.3f}× that. Divide m by 1−β₁ᵗ and v by 1−β₂ᵗ, with t counted "
            "from 1.",
            f"{step}번째 스텝의 방향은 맞지만 크기가 AdamW의 {ks[step - 1]:.3f}배입니다. t = 1(가중치 감쇠 0, "
            f"아주 작은 ε)에서 AdamW의 스텝은 정확히 lr·sign(g)이고, 편향 보정이 없으면 그 "
            f"(1−β₁)/√(1−β₂) = {no_correction:.3f}배가 됩니다. m은 1−β₁ᵗ로, v는 1−β₂ᵗ로 나누고, t는 1부터 "
            "세세요.")), stats
    return None, stats


def _probe_eps(optimizer_class, gen) -> tuple[str | None, float]:
    """Tiny gradients and a large ε: where ε sits decides the step (textbook and efficient form both pass)."""
    hp = dict(lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.0)
    init = [torch.randn(12, generator=gen, dtype=torch.float64)]
    grads = [[[1e-3 * torch.randn(12, generator=gen, dtype=torch.float64)]] for _ in range(3)]
    mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("eps"))
    stat = _distance_in_lr(mine, theirs, hp["lr"])
    if stat > ADAMW_PROBE_TOL:
        return _wrong_part("eps", tr(
            f"With gradients of about 1e-3 and ε = 1e-3 your parameters differ from AdamW's by {stat:.2e}·lr: "
            "add ε to the square root, m̂ / (√v̂ + ε) (or m / (√v + ε) in the efficient form), not inside it.",
            f"기울기가 1e-3 정도이고 ε = 1e-3일 때 매개변수가 AdamW와 {stat:.2e}·lr만큼 다릅니다. ε은 제곱근 "
            "안이 아니라 밖에서 더합니다: m̂ / (√v̂ + ε)(효율적인 형태라면 m / (√v + ε)).")), stat
    return None, stat


def _probe_state(optimizer_class, gen) -> tuple[str | None, float]:
    """Two parameters of the same shape; the second gets its first gradient at step 3 and must then take
    a t = 1 step of its own (a global counter, or state shared by shape, gives another step)."""
    hp = dict(lr=0.1, betas=(0.5, 0.9), eps=1e-12, weight_decay=0.0)
    init = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    grads = [[[torch.randn(3, 4, generator=gen, dtype=torch.float64), None if step < 3 else
               torch.randn(3, 4, generator=gen, dtype=torch.float64)]] for step in range(1, 5)]
    mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("state"))
    stat = _distance_in_lr(mine, theirs, hp["lr"])
    if stat > ADAMW_PROBE_TOL:
        return _wrong_part("state", tr(
            f"A parameter that gets its first gradient at step 3 must take a t = 1 step of its own (lr·sign(g) "
            f"with tiny ε); yours differs by {stat:.2e}·lr. Keep t, m and v in self.state[p] for each parameter "
            "(no global counter, no state shared between tensors of the same shape) and create them only "
            "when the parameter has a gradient.",
            f"3번째 스텝에서 처음 기울기를 받는 매개변수는 자기만의 t = 1 스텝(ε이 아주 작으면 lr·sign(g))을 "
            f"밟아야 하는데, 여러분의 결과는 {stat:.2e}·lr만큼 다릅니다. t, m, v는 매개변수마다 "
            "self.state[p]에 두고(전역 카운터도, 같은 모양 텐서끼리 나눠 쓰는 상태도 안 됩니다), 기울기가 "
            "있을 때만 만드세요.")), stat
    return None, stat


def _probe_decay(optimizer_class, gen) -> tuple[str | None, float]:
    """All-zero gradients: m = v = 0, so only the decay moves the parameters: θ·(1 − lr·λ) per step."""
    hp = dict(lr=0.5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    init = [torch.randn(12, generator=gen, dtype=torch.float64).sign() * (0.5 + torch.rand(12, generator=gen,
                                                                                           dtype=torch.float64))]
    grads = [[[torch.zeros(12, dtype=torch.float64)]] for _ in range(2)]
    mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("decay"))
    stat = _distance_in_lr(mine, theirs, hp["lr"])
    if stat > ADAMW_PROBE_TOL:
        shrink = [float((m[0] / init[0]).mean()) for m in mine]
        return _wrong_part("decay", tr(
            f"With an all-zero gradient only the decay acts: lr = 0.5, λ = 0.1 must shrink θ by 1 − lr·λ = 0.95 "
            f"per step; yours went to {shrink[0]:.4f}·θ, then {shrink[1]:.4f}·θ. Multiply θ by (1 − lr·λ) "
            "(decoupled: not λ·θ added to the gradient, and multiplied by lr).",
            f"기울기가 모두 0이면 감쇠만 작용합니다. lr = 0.5, λ = 0.1이면 스텝마다 θ가 1 − lr·λ = 0.95배가 "
            f"되어야 하는데, 여러분의 결과는 {shrink[0]:.4f}·θ, 그다음 {shrink[1]:.4f}·θ입니다. θ에 "
            "(1 − lr·λ)를 곱하세요(분리형: 기울기에 λ·θ를 더하지 않고, lr을 곱합니다).")), stat
    return None, stat


def _probe_dtype(optimizer_class, gen) -> tuple[str | None, float]:
    """float64 gradients of about 1e-30: g² underflows in float32 (to 0), so a float32 v shows at once."""
    hp = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-80, weight_decay=0.0)
    init = [torch.randn(12, generator=gen, dtype=torch.float64)]
    grads = [[[1e-30 * torch.randn(12, generator=gen, dtype=torch.float64)]] for _ in range(2)]
    mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("dtype"))
    stat = _distance_in_lr(mine, theirs, hp["lr"])
    if stat > ADAMW_PROBE_TOL:
        return _wrong_part("dtype", tr(
            f"float64 parameters with gradients of about 1e-30 (g² ≈ 1e-60 underflows to 0 in float32): your "
            f"parameters differ from AdamW's by {stat:.2e}·lr. Create m and v with torch.zeros_like(p), so they "
            "have the parameter's dtype.",
            f"float64 매개변수에 1e-30 정도의 기울기를 주었더니(float32에서는 g² ≈ 1e-60이 0으로 언더플로) "
            f"AdamW와 {stat:.2e}·lr만큼 다릅니다. m과 v를 torch.zeros_like(p)로 만들어 매개변수와 같은 "
            "dtype이 되게 하세요.")), stat
    return None, stat


def _probe_groups(optimizer_class, gen) -> tuple[str | None, float]:
    """Constructor defaults differ from the group's own values: the group's must be used."""
    hp = dict(lr=0.1, betas=(0.5, 0.9), eps=1e-12, weight_decay=0.2)
    defaults = dict(lr=1.0, betas=(0.9, 0.999), eps=1e-3, weight_decay=0.0)
    init = [torch.randn(12, generator=gen, dtype=torch.float64)]
    grads = [[[torch.randn(12, generator=gen, dtype=torch.float64)]] for _ in range(2)]
    mine, theirs = _probe_run(optimizer_class, [init], [hp], grads, adamw_part("groups"), defaults)
    stat = _distance_in_lr(mine, theirs, hp["lr"])
    if stat > ADAMW_PROBE_TOL:
        return _wrong_part("groups", tr(
            f"A group created with lr=0.1, betas=(0.5, 0.9), weight_decay=0.2 inside an optimizer whose defaults "
            f"are lr=1.0, betas=(0.9, 0.999), weight_decay=0: your parameters differ by {stat:.2e}·lr. Read "
            "group['lr'], group['betas'], group['eps'] and group['weight_decay'] inside the loop over groups.",
            "기본값이 lr=1.0, betas=(0.9, 0.999), weight_decay=0인 옵티마이저에 lr=0.1, betas=(0.5, 0.9), "
            f"weight_decay=0.2인 그룹을 넣었더니 매개변수가 {stat:.2e}·lr만큼 다릅니다. 그룹 루프 안에서 "
            "group['lr'], group['betas'], group['eps'], group['weight_decay']를 읽으세요.")), stat
    return None, stat


ADAMW_PROBES = {"moments": _probe_moments_and_bias, "eps": _probe_eps, "state": _probe_state,
                "decay": _probe_decay, "dtype": _probe_dtype, "groups": _probe_groups}


def adamw_probe_statistics(optimizer_class, seed: int = 0) -> dict:
    """Every probe's statistic (what ``ADAMW_PROBE_TOL`` bounds) for one seed, and the first failure."""
    gen = torch.Generator().manual_seed(seed)
    stats, first = {}, None
    for name, probe in ADAMW_PROBES.items():
        try:
            failure, stat = probe(optimizer_class, gen)
        except AssertionError as err:  # a crash inside the probe (a copied answer is refused before)
            failure, stat = str(err), math.inf
        stats.update(stat if isinstance(stat, dict) else {name: stat})
        first = first or failure
    return dict(stats=stats, failure=first)


def adamw_probe(optimizer_class, seed: int = 0) -> str | None:
    """The failure message of the first probe that fails (it names the part), or None."""
    gen = torch.Generator().manual_seed(seed)
    for probe in ADAMW_PROBES.values():
        failure, _ = probe(optimizer_class, gen)
        if failure:
            return failure
    return None


# ---- long runs (shared with checks/lion.py): the same parameter layout and scripted gradients


def _case_params(case, shapes, gen):
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


def _scripted_grad(p, index: int, step: int, case, gen):
    """The gradient of parameter ``index`` at ``step``: sometimes None (the tensor must be skipped),
    all zeros at step 4 (the state still moves; with ``case["zero_first"]`` also tensor 2's first
    gradient), otherwise random at ``case["grad_scale"]``."""
    if index == 1 and step % 3 == 0:
        return None
    if step == 4 or (case.get("zero_first") and index == 2 and step == 1):
        return torch.zeros_like(p)
    return torch.randn(p.shape, generator=gen, dtype=case["dtype"]) * case["grad_scale"]


def _check_frozen(report, case, opt, frozen, frozen_init, skip_hint: str) -> None:
    """A parameter without a gradient must keep its value and get no optimizer state."""
    if not torch.equal(frozen.detach(), frozen_init):
        report.fail(tr(f"[{case['name']}] a parameter whose .grad is None changed; skip it {skip_hint}.",
                       f"[{case_name(case['name'])}] .grad가 None인 매개변수가 바뀌었습니다. 건너뛰세요 {skip_hint}."))
    if frozen in opt.state and len(opt.state[frozen]) > 0:
        report.fail(tr(f"[{case['name']}] a parameter that never had a gradient got optimizer state; "
                       "create state only for parameters you update.",
                       f"[{case_name(case['name'])}] 기울기를 한 번도 받지 않은 매개변수에 옵티마이저 상태가 생겼습니다. "
                       "상태는 실제로 업데이트하는 매개변수에만 만드세요."))


ADAMW_CASES = [
    # name, dtype, groups (list of hyperparameter dicts), gradient scale, steps
    dict(name="float32, wd on, betas (0.9, 0.999)", tag="fp32",
         dtype=torch.float32, grad_scale=1.0, steps=30,
         groups=[dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)]),
    dict(name="float64, wd off, betas (0.9, 0.95), tiny grads", tag="fp64",
         dtype=torch.float64, grad_scale=1e-3, steps=25,
         groups=[dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.0)]),
    dict(name="float32, two groups, betas (0.8, 0.99)", tag="fp32, 2 groups",
         dtype=torch.float32, grad_scale=0.5, steps=20,
         groups=[dict(lr=2e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.05),
                 dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.0)]),
    dict(name="float64, wd 0.3, large eps", tag="fp64",
         dtype=torch.float64, grad_scale=0.1, steps=20,
         groups=[dict(lr=5e-3, betas=(0.95, 0.999), eps=1e-2, weight_decay=0.3)]),
]

ADAMW_SHAPES = [(6, 5), (5,), (3, 4, 2), (6, 5)]  # the repeated shape catches state shared between tensors


def adamw_run(optimizer_class, case, seed: int):
    """One long run: returns (max |difference| from the closest accepted form, its name, the student's
    optimizer, the frozen parameter and its initial value). The statistic ``ADAMW_TOL`` bounds."""
    gen = torch.Generator().manual_seed(seed)
    dtype, n_groups = case["dtype"], len(case["groups"])
    init, student, frozen, frozen_init, groups = _case_params(case, ADAMW_SHAPES, gen)
    opt = _call_student("adamw", lambda: optimizer_class(groups, **case["groups"][0]),
                        tr("creating your optimizer", "옵티마이저 생성"))
    refs = {name: [[x.clone() for x in g] for g in init] for name in ADAMW_VARIANTS}
    ref_states = {name: {} for name in ADAMW_VARIANTS}
    # torch itself for the first variant, as the ground truth
    torch_params = [[x.clone().requires_grad_() for x in g] for g in init]
    torch_opt = torch.optim.AdamW([dict(params=ps, **hp) for ps, hp in zip(torch_params, case["groups"])],
                                  foreach=False)
    for step in range(1, case["steps"] + 1):
        for gi, hp in enumerate(case["groups"]):
            for pi, p in enumerate(student[gi]):
                grad = _scripted_grad(p, pi, step, case, gen)
                p.grad = None if grad is None else grad.clone()
                torch_params[gi][pi].grad = None if grad is None else grad.clone()
                if grad is None:
                    continue
                for name, (decay, form) in ADAMW_VARIANTS.items():
                    st = ref_states[name].setdefault((gi, pi), {})
                    _reference_adamw_step(refs[name][gi][pi], grad, st, hp["lr"], *hp["betas"], hp["eps"],
                                          hp["weight_decay"], decay, form)
        _call_student("adamw", opt.step, tr(f"your step() (step {step}, case: {case['name']})",
                                            f"여러분의 step()({step}번째 스텝, 설정: {case_name(case['name'])})"))
        torch_opt.step()
    # the hand-written "before, textbook" reference must agree with torch itself
    for gi in range(n_groups):
        for pi in range(len(ADAMW_SHAPES)):
            diff = (refs["decay before, textbook (torch)"][gi][pi] - torch_params[gi][pi].detach()).abs().max()
            assert diff <= ADAMW_TOL[dtype], f"internal: reference AdamW disagrees with torch by {diff}"
    mine = torch.cat([p.detach().reshape(-1).double() for g in student for p in g])
    best_name, best_diff = "decay before, textbook (torch)", math.inf
    for name in ADAMW_VARIANTS:
        ref = torch.cat([p.reshape(-1).double() for g in refs[name] for p in g])
        diff = float((mine - ref).abs().max()) if bool(torch.isfinite(mine).all()) else math.inf
        if diff < best_diff:
            best_name, best_diff = name, diff
    return best_diff, best_name, opt, frozen, frozen_init


def check_adamw(optimizer_class, verbose: bool = True) -> None:
    """Run ``optimizer_class(params, lr=, betas=, eps=, weight_decay=)``: first one probe per part (the
    failure names the part that is wrong), then the long runs next to torch.optim.AdamW.

    Accepted: decay before the update (torch) or after it (as many hand-written loops do), and the textbook
    (m̂, v̂) or the "efficient" bias correction (Kingma & Ba §2). Each probe and each run is compared with
    the closest of these four references; tolerances in ``ADAMW_PROBE_TOL`` and ``ADAMW_TOL``.
    """
    refuse_reference(optimizer_class, "adamw")
    report = CheckReport(tr("check_adamw: your AdamW vs torch.optim.AdamW",
                            "check_adamw: 여러분의 AdamW와 torch.optim.AdamW 비교"), verbose=verbose)
    try:
        failure = adamw_probe(optimizer_class)
    except CopiedAnswerError:
        raise
    except AssertionError as err:  # the student's code crashed inside a probe (the message names it)
        failure = str(err)
    if verbose:
        print(tr("probes of each part (moments, sign, bias correction, ε, per-parameter state, decay, dtype, groups): ",
                 "부분별 확인(모멘트, 부호, 편향 보정, ε, 매개변수별 상태, 감쇠, dtype, 그룹): ")
              + (tr("FAILED", "실패") if failure else tr("passed", "통과")))
    if failure:
        report.fail(failure)
        hint = tr("See the wrong part named above.", "위에서 짚은 틀린 부분을 먼저 고치세요.")
    else:
        hint = tr("Every part passed its probe, so look at what only the long runs see: one state per parameter "
                  "(tensors of the same shape too), skipping parameters whose .grad is None, and the "
                  "hyperparameters of each param group.",
                  "부분별 확인은 모두 통과했으니, 긴 실행에서만 드러나는 것을 보세요: 매개변수마다 따로 두는 "
                  "상태(같은 모양의 텐서라도), .grad가 None인 매개변수 건너뛰기, 매개변수 그룹마다의 "
                  "하이퍼파라미터.")
    for i, case in enumerate(ADAMW_CASES):
        try:
            diff, best_name, opt, frozen, frozen_init = adamw_run(optimizer_class, case, seed=100 + i)
        except CopiedAnswerError:
            raise
        except AssertionError as err:  # a crash: report it after the probe's finding, then the next run
            report.fail(f"{err} {hint}")
            continue
        tol = ADAMW_TOL[case["dtype"]]
        ok = diff <= tol
        if verbose:
            print(tr(f"run {i + 1}: {case['name']} | {case['steps']} steps | closest accepted form: {best_name} | "
                     f"max diff {diff:.2e} (allowed {tol:.0e})",
                     f"실행 {i + 1}: {case_name(case['name'])} | {case['steps']}스텝 | 가장 가까운 올바른 형태: {case_name(best_name)} | "
                     f"최대 차이 {diff:.2e} (허용 {tol:.0e})"))
        if not ok:
            report.fail(tr(f"[{case['name']}, {case['steps']} steps] your parameters differ from the closest "
                           f"accepted form ({best_name}) by {diff:.2e} (allowed {tol:.0e}). {hint}",
                           f"[{case_name(case['name'])}, {case['steps']}스텝] 매개변수가 가장 가까운 올바른 형태({case_name(best_name)})와 "
                           f"{diff:.2e}만큼 다릅니다(허용 {tol:.0e}). {hint}"))
        _check_frozen(report, case, opt, frozen, frozen_init, "(`if p.grad is None: continue`)")
    report.finish()


# ------------------------------------------------------------------------------- Newton–Schulz

#: Relative Frobenius error allowed against the float32 reference (``newton_schulz_results``, worst case).
#: Measured over 24 seeds by tests/test_checker_tolerances_optim.py: correct variants (float32, float64,
#: bfloat16 in torch's, Keller Jordan's and a third operation order, the notebook's solution) reach at
#: most 0.046 (bfloat16); the closest mistake 0.28 (normalising by the spectral norm), one step more or
#: fewer 0.47, the cubic 0.62.
NS_REL_TOL = 0.12
#: Where the singular values of the quintic's output must land after 5 steps, and the largest
#: off-diagonal part in G's SVD basis (relative). Correct variants: 0.671–1.148, off-diagonal ≤ 0.032
#: (bfloat16); the cubic leaves values down to 0.18, no normalisation gives inf (measured, 24 seeds).
NS_BAND = (0.5, 1.5)
NS_OFF_TOL = NS_REL_TOL

NS_CASES = [("square 24x24", (24, 24), torch.float32, 5), ("tall 48x16", (48, 16), torch.float32, 5),
            ("wide 16x40", (16, 40), torch.float32, 5), ("tall 40x24 bf16", (40, 24), torch.bfloat16, 5),
            ("wide 8x32 bf16", (8, 32), torch.bfloat16, 5), ("tall 32x12, steps=2", (32, 12), torch.float32, 2),
            ("wide 12x30, steps=3", (12, 30), torch.float32, 3)]


def _spectrum_matrix(rows, cols, gen, low=0.05):
    """U·diag(s)·Vᵀ with singular values log-spaced in [low, 1]: full rank, known condition number."""
    k = min(rows, cols)
    U, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.logspace(math.log10(low), 0, k, dtype=torch.float64)
    return (U * s) @ V.T


def newton_schulz_results(fn, seed: int = 7) -> list[dict]:
    """Run ``fn(G, steps=...)`` on every case of ``NS_CASES``. Per case: ``problem`` (a message, or None),
    ``rel`` (relative error vs the float32 reference) and, after 5 steps, the singular values in G's SVD
    basis (``sv_min``, ``sv_max``) and the off-diagonal part ``off``: the statistics the tolerances bound."""
    gen = torch.Generator().manual_seed(seed)
    results = []
    for name, shape, dtype, steps in NS_CASES:
        # scaled by 10: the input's spectral norm is far above 1, so skipping the normalisation shows
        G = (10 * _spectrum_matrix(*shape, gen)).to(dtype)
        G_before = G.clone()
        out = _call_student("newton_schulz", lambda: fn(G, steps=steps),
                            tr(f"your function on {case_name(name)}", f"여러분의 함수({case_name(name)})"))
        result = dict(name=name, steps=steps, problem=None, rel=math.inf)
        results.append(result)
        if not torch.equal(G, G_before):
            result["problem"] = tr(f"[{name}] your function changed its input in place; work on a copy "
                                   "(X = G.float() / …).",
                                   f"[{case_name(name)}] 함수가 입력을 제자리에서 바꿨습니다. 복사본으로 계산하세요(X = G.float() / …).")
        if out is None or not torch.is_tensor(out):
            result["problem"] = tr(f"[{name}] your function returned {type(out).__name__}, not a tensor.",
                                   f"[{case_name(name)}] 함수가 텐서가 아니라 {type(out).__name__}을(를) 돌려줬습니다.")
            continue
        if tuple(out.shape) != tuple(shape):
            result["problem"] = tr(
                f"[{name}] output shape {tuple(out.shape)}, input shape {tuple(shape)}: if you transpose a tall "
                "matrix to work on the small Gram matrix, transpose the result back.",
                f"[{case_name(name)}] 출력 모양 {tuple(out.shape)}, 입력 모양 {tuple(shape)}. 작은 그람 행렬로 계산하려고 세로로 "
                "긴 행렬을 전치했다면 결과를 다시 전치하세요.")
            continue
        out32 = out.detach().float()
        if not torch.isfinite(out32).all():
            result["problem"] = tr(
                f"[{name}] output has inf/nan: divide G by its Frobenius norm first, so every singular value is "
                "≤ 1 (the iteration diverges above about 1.5).",
                f"[{case_name(name)}] 출력에 inf/nan이 있습니다. 먼저 G를 프로베니우스 노름으로 나눠 모든 특잇값이 1 이하가 "
                "되게 하세요(특잇값이 1.5쯤을 넘으면 반복이 발산합니다).")
            continue
        reference = newton_schulz(G.float(), steps, dtype=torch.float32)
        result["rel"] = float((out32 - reference).norm() / reference.norm())
        if steps == 5:
            # The exact polar factor: same singular vectors, singular values 1. Measure the student's
            # output in the SVD basis of G: Uᵀ·O·V must be diagonal with entries in the band.
            U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
            core = U.T @ out32.double() @ Vh.T
            diag = torch.diagonal(core)
            result.update(sv_min=float(diag.min()), sv_max=float(diag.max()),
                          off=float((core - torch.diag(diag)).norm() / diag.norm()))
    return results


def check_newton_schulz(fn, verbose: bool = True) -> None:
    """Check ``fn(G, steps=...)``: same shape, ≈ course_lib's quintic iteration in float32 (``NS_REL_TOL``),
    singular vectors of the exact polar factor U·Vᵀ and singular values in ``NS_BAND`` (after 5 steps)."""
    refuse_reference(fn, "newton_schulz")
    report = CheckReport(tr("check_newton_schulz: your Newton–Schulz vs the float32 reference and the SVD",
                            "check_newton_schulz: 여러분의 Newton–Schulz와 float32 참조 구현, SVD 비교"), verbose=verbose)
    for r in newton_schulz_results(fn):
        name, steps = r["name"], r["steps"]
        if r["problem"]:
            report.fail(r["problem"])
            if not math.isfinite(r["rel"]):
                continue
        if verbose:
            print(tr(f"{name:<28s} | relative error vs float32 reference: {r['rel']:.2e} (allowed {NS_REL_TOL})",
                     f"{name:<28s} | float32 참조 구현 대비 상대 오차: {r['rel']:.2e} (허용 {NS_REL_TOL})"))
        if r["rel"] > NS_REL_TOL:
            report.fail(tr(
                f"[{name}] relative error {r['rel']:.3f} vs the reference quintic iteration (allowed {NS_REL_TOL}). "
                f"Check: normalise by the Frobenius norm G.norm(); coefficients (a, b, c) = {NS_COEFFICIENTS}; "
                f"X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ; exactly `steps` iterations (steps={steps} here).",
                f"[{case_name(name)}] 참조 5차 반복과의 상대 오차가 {r['rel']:.3f}입니다(허용 {NS_REL_TOL}). 확인할 것: "
                f"프로베니우스 노름 G.norm()으로 나누기, 계수 (a, b, c) = {NS_COEFFICIENTS}, A = X·Xᵀ일 때 "
                f"X ← a·X + (b·A + c·A²)·X, 반복은 정확히 `steps`번(여기서는 steps={steps})."))
        if "sv_min" in r:
            lo, hi, off = r["sv_min"], r["sv_max"], r["off"]
            if verbose:
                print(tr(f"{'':<28s} | singular values in SVD basis: {lo:.3f}..{hi:.3f} | off-diagonal part: {off:.1e}",
                         f"{'':<28s} | SVD 기저에서 본 특잇값: {lo:.3f}..{hi:.3f} | 비대각 성분: {off:.1e}"))
            if off > NS_OFF_TOL or not (NS_BAND[0] <= lo and hi <= NS_BAND[1]):
                report.fail(tr(
                    f"[{name}] after 5 steps the output should be ≈ U·S'·Vᵀ with S' in {NS_BAND}; got "
                    f"{lo:.3f}..{hi:.3f} (off-diagonal {off:.2f}). The cubic iteration or a missing normalisation "
                    "leaves small singular values too small.",
                    f"[{case_name(name)}] 5스텝 뒤의 출력은 S'가 {NS_BAND} 안에 있는 U·S'·Vᵀ에 가까워야 하는데, "
                    f"{lo:.3f}..{hi:.3f}(비대각 {off:.2f})가 나왔습니다. 3차 반복을 쓰거나 정규화를 빠뜨리면 작은 "
                    "특잇값이 충분히 커지지 않습니다."))
    report.finish()


# ------------------------------------------------------------------------------------------- Muon

#: Tolerance on the parameter change of each step, relative (Frobenius) to the change of the closest of
#: the accepted Muons (``MUON_REFERENCES``) from the same parameters, momentum and gradient
#: (``muon_step_difference``). Measured over 24 seeds by tests/test_checker_tolerances_optim.py: correct
#: variants reach at most 0.085 (bfloat16 in an order none of the references uses; torch's order,
#: Keller's order, float32 and the notebook's solution give 0); the closest mistake 0.28 (decay multiplied
#: by the scaled lr), one Newton–Schulz step more or fewer 0.38. Compared with torch alone, Keller's
#: bfloat16 order reached 0.070, above the former tolerance of 0.06.
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
    opt = _call_student("muon", lambda: optimizer_class(mine + [frozen], **hp),
                        tr("creating your optimizer", "옵티마이저 생성"))
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
        _call_student("muon", opt.step, tr(f"your step() (step {step})", f"여러분의 step()({step}번째 스텝)"))
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
    report = CheckReport(tr("check_muon: your Muon vs torch.optim.Muon", "check_muon: 여러분의 Muon과 torch.optim.Muon 비교"),
                         verbose=verbose)
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
                f"[{case_name(case['name'])}] 스텝이 가장 가까운 올바른 Muon({r['reference']})과 {where}에서 {worst:.3f}(상대값)만큼 "
                "다릅니다. 이 순서로 확인하세요: buf ← β·buf + (1−β)·g를 상태에 두고 스텝마다 이어 가기, "
                "nesterov=True이면 g + β·(buf − g)(lerp(g, buf, β))를, 아니면 buf 자체를 직교화하기, 모멘텀 "
                "다음에 Newton–Schulz(5차 반복 5번), 감쇠는 스케일을 곱하지 않은 lr로 θ ← θ·(1 − lr·λ), 스텝은 "
                f"−lr·scale·O이고 {case['adjust_lr_fn']!r}의 scale은 모양 {list(scale)}에 대해 {scale}."))
        if not torch.equal(r["frozen"].detach(), r["frozen_init"]):
            report.fail(tr(f"[{case['name']}] a parameter whose .grad is None changed; skip it.",
                           f"[{case_name(case['name'])}] .grad가 None인 매개변수가 바뀌었습니다. 건너뛰세요."))
        if r["frozen"] in r["opt"].state and len(r["opt"].state[r["frozen"]]) > 0:
            report.fail(tr(f"[{case['name']}] a parameter that never had a gradient got optimizer state.",
                           f"[{case_name(case['name'])}] 기울기를 한 번도 받지 않은 매개변수에 옵티마이저 상태가 생겼습니다."))
    report.finish()
