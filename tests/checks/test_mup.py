"""check_mup passes the notebook's solution and other correct answers, refuses copied answers, lets the
stub's NotImplementedError through, and fails typical mistakes (in the notebook's language); its tolerance
lies between the correct variants and the mistakes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import course_lib.mup as cm
from classroom.checks.mup import MUP_RTOL, check_mup, mup_errors, mup_model_errors
from classroom.checks.originality import CopiedAnswerError

from ._helpers import _assert_between, assert_messages_in_both_languages, notebook_definitions, stub


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
    ns = notebook_definitions("06_mup", "mup")
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


# ---- tolerances from measurement: recompute the checker's own statistic over correct variants and
# typical mistakes, and assert max(correct) < tolerance < min(mistake) (run with -s to see the numbers).


def _mup_stat(settings, scale, model=True) -> float:
    errors = mup_errors(settings, scale)
    values = [e for e, _ in errors["settings"].values()] + [e for e, _ in errors["attention"].values()]
    if model:
        values += [max(r["logits_error"], r["lrs_error"]) for r in mup_model_errors(settings, scale)]
    return max(values)


def test_mup_tolerance():
    ns = notebook_definitions("06_mup", "mup")
    correct = {"notebook": _mup_stat(ns["mup_settings"], ns["mup_attention"])}
    correct.update({name: _mup_stat(*fns) for name, fns in CORRECT_MUP.items()})
    mistakes = {kind: _mup_stat(*mup_variant(kind), model=False) for kind in MUP_MISTAKES}
    _assert_between("μP: relative error", correct, mistakes, MUP_RTOL)
