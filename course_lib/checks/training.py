"""Checkers for notebooks 06–08: μP settings, the WSD schedule, gradient accumulation.

Every call into the student's code goes through ``checks.originality.student_call``: a copied
answer raises ``CopiedAnswerError``, an unfinished one ``NotImplementedError``, any other crash fails the
check with its name. The tolerances were measured (tests/test_checker_tolerances_training.py).
"""

from __future__ import annotations

import math

import torch

from .i18n import tr
from .originality import StudentCodeError, refuse_reference, student_call
from .precision import max_relative_diff
from .report import CheckReport


def norm_relative_diff(mine, reference) -> float:
    """‖mine − reference‖ / ‖reference‖ (float64; inf for a NaN/inf or another shape)."""
    a = torch.as_tensor(mine).detach().double().reshape(-1)
    b = torch.as_tensor(reference).detach().double().reshape(-1)
    if a.shape != b.shape or not bool(torch.isfinite(a).all()):
        return math.inf
    return float((a - b).norm() / b.norm().clamp(min=1e-300))

# ---------------------------------------------------------------------------- μP (notebook 06)

#: Relative error of each μP number (init std, LR multiplier, output multiplier, attention scale) and of
#: the logits and LRs of a model built with them (relative to their largest entry). Measured: correct
#: variants (fan_in ** -0.5, √m / √fan_in, the numbers in float32) reach at most 1.7e-8; the closest
#: mistake (the readout initialised with 1/√fan_in) 0.65.
MUP_RTOL = 1e-5

MUP_SETTINGS_CASES = [(role, fan_in, mult) for role in ("embedding", "hidden", "readout")
                      for fan_in, mult in ((32, 1.0), (64, 2.0), (256, 8.0), (512, 4.0))]
MUP_ATTENTION_CASES = [(8, 8), (16, 8), (64, 8), (32, 16)]


def mup_errors(settings_fn, attention_scale_fn) -> dict:
    """The statistics ``MUP_RTOL`` applies to: ``settings`` {(role, fan_in, m): relative error of the
    triple, or None if it is not 3 numbers}, ``attention`` {(d, base): relative error}."""
    from ..mup import mup_attention_scale, mup_param_settings

    settings, attention = {}, {}
    for role, fan_in, mult in MUP_SETTINGS_CASES:
        got = student_call("mup", f"mup_settings({role!r}, {fan_in}, {mult})", settings_fn, role, fan_in, mult)
        try:
            values = [float(v) for v in got]
        except (TypeError, ValueError):
            values = []
        ref = mup_param_settings(role, fan_in, mult)
        settings[(role, fan_in, mult)] = (max(abs(a - b) / abs(b) for a, b in zip(values, ref))
                                          if len(values) == 3 else None, got)
    for head_dim, base in MUP_ATTENTION_CASES:
        got = student_call("mup", f"mup_attention({head_dim}, {base})", attention_scale_fn, head_dim, base)
        ref = mup_attention_scale(head_dim, base)
        try:
            attention[(head_dim, base)] = (abs(float(got) - ref) / ref, got)
        except (TypeError, ValueError):
            attention[(head_dim, base)] = (math.inf, got)
    return dict(settings=settings, attention=attention)


def mup_model_errors(settings_fn, attention_scale_fn) -> list[dict]:
    """Models of width 16 and 64 built with the student's functions vs the reference μP model: the
    relative error of their logits and of their param-group LRs (the statistics of ``MUP_RTOL``)."""
    from ..mup import WidthScalableTransformer

    x = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    rows = []
    for width in (16, 64):
        torch.manual_seed(0)
        mine = student_call("mup", tr(f"building a width-{width} model with your functions",
                                      f"여러분의 함수로 폭 {width} 모델 만들기"),
                            WidthScalableTransformer, 64, width, 16, depth=1, n_heads=2, settings_fn=settings_fn,
                            attention_scale_fn=attention_scale_fn)
        torch.manual_seed(0)
        ref = WidthScalableTransformer(64, width, 16, depth=1, n_heads=2, parametrization="mup")
        with torch.no_grad():
            logits, ref_logits = mine(x), ref(x)
        lrs = {n: g["lr"] for g in mine.param_groups(1e-2) for n in g["names"]}
        ref_lrs = {n: g["lr"] for g in ref.param_groups(1e-2) for n in g["names"]}
        lrs, ref_lrs = (torch.tensor([d[n] for n in sorted(d)], dtype=torch.float64) for d in (lrs, ref_lrs))
        rows.append(dict(width=width, logits=(logits, ref_logits), lrs=(lrs, ref_lrs),
                         logits_error=max_relative_diff(logits, ref_logits), lrs_error=max_relative_diff(lrs, ref_lrs)))
    return rows


_MUP_HINTS = {
    "embedding": ("embeddings are 'input weights': constant init std 1 and an unscaled Adam LR.",
                  "임베딩은 '입력 가중치'입니다. 초기화 표준편차는 상수 1, Adam 학습률은 그대로입니다."),
    "hidden": ("hidden matrices: init std 1/√fan_in, Adam LR × 1/width_mult (Adam's update is Θ(1) per entry, "
               "and fan_in of them add up).",
               "은닉 행렬: 초기화 표준편차 1/√fan_in, Adam 학습률 × 1/width_mult(Adam의 업데이트는 원소마다 Θ(1)이고 "
               "fan_in개가 더해집니다)."),
    "readout": ("the readout keeps the base model's init (std = √(width_mult/fan_in) = 1/√base_fan_in), an unscaled "
                "LR, and multiplies its output by 1/width_mult.",
                "리드아웃은 기준 모델의 초기화(표준편차 = √(width_mult/fan_in) = 1/√base_fan_in)와 그대로인 학습률을 "
                "쓰고, 출력에 1/width_mult를 곱합니다."),
}


def check_mup(settings_fn, attention_scale_fn, verbose: bool = True) -> None:
    """``settings_fn(role, fan_in, width_mult) -> (init_std, lr_multiplier, forward_multiplier)`` and
    ``attention_scale_fn(head_dim, base_head_dim)`` against ``course_lib.mup``'s μP for Adam (which
    tests/test_mup.py checks against Microsoft's ``mup``), then a model built with them against the
    reference model: same initial weights, same logits, same optimizer LRs. Tolerance: ``MUP_RTOL``."""
    from ..mup import mup_attention_scale, mup_param_settings

    refuse_reference((settings_fn, attention_scale_fn), "mup")
    report = CheckReport(tr("μP init / LR multipliers", "μP 초기화 / 학습률 배수"), verbose)
    try:
        errors = mup_errors(settings_fn, attention_scale_fn)
    except StudentCodeError as err:
        report.fail(str(err))
        report.finish()
        return
    for (role, fan_in, mult), (error, got) in errors["settings"].items():
        if error is None:
            report.fail(tr(f"settings_fn({role!r}, {fan_in}, {mult}) must return 3 numbers, got {got!r}",
                           f"settings_fn({role!r}, {fan_in}, {mult})은(는) 숫자 3개를 돌려줘야 하는데 {got!r}을(를) "
                           "돌려줬습니다"))
            continue
        ref = mup_param_settings(role, fan_in, mult)
        report.compare(f"{role} fan_in={fan_in} m={mult:g}", torch.tensor([float(v) for v in got], dtype=torch.float64),
                       torch.tensor(ref, dtype=torch.float64), rtol=MUP_RTOL, hint=tr(*_MUP_HINTS[role]))
    for (head_dim, base), (error, got) in errors["attention"].items():
        if not math.isfinite(error):
            report.fail(tr(f"attention_scale_fn({head_dim}, {base}) must return a number, got {got!r}",
                           f"attention_scale_fn({head_dim}, {base})은(는) 숫자를 돌려줘야 하는데 {got!r}입니다"))
            continue
        report.compare(tr(f"attention scale d={head_dim} base={base}", f"어텐션 스케일 d={head_dim} base={base}"),
                       float(got), mup_attention_scale(head_dim, base), rtol=MUP_RTOL,
                       hint=tr("μP scales attention logits by 1/d (not 1/√d), times √base_head_dim so that it "
                               "equals 1/√d at the base width.",
                               "μP는 어텐션 로짓을 1/√d가 아니라 1/d에 비례하게 스케일하고, 기준 폭에서 1/√d와 "
                               "같아지도록 √base_head_dim을 곱합니다."))
    if not report.failures:
        try:
            rows = mup_model_errors(settings_fn, attention_scale_fn)
        except StudentCodeError as err:
            report.fail(str(err))
            rows = []
        for row in rows:
            width = row["width"]
            logits, ref_logits = row["logits"]
            report.compare(tr(f"logits at width {width}", f"폭 {width}의 로짓"), logits, ref_logits,
                           atol=MUP_RTOL * float(ref_logits.abs().max()))
            lrs, ref_lrs = row["lrs"]
            report.compare(tr(f"param-group LRs at width {width}", f"폭 {width}의 그룹별 학습률"), lrs, ref_lrs,
                           atol=MUP_RTOL * float(ref_lrs.abs().max()))
    report.finish()


# ---------------------------------------------------------------------------- WSD (notebook 07)

WSD_CASES = [
    dict(warmup_steps=10, stable_steps=50, decay_steps=20, min_ratio=0.1, decay_shape="linear"),
    dict(warmup_steps=5, stable_steps=20, decay_steps=13, min_ratio=0.0, decay_shape="linear"),
    dict(warmup_steps=8, stable_steps=30, decay_steps=17, min_ratio=0.1, decay_shape="cosine"),
    dict(warmup_steps=4, stable_steps=12, decay_steps=25, min_ratio=0.05, decay_shape="1-sqrt"),
    dict(warmup_steps=0, stable_steps=10, decay_steps=10, min_ratio=0.2, decay_shape="linear"),
    dict(warmup_steps=7, stable_steps=0, decay_steps=9, min_ratio=0.1, decay_shape="cosine"),
]


#: Largest absolute difference of the multiplier at any step. Measured: correct variants (numpy instead
#: of math, warmup as a lerp, progress counted from the end, p ** 0.5, float32 tensors) reach at most
#: 8.3e-8 (float32; 2.2e-16 in float64); the closest mistake (decay progress over decay_steps + 1) 8.6e-2.
WSD_ATOL = 1e-6


def _reference_wsd(case: dict, steps: int) -> list[float]:
    from transformers import get_wsd_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_wsd_schedule(opt, num_warmup_steps=case["warmup_steps"], num_decay_steps=case["decay_steps"],
                             num_stable_steps=case["stable_steps"], min_lr_ratio=case["min_ratio"],
                             warmup_type="linear", decay_type=case["decay_shape"])
    return [sched.lr_lambdas[0](s) for s in range(steps)]


def wsd_values(fn, case: dict) -> tuple[list[float], list[float]]:
    """The student's multipliers and the reference's at every step of one case (10 past the end);
    ``WSD_ATOL`` applies to their largest absolute difference."""
    end = case["warmup_steps"] + case["stable_steps"] + case["decay_steps"]
    steps = range(end + 10)
    ref = _reference_wsd(case, len(steps))
    mine = student_call("wsd_schedule", f"wsd_lr(step, **{case})",
                        lambda: [float(fn(s, **case)) for s in steps])
    return mine, ref


def check_wsd_schedule(fn, verbose: bool = True) -> None:
    """``fn(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)`` (the LR multiplier)
    against ``transformers.get_wsd_schedule(warmup_type="linear")`` at every step of several runs,
    including 10 steps past the end. Tolerance: ``WSD_ATOL``."""
    refuse_reference(fn, "wsd_schedule")
    report = CheckReport(tr("WSD schedule", "WSD 스케줄"), verbose)
    for case in WSD_CASES:
        try:
            mine, ref = wsd_values(fn, case)
        except StudentCodeError as err:
            report.fail(str(err))
            continue
        end = case["warmup_steps"] + case["stable_steps"] + case["decay_steps"]
        name = f"w{case['warmup_steps']}/s{case['stable_steps']}/d{case['decay_steps']} {case['decay_shape']}"
        bad = next((s for s in range(len(ref)) if not abs(mine[s] - ref[s]) <= WSD_ATOL), None)
        hint = ""
        if bad is not None:
            w, st = case["warmup_steps"], case["stable_steps"]
            phase = (tr("warmup (it starts at min_ratio at step 0 and reaches 1 at step warmup_steps)",
                        "워밍업(스텝 0에서 min_ratio로 시작해 스텝 warmup_steps에서 1에 도달)") if bad < w else
                     tr("stable phase (1.0 for steps warmup_steps … warmup_steps+stable_steps−1)",
                        "유지 구간(스텝 warmup_steps … warmup_steps+stable_steps−1에서 1.0)") if bad < w + st else
                     tr("decay (progress = (step − warmup − stable)/decay_steps; min_ratio + (1 − min_ratio)·shape)",
                        "감쇠 구간(progress = (step − warmup − stable)/decay_steps, min_ratio + (1 − min_ratio)·shape)")
                     if bad < end else tr("after the end (stay at min_ratio)", "끝난 뒤(min_ratio 유지)"))
            hint = tr(f"First wrong value at step {bad}: {mine[bad]:.6f} instead of {ref[bad]:.6f}, in the {phase}.",
                      f"스텝 {bad}에서 처음 틀립니다. {ref[bad]:.6f}이어야 하는데 {mine[bad]:.6f}입니다. 구간: {phase}.")
        report.compare(name, torch.tensor(mine, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64),
                       atol=WSD_ATOL, hint=hint)
    report.finish()


# ---------------------------------------------------------------------------- accumulation (notebook 08)


def _tiny_model(seed: int):
    from ..models import TransformerConfig, TransformerForCausalLM

    torch.manual_seed(seed)
    return TransformerForCausalLM(TransformerConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                                    num_hidden_layers=1, num_attention_heads=2,
                                                    num_key_value_heads=1, max_position_embeddings=16))


def _micro_batches(k: int, rows: int, seq: int, masked: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(k):
        ids = torch.randint(0, 50, (rows, seq), generator=g)
        labels = ids.clone()
        if masked:  # a different number of ignored targets in every micro-batch (padding)
            labels[:, seq - 2 - 3 * i:] = -100
        out.append((ids, labels))
    return out


#: Relative error of the returned loss, of the gradients left in p.grad (``max_relative_diff``) and of
#: the update, weights after − before (``norm_relative_diff``: AdamW's first update, lr·g/(|g| + ε), turns
#: a rounding difference in a near-zero gradient into a large one in that coordinate, so the update is
#: compared as a whole), against one step on the concatenated batch. Correct variants (one backward of
#: the summed weighted losses, float64 accumulation, the loss summed over tokens then divided by the
#: total) reach at most 5.4e-6 over 4 seeds; the closest mistake (counting the targets without the
#: shift, so padded micro-batches get the wrong weight) 0.23.
ACCUMULATION_RTOL = 1e-4

ACCUMULATION_CASES = [
    dict(k=2, masked=False, clip=None, opt="sgd"),
    dict(k=4, masked=False, clip=None, opt="sgd"),
    dict(k=1, masked=False, clip=None, opt="sgd"),
    dict(k=3, masked=True, clip=None, opt="sgd"),
    dict(k=2, masked=False, clip=0.05, opt="sgd"),
    dict(k=4, masked=True, clip=0.05, opt="adamw"),
]


def _make_optimizer(model, name: str):
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.5)
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def accumulation_run(fn, i: int, case: dict) -> dict:
    """Case ``i``: the student's step and one step on the concatenated batch, from the same model.
    Returns the loss, gradients (None if one is missing) and update of both, and their relative errors
    (``loss``, ``gradients``, ``update``: the statistics ``ACCUMULATION_RTOL`` applies to)."""
    micro = _micro_batches(case["k"], 2, 12, case["masked"], seed=100 + i)
    ref_model, model = _tiny_model(i), _tiny_model(i)
    ref_opt, opt = _make_optimizer(ref_model, case["opt"]), _make_optimizer(model, case["opt"])
    before = torch.cat([p.detach().reshape(-1) for p in ref_model.parameters()])
    # reference: one step on the concatenated batch
    ref_opt.zero_grad()
    ref_loss = ref_model(torch.cat([b for b, _ in micro]), labels=torch.cat([lab for _, lab in micro]),
                         return_logits=False).loss
    ref_loss.backward()
    if case["clip"]:
        torch.nn.utils.clip_grad_norm_(ref_model.parameters(), case["clip"])
    ref_opt.step()
    # the student's step, starting from stale gradients that must be cleared first
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.3)
    loss = student_call("grad_accumulation", "accumulate_step()", fn, model, opt, micro, case["clip"])
    row = dict(ref_loss=ref_loss.item(), loss_value=loss,
               ref_grads=torch.cat([p.grad.reshape(-1) for p in ref_model.parameters()]),
               ref_update=torch.cat([p.detach().reshape(-1) for p in ref_model.parameters()]) - before,
               update_value=torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before)
    grads = [p.grad for p in model.parameters()]
    row["grads"] = None if any(g is None for g in grads) else torch.cat([g.reshape(-1) for g in grads])
    if loss is not None:
        try:
            loss = float(loss.detach() if torch.is_tensor(loss) else loss)
        except (TypeError, ValueError, RuntimeError):
            loss = math.nan  # not a number: fails the comparison
        row["loss_value"] = loss
        row["loss"] = abs(loss - row["ref_loss"]) / abs(row["ref_loss"])
    row["gradients"] = math.inf if row["grads"] is None else max_relative_diff(row["grads"], row["ref_grads"])
    row["update"] = norm_relative_diff(row["update_value"], row["ref_update"])
    return row


def check_grad_accumulation(fn, verbose: bool = True) -> None:
    """``fn(model, optimizer, micro_batches, clip_norm)`` (zero the gradients, accumulate over the
    micro-batches, clip once, step once, leave the gradients in ``p.grad``, return the mean loss)
    against one step on the concatenated batch: gradients, loss and updated weights, for SGD and
    AdamW, k = 1, 2, 3, 4, with and without clipping and masked (-100) labels. Tolerance:
    ``ACCUMULATION_RTOL`` (relative to the largest entry; the sums are added in a different order)."""
    refuse_reference(fn, "grad_accumulation")
    report = CheckReport(tr("gradient accumulation", "기울기 누적"), verbose)
    for i, case in enumerate(ACCUMULATION_CASES):
        name = f"k={case['k']} masked={case['masked']} clip={case['clip']} {case['opt']}"
        try:
            row = accumulation_run(fn, i, case)
        except StudentCodeError as err:
            report.fail(f"{name}: {err}")
            continue
        if row["loss_value"] is None:
            report.fail(tr(f"{name}: return the mean loss of the accumulated batch (a float), not None",
                           f"{name}: None이 아니라 누적한 배치 전체의 평균 손실(float)을 돌려줘야 합니다"))
        else:
            report.compare(tr(f"{name}: loss", f"{name}: 손실"), row["loss_value"], row["ref_loss"],
                           atol=ACCUMULATION_RTOL * abs(row["ref_loss"]),
                           hint=tr("the returned loss must be the token-weighted mean over all micro-batches "
                                   "(a plain float, e.g. via .item()).",
                                   "돌려주는 손실은 모든 마이크로배치에 대한 토큰 가중 평균(예: .item()으로 얻은 "
                                   "float)이어야 합니다."))
        if row["grads"] is None:
            report.fail(tr(f"{name}: a gradient is None after your step; leave the accumulated gradients in "
                           "p.grad (do not zero them after optimizer.step()).",
                           f"{name}: 여러분의 스텝 뒤에 기울기가 None입니다. 누적한 기울기를 p.grad에 그대로 두세요"
                           "(optimizer.step() 뒤에 비우지 마세요)."))
        else:
            report.compare(tr(f"{name}: gradients", f"{name}: 기울기"), row["grads"], row["ref_grads"],
                           atol=ACCUMULATION_RTOL * float(row["ref_grads"].abs().max()),
                           hint=tr("weight each micro-batch's mean loss by its share of target tokens "
                                   "(count_target_tokens(labels) / total; 1/k when all are equal), zero the "
                                   "gradients once before the loop, and clip once after it.",
                                   "마이크로배치마다 평균 손실에 타깃 토큰 비율(count_target_tokens(labels) / 전체, "
                                   "모두 같으면 1/k)을 곱하고, 기울기는 루프 전에 한 번만 비우고, 클리핑은 루프 뒤에 "
                                   "한 번만 하세요."))
        ok = row["update"] <= ACCUMULATION_RTOL
        if verbose:
            print(tr(f"{name + ': update':<28s} | close: {str(ok):5s} | relative error (norm): {row['update']:.3e}",
                     f"{name + ': 업데이트':<28s} | 허용 오차 안: {str(ok):5s} | 상대 오차(노름): {row['update']:.3e}"))
        if not ok:
            report.fail(tr(f"{name}: the update (weights after − before) differs from the reference by "
                           f"{row['update']:.2e} of its norm (tolerance {ACCUMULATION_RTOL:g}). Call "
                           "optimizer.step() exactly once, after all micro-batches.",
                           f"{name}: 업데이트(스텝 뒤 가중치 − 스텝 전 가중치)가 참조 구현과 노름 대비 "
                           f"{row['update']:.2e}만큼 다릅니다(허용 오차 {ACCUMULATION_RTOL:g}). optimizer.step()은 "
                           "모든 마이크로배치가 끝난 뒤 정확히 한 번 호출하세요."))
    report.finish()
