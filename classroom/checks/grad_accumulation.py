"""Checker for the gradient accumulation exercise of notebook 08.

``check_grad_accumulation(fn)`` compares the student's accumulated step over micro-batches with one step on
the concatenated batch: the returned loss, the gradients left in ``p.grad`` and the update, for SGD and
AdamW, with and without clipping and masked labels.

Every call into the student's code goes through ``checks.originality.call_student``: a copied
answer raises ``CopiedAnswerError``, an unfinished one ``NotImplementedError``, any other crash fails the
check with its name. The tolerances were measured (the tests keep the measurement).
"""

from __future__ import annotations

import math

import torch

from ._common import max_relative_diff, norm_relative_diff
from .i18n import tr
from .originality import StudentCodeError, call_student, refuse_reference
from .report import CheckReport


def _tiny_model(seed: int):
    from course_lib.models import TransformerConfig, TransformerForCausalLM

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
    loss = call_student("grad_accumulation", "accumulate_step()", fn, model, opt, micro, case["clip"])
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
