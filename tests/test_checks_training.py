"""The checkers of notebooks 06–08 pass the reference solution and fail the stub and typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.checks.training import check_grad_accumulation, check_mup, check_wsd_schedule
from course_lib.mup import mup_attention_scale, mup_param_settings
from course_lib.schedules import wsd
from course_lib.stability import accumulation_step, count_target_tokens


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---------------------------------------------------------------------------- μP


def mup_variant(kind):
    def settings(role, fan_in, width_mult):
        std, lr, out = mup_param_settings(role, fan_in, width_mult)
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
        return std, lr, out

    def scale(head_dim, base_head_dim):
        if kind == "attn_sqrt":
            return 1 / math.sqrt(head_dim)
        if kind == "attn_plain_inverse":
            return 1 / head_dim
        return mup_attention_scale(head_dim, base_head_dim)

    return settings, scale


def test_check_mup_passes_reference():
    check_mup(mup_param_settings, mup_attention_scale, verbose=False)


def test_check_mup_fails_stub():
    with pytest.raises(NotImplementedError):
        check_mup(stub, stub, verbose=False)


@pytest.mark.parametrize("kind", ["hidden_lr_unscaled", "hidden_lr_inv_sqrt", "no_readout_mult",
                                  "readout_mult_inv_sqrt", "readout_sp_init", "embedding_lr_scaled",
                                  "hidden_init_1_over_fan_in", "readout_lr_scaled", "attn_sqrt",
                                  "attn_plain_inverse"])
def test_check_mup_fails_wrong(kind):
    settings, scale = mup_variant(kind)
    with pytest.raises(AssertionError):
        check_mup(settings, scale, verbose=False)


# ---------------------------------------------------------------------------- WSD


def wsd_reference(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape):
    return wsd(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)


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
            progress = (step - decay_start) / max(1, d)
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


def test_check_wsd_passes_reference():
    check_wsd_schedule(wsd_reference, verbose=False)


def test_check_wsd_fails_stub():
    with pytest.raises((NotImplementedError, AssertionError)):
        check_wsd_schedule(stub, verbose=False)


@pytest.mark.parametrize("kind", ["warmup_from_zero", "warmup_off_by_one", "decay_late", "decay_early", "no_clamp",
                                  "always_linear", "sqrt_shape_wrong", "decay_to_zero", "end_at_zero"])
def test_check_wsd_fails_wrong(kind):
    with pytest.raises(AssertionError):
        check_wsd_schedule(wsd_variant(kind), verbose=False)


# ---------------------------------------------------------------------------- accumulation


def accumulation_variant(kind):
    def fn(model, optimizer, micro_batches, clip_norm):
        k = len(micro_batches)
        counts = [count_target_tokens(lab) for _, lab in micro_batches]
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
        return sum(v * n for v, n in losses) / sum(n for _, n in losses)

    return fn


def test_check_accumulation_passes_reference():
    check_grad_accumulation(accumulation_step, verbose=False)


def test_check_accumulation_fails_stub():
    with pytest.raises(NotImplementedError):
        check_grad_accumulation(stub, verbose=False)


@pytest.mark.parametrize("kind", ["no_divide", "zero_between", "step_each", "average_losses", "clip_each", "no_clip",
                                  "no_zero_grad", "count_unshifted", "zero_after", "last_loss"])
def test_check_accumulation_fails_wrong(kind):
    with pytest.raises(AssertionError):
        check_grad_accumulation(accumulation_variant(kind), verbose=False)
