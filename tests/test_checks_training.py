"""The checkers of notebooks 06–08 pass the notebooks' solutions and other correct answers, refuse copied
answers, let the stub's NotImplementedError through, and fail typical mistakes (in the notebook's language)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import course_lib.mup as cm
import course_lib.schedules as cs
import course_lib.stability as st
from course_lib.checks.originality import CopiedAnswerError
from course_lib.checks.training import check_grad_accumulation, check_mup, check_wsd_schedule
from tests.test_checks_precision import assert_messages_in_both_languages, notebook_answer


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---------------------------------------------------------------------------- μP


def my_mup_settings(role, fan_in, width_mult):
    """μP for Adam written from scratch."""
    if role == "embedding":
        return 1.0, 1.0, 1.0
    if role == "hidden":
        return fan_in ** -0.5, 1.0 / width_mult, 1.0
    if role == "readout":
        return math.sqrt(width_mult) / math.sqrt(fan_in), 1.0, 1.0 / width_mult
    raise ValueError(role)


def my_mup_attention(head_dim, base_head_dim):
    return base_head_dim ** 0.5 / head_dim


def mup_float32(role, fan_in, width_mult):
    """The same numbers, computed in float32 (numpy scalars)."""
    return tuple(np.float32(v) for v in my_mup_settings(role, fan_in, width_mult))


def mup_attention_float32(head_dim, base_head_dim):
    return np.float32(np.sqrt(np.float32(base_head_dim)) / np.float32(head_dim))


CORRECT_MUP = {"from scratch": (my_mup_settings, my_mup_attention),
               "float32": (mup_float32, mup_attention_float32)}


def mup_variant(kind):
    def settings(role, fan_in, width_mult):
        std, lr, out = my_mup_settings(role, fan_in, width_mult)
        if kind == "hidden_lr_unscaled" and role == "hidden":
            lr = 1.0
        if kind == "hidden_lr_inv_sqrt" and role == "hidden":
            lr = 1 / math.sqrt(width_mult)
        if kind == "no_readout_mult" and role == "readout":
            out = 1.0
        if kind == "readout_mult_inv_sqrt" and role == "readout":
            out = 1 / math.sqrt(width_mult)
        if kind == "readout_sp_init" and role == "readout":
            std = 1 / math.sqrt(fan_in)
        if kind == "embedding_lr_scaled" and role == "embedding":
            lr = 1 / width_mult
        if kind == "hidden_init_1_over_fan_in" and role == "hidden":
            std = 1 / fan_in
        if kind == "readout_lr_scaled" and role == "readout":
            lr = 1 / width_mult
        if kind == "embedding_init_inv_sqrt" and role == "embedding":
            std = 1 / math.sqrt(fan_in)
        if kind == "returns_two" and role == "readout":
            return std, lr
        if kind == "crashes" and role == "readout":
            raise KeyError(role)
        return std, lr, out

    def scale(head_dim, base_head_dim):
        if kind == "attn_sqrt":
            return 1 / math.sqrt(head_dim)
        if kind == "attn_plain_inverse":
            return 1 / head_dim
        if kind == "attn_none":
            return None
        return my_mup_attention(head_dim, base_head_dim)

    return settings, scale


MUP_MISTAKES = ["hidden_lr_unscaled", "hidden_lr_inv_sqrt", "no_readout_mult", "readout_mult_inv_sqrt",
                "readout_sp_init", "embedding_lr_scaled", "hidden_init_1_over_fan_in", "readout_lr_scaled",
                "embedding_init_inv_sqrt", "attn_sqrt", "attn_plain_inverse"]


def test_check_mup_passes_notebook_solution():
    ns = notebook_answer("06_mup", "mup")
    check_mup(ns["mup_settings"], ns["mup_attention"], verbose=False)


@pytest.mark.parametrize("name", CORRECT_MUP)
def test_check_mup_passes_correct_variants(name):
    check_mup(*CORRECT_MUP[name], verbose=False)


def test_check_mup_fails_stub():
    with pytest.raises(NotImplementedError):
        check_mup(stub, stub, verbose=False)
    with pytest.raises(NotImplementedError):
        check_mup(my_mup_settings, stub, verbose=False)


@pytest.mark.parametrize("kind", MUP_MISTAKES + ["returns_two", "crashes", "attn_none"])
def test_check_mup_fails_wrong(kind):
    settings, scale = mup_variant(kind)
    with pytest.raises(AssertionError) as err:
        check_mup(settings, scale, verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


def mup_settings_wrapper(role, fan_in, width_mult):
    return cm.mup_param_settings(role, fan_in, width_mult)


def mup_attention_wrapper(head_dim, base_head_dim):
    return cm.mup_attention_scale(head_dim, base_head_dim)


@pytest.mark.parametrize("settings, scale", [
    (cm.mup_param_settings, cm.mup_attention_scale),
    (cm.mup_param_settings, my_mup_attention),
    (mup_settings_wrapper, my_mup_attention),
    (my_mup_settings, mup_attention_wrapper),
], ids=["both re-exported", "settings re-exported", "settings wrapper", "attention wrapper"])
def test_check_mup_refuses_copies(settings, scale):
    with pytest.raises(CopiedAnswerError):
        check_mup(settings, scale, verbose=False)


def test_check_mup_messages_follow_the_notebook_language(monkeypatch):
    for kind in ("hidden_lr_unscaled", "attn_sqrt", "returns_two", "crashes"):
        assert_messages_in_both_languages(monkeypatch, lambda k=kind: check_mup(*mup_variant(k), verbose=False))


# ---------------------------------------------------------------------------- WSD


def my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """WSD written from scratch."""
    w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
    if step < w:
        return r + (1 - r) * step / max(1, w)
    if step < w + s:
        return 1.0
    if step < w + s + d:
        p = (step - w - s) / max(1, d)
        f = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(p)}[decay_shape]
        return r + (1 - r) * f
    return r


def wsd_numpy(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """Another order of operations, with numpy: warmup as a lerp, progress from the end of the decay."""
    w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
    end = w + s + d
    if step < w:
        t = step / w
        return float((1 - t) * r + t)
    if step < w + s:
        return 1.0
    if step < end:
        p = 1.0 - (end - step) / d
        f = {"linear": (end - step) / d, "cosine": 0.5 + 0.5 * np.cos(np.pi * p), "1-sqrt": 1 - p ** 0.5}[decay_shape]
        return float(r + f * (1 - r))
    return float(r)


def wsd_float32(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """The same formulas on float32 torch tensors."""
    w, s, d = warmup_steps, stable_steps, decay_steps
    r = torch.tensor(min_ratio, dtype=torch.float32)
    if step < w:
        return r + (1 - r) * torch.tensor(step / w, dtype=torch.float32)
    if step < w + s:
        return torch.tensor(1.0)
    if step < w + s + d:
        p = torch.tensor((step - w - s) / d, dtype=torch.float32)
        f = {"linear": 1 - p, "cosine": 0.5 * (1 + torch.cos(math.pi * p)), "1-sqrt": 1 - torch.sqrt(p)}[decay_shape]
        return r + (1 - r) * f
    return r


CORRECT_WSD = {"from scratch": my_wsd, "numpy, other order": wsd_numpy, "float32 tensors": wsd_float32}


def wsd_variant(kind):
    def fn(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
        w, s, d, r = warmup_steps, stable_steps, decay_steps, min_ratio
        if step < w:
            if kind == "warmup_from_zero":
                return step / max(1, w)
            if kind == "warmup_off_by_one":
                return r + (1 - r) * (step + 1) / max(1, w)
            return r + (1 - r) * step / max(1, w)
        decay_start = w + s + (1 if kind == "decay_late" else 0) - (1 if kind == "decay_early" else 0)
        if step < decay_start:
            return 1.0
        if kind == "no_clamp" or step < w + s + d:
            length = {"progress_over_d_plus_1": d + 1, "progress_over_d_minus_1": max(1, d - 1)}.get(kind, d)
            progress = (step - decay_start) / max(1, length)
            if decay_shape == "linear" or kind == "always_linear":
                f = 1 - progress
            elif decay_shape == "cosine":
                f = 0.5 * (1 + math.cos(math.pi * progress))
            else:
                f = 1 - (progress if kind == "sqrt_shape_wrong" else math.sqrt(progress))
            if kind == "decay_to_zero":
                return f
            return r + (1 - r) * f
        if kind == "end_at_zero":
            return 0.0
        return r

    return fn


WSD_MISTAKES = ["warmup_from_zero", "warmup_off_by_one", "decay_late", "decay_early", "no_clamp", "always_linear",
                "sqrt_shape_wrong", "decay_to_zero", "end_at_zero", "progress_over_d_plus_1",
                "progress_over_d_minus_1"]


def wsd_crashes_on_zero_warmup(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    if step < warmup_steps or warmup_steps == 0:
        return min_ratio + (1 - min_ratio) * step / warmup_steps  # ZeroDivisionError when warmup_steps = 0
    return my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def wsd_key_error(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    return {"linear": my_wsd}[decay_shape](step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def test_check_wsd_passes_notebook_solution():
    check_wsd_schedule(notebook_answer("07_lr_schedules", "wsd_schedule")["wsd_lr"], verbose=False)


@pytest.mark.parametrize("name", CORRECT_WSD)
def test_check_wsd_passes_correct_variants(name):
    check_wsd_schedule(CORRECT_WSD[name], verbose=False)


def test_check_wsd_fails_stub():
    with pytest.raises(NotImplementedError):
        check_wsd_schedule(stub, verbose=False)


@pytest.mark.parametrize("kind", WSD_MISTAKES)
def test_check_wsd_fails_wrong(kind):
    with pytest.raises(AssertionError):
        check_wsd_schedule(wsd_variant(kind), verbose=False)


@pytest.mark.parametrize("crash, name", [(wsd_crashes_on_zero_warmup, "ZeroDivisionError"),
                                         (wsd_key_error, "KeyError")])
def test_check_wsd_reports_any_crash_as_a_failed_check(crash, name):
    with pytest.raises(AssertionError, match=name) as err:
        check_wsd_schedule(crash, verbose=False)
    assert not isinstance(err.value, CopiedAnswerError)


def wsd_wrapper(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    return cs.wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


def wsd_uses_decay_shape(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    """Its own warmup and stable phase, but the decay from course_lib.schedules."""
    if step < warmup_steps + stable_steps:
        return my_wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)
    p = min(1.0, (step - warmup_steps - stable_steps) / decay_steps)
    return min_ratio + (1 - min_ratio) * cs.decay_shape(p, decay_shape)


@pytest.mark.parametrize("copied", [cs.wsd, wsd_wrapper, wsd_uses_decay_shape],
                         ids=["re-export", "wrapper", "calls decay_shape"])
def test_check_wsd_refuses_copies(copied):
    with pytest.raises(CopiedAnswerError):
        check_wsd_schedule(copied, verbose=False)


def test_check_wsd_messages_follow_the_notebook_language(monkeypatch):
    for wrong in (wsd_variant("decay_late"), wsd_variant("end_at_zero"), wsd_key_error):
        assert_messages_in_both_languages(monkeypatch, lambda w=wrong: check_wsd_schedule(w, verbose=False))


# ---------------------------------------------------------------------------- accumulation


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
    check_grad_accumulation(notebook_answer("08_stability", "grad_accumulation")["accumulate_step"], verbose=False)


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
    batch = torch.cat([ids for ids, _ in micro_batches])
    loss = train._accumulate_gradients(model, batch, len(micro_batches), None, None, torch.device("cpu"))
    if clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss


@pytest.mark.parametrize("copied", [st.accumulation_step, accumulate_wrapper, accumulate_via_train],
                         ids=["re-export", "wrapper", "calls train._accumulate_gradients"])
def test_check_accumulation_refuses_copies(copied):
    with pytest.raises(CopiedAnswerError):
        check_grad_accumulation(copied, verbose=False)


def test_check_accumulation_messages_follow_the_notebook_language(monkeypatch):
    for kind in ("average_losses", "zero_after", "returns_nothing"):
        assert_messages_in_both_languages(
            monkeypatch, lambda k=kind: check_grad_accumulation(accumulation_variant(k), verbose=False))
