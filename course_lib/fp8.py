"""FP8 training, simulated (notebook 05): scaling granularities, quantize/dequantize, FP8 matmuls, an FP8 linear.

* Formats: E4M3 (max 448, no infinities) for weights and activations, E5M2 (max 57344) for gradients
  (Micikevicius et al. 2022, "FP8 Formats for Deep Learning", arXiv:2209.05433); their bit layouts are
  in ``precision.FORMATS``.
* Scaling granularities: per-tensor, row-wise, and block-wise as in DeepSeek-V3 (DeepSeek-AI 2024,
  arXiv:2412.19437, §3.3: 1×128 tiles for activations, 128×128 blocks for weights). DeepSeek-V3 itself uses
  E4M3 for every tensor (§3.3.2); the course keeps Micikevicius et al.'s E4M3/E5M2 split.
* ``scaled_mm`` runs ``torch._scaled_mm`` (an FP8 GEMM with fp32 accumulation) where the hardware has
  one; ``FP8LinearFunction`` and ``FP8Linear`` simulate FP8 matmuls on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
AMAX_EPS = 1e-12  # an all-zero block gets this amax, so its scale is tiny but not zero (no 0/0)


def fp8_max(dtype: torch.dtype) -> float:
    """Largest finite value of an FP8 dtype: 448 for E4M3, 57344 for E5M2."""
    if dtype not in FP8_DTYPES:
        raise ValueError(f"expected torch.float8_e4m3fn or torch.float8_e5m2, got {dtype}")
    return float(torch.finfo(dtype).max)


def cast_saturating(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Clamp to ±max of ``dtype`` and cast: no NaN/inf for out-of-range values, whatever the cast does."""
    m = fp8_max(dtype)
    return x.clamp(-m, m).to(dtype)


def quantize_per_tensor(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn):
    """One scale for the whole tensor: scale = amax / fp8_max, q = cast(x / scale). Returns (q, scale)."""
    amax = x.detach().abs().amax().float().clamp(min=AMAX_EPS)
    scale = amax / fp8_max(dtype)
    return cast_saturating(x.float() / scale, dtype), scale


def quantize_rowwise(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn):
    """One scale per row of a 2-D tensor. Returns (q, scales of shape (rows, 1))."""
    if x.ndim != 2:
        raise ValueError(f"quantize_rowwise needs a 2-D tensor, got shape {tuple(x.shape)}")
    amax = x.detach().abs().amax(dim=1, keepdim=True).float().clamp(min=AMAX_EPS)
    scale = amax / fp8_max(dtype)
    return cast_saturating(x.float() / scale, dtype), scale


def _check_block(x: torch.Tensor, block) -> tuple[int, int]:
    if x.ndim != 2:
        raise ValueError(f"block-wise quantization needs a 2-D tensor, got shape {tuple(x.shape)}")
    if len(block) != 2 or any(int(b) != b or b < 1 for b in block):
        raise ValueError(f"block must be two positive integers (rows, cols), got {block!r}")
    return int(block[0]), int(block[1])


def expand_block_scales(scales: torch.Tensor, shape, block) -> torch.Tensor:
    """Repeat each block's scale over its block and crop to ``shape`` (partial edge blocks allowed)."""
    br, bc = block
    return scales.repeat_interleave(br, dim=0).repeat_interleave(bc, dim=1)[: shape[0], : shape[1]]


def quantize_blockwise(x: torch.Tensor, block=(128, 128), dtype: torch.dtype = torch.float8_e4m3fn):
    """Block-wise scaling (DeepSeek-V3): one fp32 scale per ``block`` = (rows, cols) tile of a 2-D tensor.

    Returns ``(q, scales)``: ``q`` has the shape of ``x`` and dtype ``dtype``; ``scales`` has shape
    (ceil(R / rows), ceil(C / cols)) with scale = max(amax of the block, 1e-12) / fp8_max. Edge
    blocks may be partial (same result as zero padding). ``block=(1, 128)`` gives activation tiles,
    ``(128, 128)`` weight blocks. Inverse: ``dequantize_blockwise``.
    """
    br, bc = _check_block(x, block)
    rows, cols = x.shape
    nr, nc = -(-rows // br), -(-cols // bc)
    padded = F.pad(x.detach().float().abs(), (0, nc * bc - cols, 0, nr * br - rows))
    amax = padded.view(nr, br, nc, bc).amax(dim=(1, 3)).clamp(min=AMAX_EPS)
    scales = amax / fp8_max(dtype)
    q = cast_saturating(x.float() / expand_block_scales(scales, x.shape, (br, bc)), dtype)
    return q, scales


def dequantize_blockwise(q: torch.Tensor, scales: torch.Tensor, block=(128, 128)) -> torch.Tensor:
    """fp32 values of a block-wise quantized tensor: q · scale of its block."""
    br, bc = _check_block(q, block)
    expected = (-(-q.shape[0] // br), -(-q.shape[1] // bc))
    if tuple(scales.shape) != expected:
        raise ValueError(f"scales has shape {tuple(scales.shape)}, expected {expected} for q {tuple(q.shape)} "
                         f"and block {block}")
    return q.float() * expand_block_scales(scales, q.shape, (br, bc))


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """fp32 values of a per-tensor or row-wise quantized tensor (scale broadcasts)."""
    return q.float() * scale


def fake_quantize(x: torch.Tensor, granularity: str = "tensor", dtype=torch.float8_e4m3fn, block=(128, 128)):
    """quantize → dequantize in one call (what an FP8 matmul with fp32 accumulation sees)."""
    if granularity == "tensor":
        return dequantize(*quantize_per_tensor(x, dtype))
    if granularity == "row":
        return dequantize(*quantize_rowwise(x, dtype))
    if granularity == "block":
        q, s = quantize_blockwise(x, block, dtype)
        return dequantize_blockwise(q, s, block)
    raise ValueError(f"granularity must be 'tensor', 'row' or 'block', got {granularity!r}")


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """‖approx − exact‖ / ‖exact‖ (Frobenius)."""
    exact = exact.detach().double()
    return float((approx.detach().double() - exact).norm() / exact.norm().clamp(min=1e-300))


def scaled_mm_available(device="cpu", rowwise: bool = False, out_dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``torch._scaled_mm`` runs an E4M3 × E4M3 product on ``device``, with per-tensor or (``rowwise``)
    per-row scales, writing ``out_dtype``: it makes the call and checks the result. This varies: older torch
    took only per-tensor scales on a CPU; CUDA needs compute capability 8.9+ (L4, H100), where row-wise
    scales need a bf16 output unless sm 9.0+ with a recent cuBLAS. What fails here, the caller emulates."""
    try:
        a = torch.ones(16, 16, device=device).to(torch.float8_e4m3fn)
        if rowwise:
            scale_a, scale_b = torch.ones(16, 1, device=device), torch.ones(1, 16, device=device)
        else:
            scale_a = scale_b = torch.ones((), device=device)
        out = torch._scaled_mm(a, a.t(), scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype)
        return bool((out.float() == 16).all())
    except (RuntimeError, NotImplementedError, AttributeError, TypeError):
        return False


def scaled_mm(qa: torch.Tensor, qb: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
              out_dtype=torch.float32, emulate: bool = False) -> torch.Tensor:
    """(qa · scale_a) @ (qb · scale_b)ᵀ for FP8 ``qa`` (M, K), ``qb`` (N, K).

    Scales are per-tensor (scalars) or row-wise (``scale_a`` (M, 1), ``scale_b`` (N, 1)). Uses
    ``torch._scaled_mm`` (an FP8 GEMM with fp32 accumulation) unless ``emulate`` is True, in which
    case it dequantizes and multiplies in fp32 — the same numbers up to summation order.
    """
    if qa.ndim != 2 or qb.ndim != 2 or qa.shape[1] != qb.shape[1]:
        raise ValueError(f"need qa (M, K) and qb (N, K), got {tuple(qa.shape)} and {tuple(qb.shape)}")
    sa, sb = scale_a.float(), scale_b.float()
    if emulate:
        return ((qa.float() * sa) @ (qb.float() * sb).t()).to(out_dtype)
    if sb.ndim == 2:
        sb = sb.t().contiguous()  # _scaled_mm wants the second operand's row-wise scales as (1, N)
    return torch._scaled_mm(qa, qb.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype)


class FP8LinearFunction(torch.autograd.Function):
    """y = x Wᵀ with FP8 operands, simulated: every GEMM input is quantized then dequantized.

    Forward: x and W in E4M3 (DeepSeek-V3 scaling: x in 1×128 tiles, W in 128×128 blocks, or one
    scale per tensor). Backward: the output gradient in E5M2 (1×128 tiles or per tensor), then
    dx = g W_q and dW = gᵀ x_q, accumulated in fp32. Scales are recomputed from the current
    values at every call (no history). An FP8 GEMM with fp32 accumulation gives the same numbers up
    to summation order; the speed, of course, only comes with FP8 hardware.
    """

    @staticmethod
    def forward(ctx, x, weight, granularity: str = "block"):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if granularity == "block":
            xq = fake_quantize(x2, "block", torch.float8_e4m3fn, (1, 128))
            wq = fake_quantize(weight, "block", torch.float8_e4m3fn, (128, 128))
        elif granularity == "tensor":
            xq = fake_quantize(x2, "tensor", torch.float8_e4m3fn)
            wq = fake_quantize(weight, "tensor", torch.float8_e4m3fn)
        else:
            raise ValueError(f"granularity must be 'block' or 'tensor', got {granularity!r}")
        ctx.save_for_backward(xq, wq)
        ctx.granularity, ctx.shape, ctx.dtype = granularity, shape, x.dtype
        return (xq @ wq.t()).to(x.dtype).reshape(*shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        xq, wq = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.shape[-1]).float()
        if ctx.granularity == "block":
            gq = fake_quantize(g, "block", torch.float8_e5m2, (1, 128))
        else:
            gq = fake_quantize(g, "tensor", torch.float8_e5m2)
        grad_x = (gq @ wq).to(ctx.dtype).reshape(ctx.shape)
        grad_w = gq.t() @ xq
        return grad_x, grad_w.to(wq.dtype), None


class FP8Linear(nn.Linear):
    """``nn.Linear`` (no bias) whose matmuls go through ``FP8LinearFunction``; weights stay fp32 (master)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, granularity: str = "block",
                 device=None, dtype=None):
        if bias:
            raise ValueError("FP8Linear supports bias=False only (the course's model has no biases)")
        super().__init__(in_features, out_features, bias=False, device=device, dtype=dtype)
        if granularity not in ("block", "tensor"):
            raise ValueError(f"granularity must be 'block' or 'tensor', got {granularity!r}")
        self.granularity = granularity

    @classmethod
    def from_linear(cls, linear: nn.Linear, granularity: str = "block") -> FP8Linear:
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                  granularity=granularity, device=linear.weight.device, dtype=linear.weight.dtype)
        new.weight = linear.weight  # share the parameter: the optimizer and the state dict see the same tensor
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FP8LinearFunction.apply(x, self.weight, self.granularity)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, granularity={self.granularity}"


def swap_linears_to_fp8(model: nn.Module, skip=("lm_head",), granularity: str = "block") -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` (except names containing a ``skip`` entry) by an
    ``FP8Linear`` sharing its weight, in place. Returns the replaced module names. DeepSeek-V3 also
    keeps the embedding, output head, norms and attention softmax in higher precision."""
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Linear and not any(s in full for s in skip):
                setattr(module, child_name, FP8Linear.from_linear(child, granularity))
                replaced.append(full)
    return replaced
