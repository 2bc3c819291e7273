"""μP: multipliers agree with Microsoft's ``mup``; the coordinate check is flat under μP, not SP."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data import cap_vocabulary, make_batches
from course_lib.mup import (WidthScalableTransformer, coord_check, mup_attention_scale, mup_param_settings,
                            sp_param_settings)


def test_mup_equals_sp_at_base_width():
    x = torch.randint(0, 100, (2, 8))
    torch.manual_seed(0)
    a = WidthScalableTransformer(100, 32, 32, parametrization="mup")
    torch.manual_seed(0)
    b = WidthScalableTransformer(100, 32, 32, parametrization="sp")
    assert torch.equal(a(x), b(x))
    assert {g["lr"] for g in a.param_groups(1e-3)} == {1e-3}


def test_settings_table():
    assert mup_param_settings("hidden", 256, 4.0) == (1 / 16, 0.25, 1.0)
    assert mup_param_settings("readout", 256, 4.0) == pytest.approx((math.sqrt(4 / 256), 1.0, 0.25))
    assert sp_param_settings("readout", 256, 4.0) == (1 / 16, 1.0, 1.0)
    assert mup_attention_scale(64, 16) == pytest.approx(4 / 64)
    with pytest.raises(ValueError):
        mup_param_settings("bias", 4, 1.0)
    with pytest.raises(ValueError):
        WidthScalableTransformer(100, 30, 32)


@pytest.mark.parametrize("width", [64, 128])
def test_agrees_with_microsoft_mup(width):
    """Same LR per parameter as mup.MuAdam after set_base_shapes, same readout init after mup's
    rescaling, same logits through mup.MuReadout. Tolerance: LRs exact to 1e-12, weights/logits 1e-6."""
    mup = pytest.importorskip("mup")
    base_width, vocab, lr = 32, 100, 1e-2

    def sp_model(w, seed=0):
        torch.manual_seed(seed)
        m = WidthScalableTransformer(vocab, w, base_width, parametrization="sp", attention_scale_fn=mup_attention_scale)
        readout = mup.MuReadout(w, vocab, bias=False)
        with torch.no_grad():
            readout.weight.copy_(m.readout.weight)
        m.readout = readout
        return m

    target = sp_model(width)
    mup.set_base_shapes(target, sp_model(base_width), delta=sp_model(2 * base_width))  # rescales the readout
    theirs = {id(p): g["lr"] for g in mup.MuAdam(target.parameters(), lr=lr).param_groups for p in g["params"]}
    torch.manual_seed(0)
    mine = WidthScalableTransformer(vocab, width, base_width, parametrization="mup")
    my_lrs = {n: g["lr"] for g in mine.param_groups(lr) for n in g["names"]}
    for name, p in target.named_parameters():
        assert my_lrs[name] == pytest.approx(theirs[id(p)], abs=1e-12), name
    assert torch.allclose(mine.readout.weight, target.readout.weight, atol=1e-6, rtol=0)
    x = torch.randint(0, vocab, (2, 8))
    with torch.no_grad():
        assert torch.allclose(mine(x), target(x), atol=1e-6, rtol=1e-5)


def test_coordinate_check_flat_under_mup_not_sp():
    from course_lib.data import load_token_resource

    tokens = cap_vocabulary(load_token_resource().tokens[:40_000], 1024)
    batches = make_batches(tokens, 4, 8, 32)
    widths = [32, 64, 128, 256]
    ratios = {}
    for param in ("mup", "sp"):
        record = coord_check(widths, batches, parametrization=param, lr=1e-2, steps=4)
        last = torch.tensor([record[w][-1] for w in widths])  # (width, layer) after the last step
        ratios[param] = float((last.max(0).values / last.min(0).values).max())
    assert ratios["mup"] < 2.0, ratios
    assert ratios["sp"] > 4.0, ratios


def test_cap_vocabulary_and_batches():
    t = torch.tensor([5, 5, 5, 7, 7, 9, 11])
    assert cap_vocabulary(t, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]
    b = make_batches(torch.arange(100), 2, 3, 10, seed=1)
    assert len(b) == 2 and b[0].shape == (3, 10)
    assert torch.equal(b[0][:, 1] - b[0][:, 0], torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError):
        cap_vocabulary(t, 1)
