"""course_lib.precision against torch: the formats' bit fields and grids, the bf16 rounding thresholds,
gradient underflow, and the dynamic loss scaler against torch.amp.GradScaler. (FP8 quantization and
FP8Linear: test_fp8.py.)"""

from __future__ import annotations

import pytest
import torch

from classroom.checks.loss_scaler import SCALER_CASES, grad_scaler_trace, scaler_trace
from course_lib.precision import (FORMATS, DynamicLossScaler, bit_fields, format_table, lost_update_thresholds,
                                  representable_values, underflow_fraction)

E4M3 = torch.float8_e4m3fn


def test_format_table_matches_finfo():
    for row in format_table():
        assert row["max_bits"] == row["max_finfo"], row
        assert row["smallest_normal_bits"] == row["smallest_normal_finfo"], row
        assert row["eps_bits"] == row["eps_finfo"], row


@pytest.mark.parametrize("name", list(FORMATS))
def test_bit_fields_rebuild_the_value(name):
    dtype = FORMATS[name].dtype
    values = torch.tensor([1.0, -2.5, 0.3, 3e-3, 100.0]).to(dtype)
    for v, fields in zip(values.tolist(), bit_fields(values)):
        assert fields["value"] == v, (name, v, fields)


def test_representable_values_spacing():
    # just above 1.0 the spacing is eps; fp16 and bf16 grids enumerate every bit pattern
    for name in ("fp16", "bf16", "e4m3", "e5m2"):
        grid = representable_values(FORMATS[name].dtype, 1.0, 2.0)
        assert torch.allclose(grid.diff(), torch.full_like(grid.diff(), FORMATS[name].eps)), name
    grid = representable_values(torch.float32, 1.0, 1.0 + 1e-6)
    assert torch.allclose(grid.diff(), torch.full_like(grid.diff(), 2.0 ** -23))
    assert representable_values(E4M3, 0, 1000).max() == 448.0


@pytest.mark.parametrize("case", SCALER_CASES, ids=range(len(SCALER_CASES)))
def test_dynamic_loss_scaler_matches_grad_scaler(case):
    ref = grad_scaler_trace(case)
    ref_scales, ref_stepped, ref_params = ref["scales"], ref["stepped"], ref["params"]
    init, growth, backoff, interval = case[:4]
    trace = scaler_trace(
        lambda *a: DynamicLossScaler(*a), lambda s, l: s.scale_loss(l), lambda s, o: s.step(o), lambda s: s.scale, case)
    scales, stepped, params = trace["scales"], trace["stepped"], trace["params"]
    assert scales == ref_scales and stepped == ref_stepped
    assert not all(stepped) and len(set(scales)) > 2  # the run really overflows, backs off and grows
    torch.testing.assert_close(torch.stack(params), torch.stack(ref_params))


def test_loss_scaler_validation():
    for bad in (dict(init_scale=0), dict(growth_factor=1.0), dict(backoff_factor=1.5), dict(growth_interval=0)):
        with pytest.raises(ValueError):
            DynamicLossScaler(**bad)


def test_underflow_fraction_and_scaling():
    g = torch.tensor([1e-9, 1e-7, 1e-5, 1e-3, 1e5])
    plain = underflow_fraction(g, torch.float16)
    assert plain["zero"] == 0.2 and plain["overflow"] == 0.2
    scaled = underflow_fraction(g, torch.float16, scale=2.0 ** 10)
    assert scaled["zero"] == 0.0
    assert underflow_fraction(g, torch.bfloat16)["zero"] == 0.0


def test_bf16_update_thresholds_at_one():
    # 04: at 1.0 a step down is lost below 2^-9, a step up below 2^-8; lr 2e-3 passes downwards only
    down, up = lost_update_thresholds(1.0, torch.bfloat16)
    assert (down, up) == (2.0 ** -9, 2.0 ** -8)
    w = torch.tensor(1.0, dtype=torch.bfloat16)
    assert (w - 2e-3).item() < 1.0 and (w + 2e-3).item() == 1.0 and (w - 1e-3).item() == 1.0
