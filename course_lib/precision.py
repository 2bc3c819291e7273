"""Number formats and loss scaling (notebook 04): fp32/fp16/bf16/FP8 bit layouts, the smallest update a
stored weight still takes, dynamic loss scaling. FP8 scaling and FP8 matmuls (notebook 05) are in ``fp8``.

* Formats: IEEE 754 binary32/binary16, bfloat16 (Kalamkar et al. 2019, arXiv:1905.12322) and the two
  FP8 formats of Micikevicius et al. 2022, "FP8 Formats for Deep Learning", arXiv:2209.05433 (E4M3: no
  infinities, one NaN mantissa pattern (S.1111.111), max 448; E5M2: IEEE-like, max 57344).
* Loss scaling: Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740;
  ``DynamicLossScaler`` follows the rules of ``torch.amp.GradScaler``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format described by its bit fields."""

    name: str
    dtype: torch.dtype
    exponent_bits: int
    mantissa_bits: int
    ieee_special: bool = True  # False for E4M3 "fn": no inf, only all-ones exponent+mantissa is NaN

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self) -> float:
        """Largest finite value, from the bits: IEEE formats reserve the top exponent for inf/NaN;
        E4M3fn uses it for normal numbers except the all-ones mantissa (NaN)."""
        m = self.mantissa_bits
        if self.ieee_special:
            top = 2 ** self.exponent_bits - 2 - self.bias
            return (2 - 2.0 ** -m) * 2.0 ** top
        top = 2 ** self.exponent_bits - 1 - self.bias
        return (2 - 2.0 ** (1 - m)) * 2.0 ** top

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def eps(self) -> float:
        """Spacing between 1.0 and the next representable number."""
        return 2.0 ** -self.mantissa_bits

    @property
    def relative_error_bound(self) -> float:
        """Round-to-nearest error bound for normal numbers: half a spacing, 2^-(m+1) of |x|."""
        return 2.0 ** -(self.mantissa_bits + 1)


FORMATS: dict[str, FloatFormat] = {
    "fp32": FloatFormat("fp32", torch.float32, 8, 23),
    "fp16": FloatFormat("fp16", torch.float16, 5, 10),
    "bf16": FloatFormat("bf16", torch.bfloat16, 8, 7),
    "e4m3": FloatFormat("e4m3", torch.float8_e4m3fn, 4, 3, ieee_special=False),
    "e5m2": FloatFormat("e5m2", torch.float8_e5m2, 5, 2),
}
_BY_DTYPE = {f.dtype: f for f in FORMATS.values()}
_INT_VIEW = {32: torch.int32, 16: torch.int16, 8: torch.uint8}


def get_format(dtype_or_name) -> FloatFormat:
    """The ``FloatFormat`` of a dtype (``torch.float16``) or a name (``"bf16"``)."""
    fmt = FORMATS.get(dtype_or_name) if isinstance(dtype_or_name, str) else _BY_DTYPE.get(dtype_or_name)
    if fmt is None:
        raise ValueError(f"unknown format {dtype_or_name!r}; known: {list(FORMATS)} or their dtypes")
    return fmt


def format_table() -> list[dict]:
    """One row per format: bit fields, and max / smallest normal / eps from the bits and from torch.finfo."""
    rows = []
    for fmt in FORMATS.values():
        info = torch.finfo(fmt.dtype)
        rows.append(dict(
            name=fmt.name, bits=fmt.bits, exponent=fmt.exponent_bits, mantissa=fmt.mantissa_bits,
            max_bits=fmt.max, max_finfo=float(info.max),
            smallest_normal_bits=fmt.smallest_normal, smallest_normal_finfo=float(info.smallest_normal),
            smallest_subnormal_bits=fmt.smallest_subnormal,
            eps_bits=fmt.eps, eps_finfo=float(info.eps),
        ))
    return rows


def bit_fields(x: torch.Tensor) -> list[dict]:
    """Sign, exponent and mantissa bits of each element of ``x`` (any format in ``FORMATS``),
    read from its raw bits, and the value rebuilt from them: (-1)^s · 1.m · 2^(e - bias), or
    (-1)^s · 0.m · 2^(1 - bias) for subnormals (exponent field 0)."""
    fmt = get_format(x.dtype)
    raw = x.detach().reshape(-1).cpu().view(_INT_VIEW[fmt.bits]).to(torch.int64) & ((1 << fmt.bits) - 1)
    out = []
    for r in raw.tolist():
        sign = r >> (fmt.bits - 1)
        exponent = (r >> fmt.mantissa_bits) & ((1 << fmt.exponent_bits) - 1)
        mantissa = r & ((1 << fmt.mantissa_bits) - 1)
        frac = mantissa / 2 ** fmt.mantissa_bits
        all_ones = (1 << fmt.exponent_bits) - 1
        if fmt.ieee_special and exponent == all_ones:
            value = float("nan") if mantissa else (-1) ** sign * math.inf
        elif not fmt.ieee_special and exponent == all_ones and mantissa == (1 << fmt.mantissa_bits) - 1:
            value = float("nan")
        elif exponent == 0:
            value = (-1) ** sign * frac * 2.0 ** (1 - fmt.bias)
        else:
            value = (-1) ** sign * (1 + frac) * 2.0 ** (exponent - fmt.bias)
        bits = format(r, f"0{fmt.bits}b")
        out.append(dict(bits=f"{bits[0]} {bits[1:1 + fmt.exponent_bits]} {bits[1 + fmt.exponent_bits:]}",
                        sign=sign, exponent=exponent, mantissa=mantissa, value=value))
    return out


def representable_values(dtype: torch.dtype, lo: float, hi: float, max_count: int = 100_000) -> torch.Tensor:
    """Every finite value of ``dtype`` in [lo, hi] (0 ≤ lo < hi), in increasing order, as float64.

    For 8- and 16-bit formats all bit patterns are enumerated; for fp32 the grid is walked with
    ``torch.nextafter`` (at most ``max_count`` values)."""
    if not 0 <= lo < hi:
        raise ValueError(f"need 0 <= lo < hi, got lo={lo}, hi={hi}")
    fmt = get_format(dtype)
    if fmt.bits <= 16:
        patterns = torch.arange(0, 2 ** (fmt.bits - 1), dtype=torch.int64)  # the non-negative half
        view = _INT_VIEW[fmt.bits]
        if view == torch.int16:
            values = patterns.to(torch.int16).view(dtype).double()
        else:
            values = patterns.to(torch.uint8).view(dtype).double()
        values = values[torch.isfinite(values)]
        return values[(values >= lo) & (values <= hi)]
    start = torch.tensor(lo, dtype=dtype)
    if float(start) < lo:
        start = torch.nextafter(start, torch.tensor(math.inf, dtype=dtype))
    vals, cur, inf = [], start, torch.tensor(math.inf, dtype=dtype)
    while float(cur) <= hi:
        vals.append(float(cur))
        if len(vals) >= max_count:
            raise ValueError(f"more than {max_count} fp32 values in [{lo}, {hi}]; narrow the interval")
        cur = torch.nextafter(cur, inf)
    return torch.tensor(vals, dtype=torch.float64)


def lost_update_thresholds(value: float, dtype: torch.dtype) -> tuple[float, float]:
    """(down, up): the smallest downward and upward update that moves a weight stored as ``value`` in
    ``dtype``; anything smaller rounds back to ``value`` (round to nearest: half the gap to the
    neighbouring representable number). At a power of two the gap below is half the gap above."""
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"dtype must be a floating-point torch dtype with nextafter (float16, bfloat16, float32, "
                         f"float64), got {dtype!r}")
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {value}")
    x = torch.tensor(value, dtype=dtype)
    below = torch.nextafter(x, torch.tensor(-math.inf, dtype=dtype))
    above = torch.nextafter(x, torch.tensor(math.inf, dtype=dtype))
    return (float(x) - float(below)) / 2, (float(above) - float(x)) / 2


class DynamicLossScaler:
    """Dynamic loss scaling with the rules of ``torch.amp.GradScaler`` (Micikevicius et al. 2018).

    ``scale_loss(loss)`` multiplies the loss by ``scale`` before backward. ``step(optimizer)``:
    divides every gradient by ``scale``; if any is inf/NaN the optimizer step is skipped, the scale
    is multiplied by ``backoff_factor`` and the good-step counter resets; otherwise the optimizer
    steps and, after ``growth_interval`` good steps in a row, the scale is multiplied by
    ``growth_factor`` (only if the result is finite) and the counter resets. Returns whether it stepped.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        if not growth_factor > 1:
            raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
        if int(growth_interval) != growth_interval or growth_interval < 1:
            raise ValueError(f"growth_interval must be a positive integer, got {growth_interval}")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.growth_tracker = 0

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale

    def unscale_(self, optimizer) -> bool:
        """Divide the gradients by the scale in place; return True if any gradient is inf or NaN."""
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(self.scale)
                    found_inf = found_inf or not bool(torch.isfinite(p.grad).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            grown = self.scale * self.growth_factor
            if math.isfinite(grown):
                self.scale = grown
            self.growth_tracker = 0

    def step(self, optimizer) -> bool:
        found_inf = self.unscale_(optimizer)
        if not found_inf:
            optimizer.step()
        self.update(found_inf)
        return not found_inf


def underflow_fraction(values: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> dict:
    """What casting ``values * scale`` to ``dtype`` does to the nonzero entries: the fraction that
    becomes 0 (underflow), that lands among the subnormals (fewer significant bits), and that
    becomes inf (overflow)."""
    v = values.detach().float().reshape(-1)
    v = v[v != 0]
    if v.numel() == 0:
        raise ValueError("no nonzero values to measure")
    cast = (v.double() * scale).to(dtype).double()
    tiny = torch.finfo(dtype).smallest_normal
    n = v.numel()
    return dict(
        zero=float((cast == 0).sum()) / n,
        subnormal=float(((cast != 0) & (cast.abs() < tiny)).sum()) / n,
        overflow=float(torch.isinf(cast).sum()) / n,
    )


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BF16_TENSOR_CORES, FP16_TENSOR_CORES = (8, 0), (7, 0)  # the first NVIDIA GPUs with them: A100, V100


def autocast_dtype_for(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of a training run on ``device`` (None: fp32). ``auto``: bf16 on CUDA GPUs with bf16
    tensor cores (compute capability 8.0+: A100, L4, H100); fp16 on 7.x (T4, V100), which emulates bf16 in
    fp32, slowly (``torch.cuda.is_bf16_supported()`` counts that emulation by default); fp32 elsewhere.
    fp16's narrow range needs loss scaling (``grad_scaler_for``; notebook 04)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    if torch.device(device).type != "cuda":
        return None
    capability = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if capability >= BF16_TENSOR_CORES else torch.float16 if capability >= FP16_TENSOR_CORES \
        else None


def has_bf16_tensor_cores(device: torch.device) -> bool:
    """True on CUDA GPUs of compute capability 8.0 or higher (A100, L4, H100, ...), False elsewhere."""
    return torch.device(device).type == "cuda" and torch.cuda.get_device_capability(device) >= BF16_TENSOR_CORES


def grad_scaler_for(device: torch.device, autocast_dtype: torch.dtype | None):
    """A ``torch.amp.GradScaler`` when ``autocast_dtype`` is fp16 (its small range needs loss scaling), else None."""
    return torch.amp.GradScaler(torch.device(device).type) if autocast_dtype == torch.float16 else None
