"""Checker for the dynamic loss scaling exercise of notebook 04.

``check_loss_scaler(scaler_cls)`` runs the student's loss scaler next to ``torch.amp.GradScaler("cpu")`` on
scripted runs of a 3-tensor model (two param groups) whose gradients overflow (inf/NaN) at listed steps:
the skipped steps, what ``step()`` returns, the scale sequence, the parameters and the unscaled gradients.

Every call into the student's code goes through ``checks.originality.call_student``: a copied answer
raises ``CopiedAnswerError``, ``NotImplementedError`` from an unfinished exercise passes through, and
any other crash becomes a ``StudentCodeError`` (an ``AssertionError``) that names it. The tolerances
were measured (the tests keep the measurement).
"""

from __future__ import annotations

import math

import torch

from ._common import max_relative_diff
from .i18n import tr
from .originality import StudentCodeError, call_student, refuse_reference
from .report import CheckReport

#: Parameters after every step and the unscaled gradients after every good step, relative to their
#: largest entry (``max_relative_diff``). GradScaler multiplies by a float32 1/scale; a student divides,
#: multiplies by a float64 1/scale or unscales in float64: with the non-power-of-two scale of case 3 that
#: is one rounding per gradient. Measured: correct variants reach at most 1.5e-7, the closest mistake
#: (unscaling with the scale after its update) 0.73.
SCALER_RTOL = 1e-5
#: The scale sequence, relative: every correct variant gives exactly GradScaler's numbers (0; the factors
#: are powers of two), the closest mistake (keeping the good-step counter after an overflow) is 0.25 off.
SCALE_RTOL = 1e-12

SCALER_SHAPES = ((3,), (2, 3), (4,))  # the scripted model's parameters p0, p1, p2 ...
SCALER_FIRST_GROUP = 2  # ... p0 and p1 in the first param group, p2 in the second
_INF, _NAN = math.inf, math.nan
# (init_scale, growth_factor, backoff_factor, growth_interval, steps, {step: (parameter, bad value)}):
# at the listed steps one entry of that parameter's gradient becomes inf/-inf/NaN after backward.
# Parameters 0 and 1 are in the first param group, parameter 2 in the second.
SCALER_CASES = [
    (2.0 ** 16, 2.0, 0.5, 3, 16, {2: (0, _INF), 3: (2, _NAN), 7: (1, _INF), 8: (0, _NAN), 9: (2, -_INF),
                                  13: (1, _NAN)}),
    (1024.0, 2.0, 0.25, 2, 14, {0: (2, _INF), 5: (0, _NAN), 6: (1, _INF), 10: (0, _INF)}),
    (8.0, 4.0, 0.5, 1, 10, {3: (1, _NAN), 4: (2, _INF), 8: (0, -_INF)}),
    (3000.0, 2.0, 0.5, 4, 18, {4: (1, _NAN), 9: (2, _NAN), 10: (0, _INF), 11: (1, _INF)}),
]


class _CountingSGD(torch.optim.SGD):
    """SGD that counts how often ``step`` runs (to see which steps a scaler skipped)."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)


def scaler_trace(make_scaler, scale_loss, do_step, get_scale, case, seed=0) -> dict:
    """Run a 3-tensor model (two param groups) for ``steps`` steps, spoiling one gradient entry at the
    listed steps. Returns per-step lists: scale after the step, stepped, what step returned, all
    parameters, and all gradients after the step."""
    init, growth, backoff, interval, steps, overflow = case
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in SCALER_SHAPES]
    opt = _CountingSGD([dict(params=params[:SCALER_FIRST_GROUP]), dict(params=params[SCALER_FIRST_GROUP:], lr=0.02)],
                       lr=0.05)
    scaler = make_scaler(init, growth, backoff, interval)
    trace = dict(scales=[], stepped=[], returned=[], params=[], grads=[])
    for i in range(steps):
        xs = [torch.randn(p.shape, generator=gen) for p in params]
        opt.zero_grad(set_to_none=True)
        loss = (sum((p * x).sum() for p, x in zip(params, xs)) - 1.0) ** 2
        scale_loss(scaler, loss).backward()
        if i in overflow:
            index, value = overflow[i]
            grad = params[index].grad.view(-1)
            grad[i % grad.numel()] = value
        before = opt.calls
        trace["returned"].append(do_step(scaler, opt))
        trace["scales"].append(float(get_scale(scaler)))
        trace["stepped"].append(opt.calls > before)
        trace["params"].append(torch.cat([p.detach().reshape(-1) for p in params]))
        trace["grads"].append(torch.cat([p.grad.detach().reshape(-1).clone() for p in params]))
    return trace


def grad_scaler_trace(case) -> dict:
    """``scaler_trace`` of ``torch.amp.GradScaler("cpu")``: the reference."""

    def make(init, growth, backoff, interval):
        return torch.amp.GradScaler("cpu", init_scale=init, growth_factor=growth, backoff_factor=backoff,
                                    growth_interval=interval)

    def do_step(scaler, opt):
        scaler.step(opt)
        scaler.update()

    return scaler_trace(make, lambda s, loss: s.scale(loss), do_step, lambda s: s.get_scale(), case)


def student_scaler_trace(scaler_cls, case) -> dict:
    """``scaler_trace`` of the student's class, every call into it through ``call_student``."""
    ex = "loss_scaler"
    return scaler_trace(
        lambda *a: call_student(ex, "LossScaler(...)", scaler_cls, init_scale=a[0], growth_factor=a[1],
                                backoff_factor=a[2], growth_interval=a[3]),
        lambda s, loss: call_student(ex, "scale_loss()", s.scale_loss, loss),
        lambda s, opt: call_student(ex, "step()", s.step, opt),
        lambda s: call_student(ex, tr("reading .scale", ".scale 읽기"), getattr, s, "scale"),
        case,
    )


def scaler_errors(trace: dict, ref: dict) -> dict:
    """The statistics the tolerances apply to: relative difference of the scale sequence, of the
    parameters (all steps) and of the gradients left in p.grad (after the steps GradScaler took)."""
    good = [i for i, s in enumerate(ref["stepped"]) if s]
    return dict(
        scales=max_relative_diff(torch.tensor(trace["scales"]), torch.tensor(ref["scales"])),
        parameters=max_relative_diff(torch.stack(trace["params"]), torch.stack(ref["params"])),
        gradients=max_relative_diff(torch.stack([trace["grads"][i] for i in good]),
                                    torch.stack([ref["grads"][i] for i in good])),
    )


def _describe_overflow(overflow: dict) -> str:
    return ", ".join(f"{step}: p{index} {value}" for step, (index, value) in sorted(overflow.items()))


def check_loss_scaler(scaler_cls, verbose: bool = True) -> None:
    """Compare a loss-scaler class with ``torch.amp.GradScaler("cpu")`` on scripted runs with overflows.

    Contract: ``scaler_cls(init_scale, growth_factor, backoff_factor, growth_interval)`` has a float
    attribute ``scale``, ``scale_loss(loss)`` and ``step(optimizer) -> bool`` that unscales the
    gradients of every param group in place, skips the optimizer step on inf/NaN, updates the scale,
    and returns True if it stepped, False if it skipped. Tolerances: ``SCALE_RTOL``, ``SCALER_RTOL``.
    """
    refuse_reference(scaler_cls, "loss_scaler")
    report = CheckReport(tr("dynamic loss scaler vs torch.amp.GradScaler",
                            "동적 손실 스케일러 vs torch.amp.GradScaler"), verbose)
    n, first = len(SCALER_SHAPES), SCALER_FIRST_GROUP
    if verbose:
        groups = f"[{', '.join(f'p{i}' for i in range(first))}] [{', '.join(f'p{i}' for i in range(first, n))}]"
        print(tr(f"model: {n} parameters in 2 param groups {groups}",
                 f"모델: 매개변수 {n}개, param group 2개 {groups}"))
    for k, case in enumerate(SCALER_CASES):
        init, growth, backoff, interval, steps, overflow = case
        ref = grad_scaler_trace(case)
        tag = tr(f"case {k}", f"경우 {k}")
        try:
            trace = student_scaler_trace(scaler_cls, case)
        except StudentCodeError as err:
            report.fail(f"{tag}: {err}")
            continue
        if verbose:
            print(tr(f"{tag}: init {init:g}, growth ×{growth:g}, backoff ×{backoff:g}, interval {interval}, "
                     f"bad gradients at step: {_describe_overflow(overflow)}",
                     f"{tag}: 초기 {init:g}, 증가 ×{growth:g}, 감소 ×{backoff:g}, 간격 {interval}, "
                     f"기울기가 망가지는 스텝: {_describe_overflow(overflow)}"))
        if trace["stepped"] != ref["stepped"]:
            first = next(i for i, (a, b) in enumerate(zip(trace["stepped"], ref["stepped"])) if a != b)
            index, value = overflow.get(first, (None, None))
            group = 0 if index is None or index < SCALER_FIRST_GROUP else 1
            what = (tr(f" (parameter {index} of {n}, in param group {group}, has a {value} "
                       "in its gradient: check every parameter of every group, for inf AND NaN)",
                       f" (param group {group}에 있는 매개변수 {index}의 기울기에 {value} 값이 "
                       "있습니다. 모든 그룹의 모든 매개변수를 inf와 NaN 둘 다 검사하세요)")
                    if index is not None else "")
            report.fail(tr(f"{tag}: step {first} {'ran' if trace['stepped'][first] else 'was skipped'} but "
                           f"GradScaler {'ran' if ref['stepped'][first] else 'skipped'} it{what}. Skip exactly the "
                           "steps whose unscaled gradients contain inf/NaN.",
                           f"{tag}: 스텝 {first}을(를) {'실행했지만' if trace['stepped'][first] else '건너뛰었지만'} "
                           f"GradScaler는 {'실행했습니다' if ref['stepped'][first] else '건너뛰었습니다'}{what}. "
                           "스케일을 되돌린 기울기에 inf/NaN이 있는 스텝만 정확히 건너뛰어야 합니다."))
        elif verbose:
            skipped = [i for i, s in enumerate(trace["stepped"]) if not s]
            print(tr(f"{tag + ': skip decisions':<28s} | exact: True  | skipped steps {skipped}",
                     f"{tag + ': 건너뛰기 결정':<28s} | 정확히 일치: True  | 건너뛴 스텝 {skipped}"))
        wrong_return = [(i, r) for i, (r, s) in enumerate(zip(trace["returned"], trace["stepped"])) if r is not s]
        if wrong_return:
            i, r = wrong_return[0]
            report.fail(tr(f"{tag}: step() returned {r!r} at step {i}; return exactly True when the optimizer "
                           "stepped and False when the step was skipped (a Python bool).",
                           f"{tag}: 스텝 {i}에서 step()이 {r!r}을(를) 돌려줬습니다. 옵티마이저를 업데이트했으면 "
                           "정확히 True, 건너뛰었으면 False(파이썬 bool)를 돌려줘야 합니다."))
        elif verbose:
            print(tr(f"{tag + ': step() return values':<28s} | exact: True",
                     f"{tag + ': step() 반환값':<28s} | 정확히 일치: True"))
        report.compare(tr(f"{tag}: scale sequence", f"{tag}: 스케일 변화"),
                       torch.tensor(trace["scales"], dtype=torch.float64),
                       torch.tensor(ref["scales"], dtype=torch.float64), rtol=SCALE_RTOL,
                       hint=tr(f"GradScaler gives {ref['scales']}, you gave {trace['scales']}. Back off on "
                               "overflow and reset the good-step counter; grow after exactly growth_interval "
                               "good steps in a row.",
                               f"GradScaler는 {ref['scales']}, 여러분은 {trace['scales']}입니다. 오버플로가 나면 "
                               "스케일을 줄이고 정상 스텝 카운터를 0으로 되돌리며, 정상 스텝이 정확히 "
                               "growth_interval번 이어지면 키웁니다."))
        ref_params = torch.stack(ref["params"])
        report.compare(tr(f"{tag}: parameters", f"{tag}: 매개변수"), torch.stack(trace["params"]), ref_params,
                       atol=SCALER_RTOL * float(ref_params.abs().max()),
                       hint=tr("the update uses the gradients divided by the scale the loss was multiplied by "
                               "(the scale before this step's update), in every param group.",
                               "업데이트에는 손실에 곱했던 스케일(이번 스텝에서 스케일을 바꾸기 전 값)로 나눈 "
                               "기울기를 모든 param group에서 써야 합니다."))
        good = [i for i, s in enumerate(ref["stepped"]) if s]
        if good and trace["stepped"] == ref["stepped"]:
            ref_grads = torch.stack([ref["grads"][i] for i in good])
            report.compare(tr(f"{tag}: unscaled p.grad", f"{tag}: 스케일을 되돌린 p.grad"),
                           torch.stack([trace["grads"][i] for i in good]), ref_grads,
                           atol=SCALER_RTOL * float(ref_grads.abs().max()),
                           hint=tr("after step() the gradients in p.grad must be the unscaled ones (divide "
                                   "p.grad in place, as GradScaler does), so that clipping or logging after "
                                   "it sees the true gradients.",
                                   "step() 뒤 p.grad에는 스케일을 되돌린 기울기가 남아 있어야 합니다(GradScaler처럼 "
                                   "p.grad를 제자리에서 나누세요). 그래야 그 뒤의 클리핑이나 로그가 실제 기울기를 "
                                   "봅니다."))
    report.finish()
