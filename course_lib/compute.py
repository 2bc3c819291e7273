"""Compute and memory accounting: FLOPs per token, MFU, GPU peak FLOP/s, training memory per parameter.

* FLOPs: ``transformer_flops_per_token`` (6·N + 12·L·T·d_attn per token, PaLM, Chowdhery et al. 2022,
  arXiv:2204.02311, App. B), ``measure_matmul_flops`` (a measured "peak" where none is published) and
  ``mfu`` (model FLOPs utilization, PaLM App. B). Notebooks 08 and 10, the capstone's throughput.
* Peaks: ``PEAK_BF16_FLOPS`` (vendors' data sheets), ``peak_flops``, ``device_peak_flops``. Notebook 10
  and the capstone.
* Memory: ``training_memory_budget`` from shapes alone and ``measured_training_bytes`` from real
  tensors, so the two can be compared byte for byte (notebook 04); ``optimizer_state_bytes`` of a live
  optimizer (notebooks 01 and 03); ``memory_report`` of one capstone run.

  - bf16 mixed-precision Adam(W): 2 bytes of 16-bit weights + 2 bytes of 16-bit gradients + 12 bytes
    of optimizer state (an fp32 master copy, the first and the second moment) = 16 bytes per parameter
    (Rajbhandari et al. 2020, "ZeRO", arXiv:1910.02054, §3.1).
  - Adafactor stores the second moment of a matrix as one row vector and one column vector (Shazeer &
    Stern 2018, arXiv:1804.04235); Lion (Chen et al. 2023) and Muon keep one momentum buffer.
"""

from __future__ import annotations

import math
import sys
import time

import torch

from .i18n import tr

# ---------------------------------------------------------------------------- FLOPs and MFU


def transformer_flops_per_token(config, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token of a course transformer (forward + backward = 3 × forward).

    ``6 · N`` for the matmuls with the weights, N = every parameter except the input embedding (a
    lookup, not a matmul; the LM head counts), plus ``12 · L · seq_len · d_attn`` for the two
    attention matmuls QKᵀ and PV (PaLM, Chowdhery et al. 2022, App. B; counted for the full square
    although half is masked)."""
    d, h, i, v, n_layers = (config.hidden_size, config.head_dim, config.intermediate_size, config.vocab_size,
                            config.num_hidden_layers)
    attn = d * h * (config.num_attention_heads * 2 + config.num_key_value_heads * 2)
    mlp = 3 * d * i
    n_matmul = n_layers * (attn + mlp) + d * v
    attention = 12 * n_layers * seq_len * config.num_attention_heads * h
    return {"params_matmul": n_matmul, "dense": 6.0 * n_matmul, "attention": float(attention),
            "total": 6.0 * n_matmul + attention}


def measure_matmul_flops(n: int = 1024, repeats: int = 5, dtype=torch.float32, device="cpu") -> float:
    """Achieved FLOP/s of an ``n × n`` matmul (2n³ FLOPs), best of ``repeats``: on a CPU without a
    published peak, this is the practical "peak" that MFU is measured against."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # warm up
    best = math.inf
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilization (PaLM, App. B): achieved model FLOP/s divided by the device's peak FLOP/s."""
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be > 0, got {peak_flops}")
    return tokens_per_s * flops_per_token / peak_flops


# ---------------------------------------------------------------------------- GPU peaks

# Peak dense (no 2:4 sparsity) tensor-core FLOP/s in bf16, from the vendors' data sheets. Matched in
# order against torch.cuda.get_device_name(). The T4 (Turing) has no bf16 tensor cores: its figure is
# the fp16 peak, and bf16 runs there far below it.
PEAK_BF16_FLOPS = (
    ("H200", 989e12, "H200 SXM, bf16 dense"),
    ("H100 PCIe", 756e12, "H100 PCIe, bf16 dense"),
    ("H100 NVL", 835e12, "H100 NVL, bf16 dense"),
    ("H100", 989e12, "H100 SXM, bf16 dense"),
    ("A100", 312e12, "A100, bf16 dense"),
    ("L4", 121e12, "L4, bf16 dense"),
    ("T4", 65e12, "T4, fp16 dense (no bf16 tensor cores)"),
)


def peak_flops(device_name: str) -> tuple[float | None, str]:
    """(peak FLOP/s, description) for a GPU name; (None, "peak unknown ...") if it is not in the table."""
    for key, flops, label in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops, label
    return None, tr(f"peak unknown for {device_name!r}: MFU not reported",
                    f"{device_name!r}의 최대 성능을 몰라 MFU를 보고하지 않습니다")


def device_peak_flops(device: torch.device) -> tuple[float | None, str]:
    """``peak_flops`` of a CUDA device; (None, "peak unknown ...") for any other device."""
    if device.type != "cuda":
        return None, tr(f"peak unknown for {device.type}: MFU not reported",
                        f"{device.type}의 최대 성능을 몰라 MFU를 보고하지 않습니다")
    return peak_flops(torch.cuda.get_device_name(device))


# ---------------------------------------------------------------------------- memory per parameter

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Scalar step counters each implementation keeps per parameter tensor (a 0-d fp32 tensor in torch).
STEP_COUNTERS = {"torch_adamw": 1, "adamw": 0, "adafactor": 1, "lion": 0, "muon": 0}
OPTIMIZERS = tuple(STEP_COUNTERS)


def _check_dtype(name: str, value) -> int:
    if value not in DTYPE_BYTES:
        raise ValueError(f"{name}={value!r}: choose one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[value]


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    if not shape or any(not isinstance(n, int) or n < 1 for n in shape):
        raise ValueError(f"shape {shape!r}: give the positive integer sizes of a tensor with at least one dimension")
    return shape


def optimizer_state_numel(optimizer: str, shape) -> int:
    """Entries of optimizer state (step counters excluded) kept for one parameter tensor of ``shape``.

    AdamW: two moments. Lion, Muon: one momentum buffer. Adafactor (torch.optim.Adafactor, no first
    moment): for a tensor with two or more dimensions, the second moment factored into its row and
    column means over the last two dimensions; for a vector, the full second moment.
    """
    shape = _check_shape(shape)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    numel = math.prod(shape)
    if optimizer in ("torch_adamw", "adamw"):
        return 2 * numel
    if optimizer in ("lion", "muon"):
        return numel
    if len(shape) < 2:
        return numel
    rows, cols, batch = shape[-2], shape[-1], math.prod(shape[:-2])
    return batch * (rows + cols)


def training_memory_budget(tensors, weight_dtype: str = "fp32", grad_dtype: str | None = None,
                           master_dtype: str | None = None, state_dtype: str = "fp32") -> dict:
    """Bytes held between steps for a model whose tensors are ``[(shape, optimizer), ...]``.

    ``weight_dtype``/``grad_dtype``: the model's weights and gradients (gradients default to the
    weights' dtype); ``master_dtype``: a separate copy the optimizer updates (None: no copy);
    ``state_dtype``: the optimizer's state tensors. Returns the bytes of each part, their total, the
    parameter count and the bytes per parameter.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("tensors is empty: give a list of (shape, optimizer) pairs, one per parameter tensor")
    w = _check_dtype("weight_dtype", weight_dtype)
    g = _check_dtype("grad_dtype", weight_dtype if grad_dtype is None else grad_dtype)
    m = 0 if master_dtype is None else _check_dtype("master_dtype", master_dtype)
    s = _check_dtype("state_dtype", state_dtype)
    n_params = sum(math.prod(_check_shape(shape)) for shape, _ in tensors)
    state = sum(optimizer_state_numel(opt, shape) for shape, opt in tensors) * s
    steps = sum(STEP_COUNTERS[opt] for _, opt in tensors) * 4
    parts = {"weights": n_params * w, "gradients": n_params * g, "master weights": n_params * m,
             "optimizer state": state, "step counters": steps}
    total = sum(parts.values())
    return {**parts, "total": total, "parameters": n_params, "bytes per parameter": total / n_params}


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def measured_training_bytes(params, optimizers, master_params=()) -> dict:
    """Bytes actually held by ``params`` (weights and their ``.grad``), ``master_params`` and the
    state tensors of ``optimizers`` (0-d tensors counted apart as step counters). Call it after a
    real optimizer step, when the state exists."""
    params, master_params = list(params), list(master_params)
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = [optimizers]
    if not params or not all(isinstance(p, torch.Tensor) for p in params + master_params):
        raise ValueError("params must be a non-empty list of tensors (e.g. list(model.parameters()))")
    states = [v for opt in optimizers for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    if not states:
        raise ValueError("the optimizers hold no state yet: run one optimizer.step() before measuring")
    parts = {"weights": _tensor_bytes(params), "gradients": _tensor_bytes(p.grad for p in params),
             "master weights": _tensor_bytes(master_params),
             "optimizer state": _tensor_bytes(v for v in states if v.dim() > 0),
             "step counters": _tensor_bytes(v for v in states if v.dim() == 0)}
    return {**parts, "total": sum(parts.values())}


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state tensors, counted from ``state_dict()``."""
    total = 0
    for state in optimizer.state_dict()["state"].values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def memory_report(model, optimizer, device) -> dict:
    """What a run held in memory. ``state_mb``: weights + gradients + optimizer state, counted
    exactly from the tensors (where AdamW's two moments and Muon's one show). ``peak_mb``: on CUDA the
    peak allocated during the run; on a CPU the peak resident size of the whole process so far
    (the operating system keeps no per-run peak), None where the platform does not report it."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    state = 2 * weights + optimizer_state_bytes(optimizer)
    peak, peak_kind = None, "not reported on this platform"
    device = torch.device(device)
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA peak allocated in this run"
    else:
        try:
            import resource

            scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
            peak_kind = "peak resident size of the process so far"
        except ImportError:  # Windows
            pass
    return {"state_mb": state / 2**20, "peak_mb": peak, "peak_kind": peak_kind}
