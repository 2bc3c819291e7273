"""Checker for the AdamW exercise of notebook 01.

``check_adamw(optimizer_class)``: first one short probe per part of AdamW (moments, sign, bias
correction, ε, per-parameter state, weight decay, state dtype, param groups), so a failure names the part
that is wrong; then long runs next to ``torch.optim.AdamW`` (and the three other accepted ways to write
the same algorithm) over many steps, shapes, dtypes and settings.

It prints a ``CheckReport`` and raises ``AssertionError`` with a hint in the notebook's language.
A copied answer raises ``CopiedAnswerError`` and an unfinished exercise ``NotImplementedError``, both
unchanged; any other exception from the student's code becomes an ``AssertionError`` that names it.
"""

from __future__ import annotations

import math

import torch

from ._common import case_params, assert_frozen_untouched, scripted_grad
from .i18n import case_name, tr
from .originality import CopiedAnswerError, call_student, refuse_reference
from .report import CheckReport

#: Tolerance (max |difference| of the parameters) after a whole AdamW run, against the closest of the
#: four accepted forms (``adamw_run``). Measured: correct variants (the four forms, a foreach version, the
#: notebook's solution; 20 seeds) reach at most 2.4e-7 in float32 and 4.4e-16 in float64; the closest
#: mistake (5 seeds) 5.2e-3 in float32 (a global step counter) and 4.2e-9 in float64 (m and v kept in
#: float32).
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
    opt = call_student("adamw", tr("creating your optimizer", "옵티마이저 생성"),
                       lambda: optimizer_class(param_groups, **(defaults or groups[0])))
    mine = []
    for step, step_grads in enumerate(grads, start=1):
        for ps, gs in zip(params, step_grads):
            for p, g in zip(ps, gs):
                p.grad = None if g is None else g.clone()
        call_student("adamw", tr(f"your step() (probe of the {probe}, step {step})",
                                 f"여러분의 step()({probe} 확인, {step}번째 스텝)"), opt.step)
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


# ---- long runs next to torch.optim.AdamW (parameter layout and scripted gradients in _common, shared with lion)


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
    init, student, frozen, frozen_init, groups = case_params(case, ADAMW_SHAPES, gen)
    opt = call_student("adamw", tr("creating your optimizer", "옵티마이저 생성"),
                       lambda: optimizer_class(groups, **case["groups"][0]))
    refs = {name: [[x.clone() for x in g] for g in init] for name in ADAMW_VARIANTS}
    ref_states = {name: {} for name in ADAMW_VARIANTS}
    # torch itself for the first variant, as the ground truth
    torch_params = [[x.clone().requires_grad_() for x in g] for g in init]
    torch_opt = torch.optim.AdamW([dict(params=ps, **hp) for ps, hp in zip(torch_params, case["groups"])],
                                  foreach=False)
    for step in range(1, case["steps"] + 1):
        for gi, hp in enumerate(case["groups"]):
            for pi, p in enumerate(student[gi]):
                grad = scripted_grad(p, pi, step, case, gen)
                p.grad = None if grad is None else grad.clone()
                torch_params[gi][pi].grad = None if grad is None else grad.clone()
                if grad is None:
                    continue
                for name, (decay, form) in ADAMW_VARIANTS.items():
                    st = ref_states[name].setdefault((gi, pi), {})
                    _reference_adamw_step(refs[name][gi][pi], grad, st, hp["lr"], *hp["betas"], hp["eps"],
                                          hp["weight_decay"], decay, form)
        call_student("adamw", tr(f"your step() (step {step}, case: {case['name']})",
                                 f"여러분의 step()({step}번째 스텝, 설정: {case_name(case['name'])})"), opt.step)
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
                     f"실행 {i + 1}: {case_name(case['name'])} | {case['steps']}스텝 | "
                     f"가장 가까운 올바른 형태: {case_name(best_name)} | "
                     f"최대 차이 {diff:.2e} (허용 {tol:.0e})"))
        if not ok:
            report.fail(tr(f"[{case['name']}, {case['steps']} steps] your parameters differ from the closest "
                           f"accepted form ({best_name}) by {diff:.2e} (allowed {tol:.0e}). {hint}",
                           f"[{case_name(case['name'])}, {case['steps']}스텝] 매개변수가 가장 가까운 올바른 형태"
                           f"({case_name(best_name)})와 "
                           f"{diff:.2e}만큼 다릅니다(허용 {tol:.0e}). {hint}"))
        assert_frozen_untouched(report, case, opt, frozen, frozen_init, "(`if p.grad is None: continue`)")
    report.finish()
