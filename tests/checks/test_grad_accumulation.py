"""check_grad_accumulation passes the notebook's solution and other correct answers, refuses copied
answers, lets the stub's NotImplementedError through, and fails typical mistakes (in the notebook's
language); its tolerance lies between the correct variants and the mistakes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import course_lib.stability as st
from classroom.checks.grad_accumulation import (ACCUMULATION_CASES, ACCUMULATION_RTOL, accumulation_run,
                                                check_grad_accumulation)
from classroom.checks.originality import CopiedAnswerError

from ._helpers import _assert_between, assert_messages_in_both_languages, notebook_definitions, stub


def accumulation_variant(kind):
    """The reference algorithm written from scratch, or one typical mistake in it."""

    def fn(model, optimizer, micro_batches, clip_norm):
        k = len(micro_batches)
        counts = [int((lab[:, 1:] != -100).sum()) for _, lab in micro_batches]
        if kind == "count_unshifted":
            counts = [int((lab != -100).sum()) for _, lab in micro_batches]
        total = sum(counts)
        if kind != "no_zero_grad":
            optimizer.zero_grad()
        losses = []
        for (ids, lab), n in zip(micro_batches, counts):
            if kind == "zero_between":
                optimizer.zero_grad()
            loss = model(ids, labels=lab, return_logits=False).loss
            weight = {"no_divide": 1.0, "average_losses": 1.0 / k}.get(kind, n / total)
            (loss * weight).backward()
            losses.append((loss.item(), n))
            if kind == "clip_each" and clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            if kind == "step_each":
                optimizer.step()
        if clip_norm and kind not in ("clip_each", "no_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        if kind != "step_each":
            optimizer.step()
        if kind == "zero_after":
            optimizer.zero_grad()
        if kind == "last_loss":
            return losses[-1][0]
        if kind in ("average_losses", "mean_of_means_loss"):
            return sum(v for v, _ in losses) / k
        if kind == "returns_nothing":
            return None
        return sum(v * n for v, n in losses) / sum(n for _, n in losses)

    return fn


def accumulate_summed_loss(model, optimizer, micro_batches, clip_norm):
    """One backward of the sum of the weighted losses."""
    counts = [st.count_target_tokens(lab) for _, lab in micro_batches]
    total = sum(counts)
    optimizer.zero_grad(set_to_none=False)
    weighted = sum(model(ids, labels=lab, return_logits=False).loss * (n / total)
                   for (ids, lab), n in zip(micro_batches, counts))
    weighted.backward()
    if clip_norm:
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip_norm, foreach=False)
    optimizer.step()
    return weighted.detach()


def accumulate_float64(model, optimizer, micro_batches, clip_norm):
    """Gradients from torch.autograd.grad, accumulated in float64 buffers; the loss summed over tokens
    (reduction="sum" on the logits) and divided by the total count."""
    params = list(model.parameters())
    total = sum(st.count_target_tokens(lab) for _, lab in micro_batches)
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    loss_sum = torch.zeros((), dtype=torch.float64)
    for ids, lab in micro_batches:
        logits = model(ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), lab[:, 1:].reshape(-1),
                               ignore_index=-100, reduction="sum")
        for acc, g in zip(sums, torch.autograd.grad(loss, params)):
            acc += g.double()
        loss_sum += loss.detach().double()
    optimizer.zero_grad()
    for p, acc in zip(params, sums):
        p.grad = (acc / total).to(p.dtype)
    if clip_norm:
        torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    return float(loss_sum / total)


CORRECT_ACCUMULATION = {"from scratch": accumulation_variant("reference"), "one backward": accumulate_summed_loss,
                        "float64 buffers": accumulate_float64}
ACCUMULATION_MISTAKES = ["no_divide", "zero_between", "step_each", "average_losses", "mean_of_means_loss", "clip_each",
                         "no_clip", "no_zero_grad", "count_unshifted", "last_loss"]


def test_check_accumulation_passes_notebook_solution():
    # the notebook's answer calls st.count_target_tokens: allowed (only accumulation_step is the answer)
    check_grad_accumulation(notebook_definitions("08_stability", "grad_accumulation")["accumulate_step"], verbose=False)


@pytest.mark.parametrize("name", CORRECT_ACCUMULATION)
def test_check_accumulation_passes_correct_variants(name):
    check_grad_accumulation(CORRECT_ACCUMULATION[name], verbose=False)


def test_check_accumulation_fails_stub():
    with pytest.raises(NotImplementedError):
        check_grad_accumulation(stub, verbose=False)


@pytest.mark.parametrize("kind", ACCUMULATION_MISTAKES + ["zero_after", "returns_nothing"])
def test_check_accumulation_fails_wrong(kind):
    with pytest.raises(AssertionError) as err:
        check_grad_accumulation(accumulation_variant(kind), verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


def accumulate_wrapper(model, optimizer, micro_batches, clip_norm=None):
    return st.accumulation_step(model, optimizer, micro_batches, clip_norm)


def accumulate_via_train(model, optimizer, micro_batches, clip_norm=None):
    from course_lib import train

    optimizer.zero_grad()
    loss = train.accumulate_gradients(model, micro_batches)
    if clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss


@pytest.mark.parametrize("copied", [st.accumulation_step, accumulate_wrapper, accumulate_via_train],
                         ids=["re-export", "wrapper", "calls train.accumulate_gradients"])
def test_check_accumulation_refuses_copies(copied):
    with pytest.raises(CopiedAnswerError):
        check_grad_accumulation(copied, verbose=False)


def test_check_accumulation_messages_follow_the_notebook_language(monkeypatch):
    for kind in ("average_losses", "zero_after", "returns_nothing"):
        assert_messages_in_both_languages(
            monkeypatch, lambda k=kind: check_grad_accumulation(accumulation_variant(k), verbose=False))


# ---- tolerances from measurement: recompute the checker's own statistic over correct variants and
# typical mistakes, and assert max(correct) < tolerance < min(mistake) (run with -s to see the numbers).


def _accumulation_stat(fn, seeds=(0,)) -> float:
    worst = 0.0
    for offset in seeds:
        for i, case in enumerate(ACCUMULATION_CASES):
            row = accumulation_run(fn, i + offset, case)
            worst = max(worst, row.get("loss", math.inf), row["gradients"], row["update"])
    return worst


def test_grad_accumulation_tolerance():
    ns = notebook_definitions("08_stability", "grad_accumulation")
    correct = {"notebook": _accumulation_stat(ns["accumulate_step"], seeds=(0, 10, 20, 30))}
    correct.update({name: _accumulation_stat(fn, seeds=(0, 10, 20, 30))
                    for name, fn in CORRECT_ACCUMULATION.items()})
    mistakes = {kind: _accumulation_stat(accumulation_variant(kind)) for kind in ACCUMULATION_MISTAKES}
    _assert_between("gradient accumulation: relative error", correct, mistakes, ACCUMULATION_RTOL)
