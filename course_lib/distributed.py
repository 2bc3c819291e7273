"""Beyond one CPU: data parallelism with torchrun + DistributedDataParallel, and the GPU's numbers.

Everything here is a thin layer over PyTorch's own engine; nothing launches processes or averages
gradients by hand:

- ``torchrun --standalone --nproc_per_node=N -m course_lib.capstone ...`` starts N processes and sets
  ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each;
  ``init_distributed`` reads them (``init_method="env://"``) and joins the process group: NCCL on
  GPUs, gloo on CPUs. Without those variables it returns a single-process context and touches nothing.
- ``torch.nn.parallel.DistributedDataParallel`` (Li et al. 2020, "PyTorch Distributed") all-reduces
  and averages the gradients during ``backward()``; every rank then runs the same optimizer step on
  the same averaged gradients, so the replicas stay identical. Muon's Newton–Schulz iteration thus
  runs on the all-reduced gradient, once per rank (replicated work, simple and exact).
- Each global batch is cut into one contiguous shard per rank (``shard_rows``), and each shard into
  ``accum_steps`` micro-batches (gradient accumulation), so the global batch, and with it the
  learning-rate schedule, is what the config says whatever the number of processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .i18n import tr
from .runtime import pick_device

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistContext:
    """Who this process is. The default is the single-process run (rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    def __post_init__(self):
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 ≤ rank < world_size, got rank={self.rank}, world_size={self.world_size}")

    @property
    def enabled(self) -> bool:
        """True when there is more than one process (gradients must be all-reduced)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates, plots and writes files; the other ranks only train."""
        return self.rank == 0


def launched_by_torchrun(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return all(key in environ for key in TORCHRUN_ENV)


def init_distributed(device: str | torch.device | None = None) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group if this process was started by torchrun; else do nothing.

    Returns the context and this rank's device: ``cuda:LOCAL_RANK`` on GPUs (one GPU per process),
    otherwise the device ``pick_device`` chooses. Backend: NCCL for CUDA, gloo for CPU.
    """
    device = pick_device(device) if not isinstance(device, torch.device) else device
    if not launched_by_torchrun():
        return DistContext(), device
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPU(s) are visible; "
                             "use --nproc_per_node ≤ the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend), device


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shard_rows(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous slice of a global batch: rows [rank·B/N, (rank+1)·B/N)."""
    rows = batch.shape[0]
    if rows % world_size:
        raise ValueError(f"the global batch of {rows} sequences does not split evenly over {world_size} "
                         f"processes; use a batch size that is a multiple of {world_size}")
    per = rows // world_size
    return batch[rank * per : (rank + 1) * per]


def split_micro_batches(shard: torch.Tensor, accum_steps: int) -> list[torch.Tensor]:
    """Cut one rank's shard into ``accum_steps`` equal micro-batches (gradient accumulation)."""
    if accum_steps < 1 or shard.shape[0] % accum_steps:
        raise ValueError(f"a shard of {shard.shape[0]} sequences does not split into {accum_steps} equal "
                         "micro-batches")
    return list(shard.split(shard.shape[0] // accum_steps))


def plan_batches(global_batch: int, world_size: int = 1, micro_batch: int | None = None,
                 max_micro_batch: int = 32) -> tuple[int, int]:
    """(micro_batch, accum_steps) with micro_batch × accum_steps × world_size = global_batch.

    Without ``micro_batch`` the largest divisor of the per-rank batch that is ≤ ``max_micro_batch``
    is used (the GPT-2-small preset's 480 = 32 × 15 on one GPU; 30 × 8 on two; 30 × 2 on eight).
    """
    if global_batch < 1 or world_size < 1:
        raise ValueError(f"global_batch and world_size must be ≥ 1, got {global_batch}, {world_size}")
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} is not a multiple of the {world_size} processes")
    per_rank = global_batch // world_size
    if micro_batch is None:
        micro_batch = max(d for d in range(1, min(per_rank, max_micro_batch) + 1) if per_rank % d == 0)
    if micro_batch < 1 or per_rank % micro_batch:
        raise ValueError(f"micro-batch {micro_batch} does not divide the per-process batch {per_rank} "
                         f"(global {global_batch} / {world_size} processes)")
    return micro_batch, per_rank // micro_batch


def global_mean(total: torch.Tensor | float, count: float, ctx: DistContext, device=None) -> float:
    """Σ total / Σ count over every rank (one all-reduce): the token-weighted global mean loss."""
    pair = torch.stack([torch.as_tensor(total, dtype=torch.float64, device=device).detach().reshape(()),
                        torch.tensor(float(count), dtype=torch.float64, device=device)])
    if ctx.enabled:
        dist.all_reduce(pair, op=dist.ReduceOp.SUM)
    return float(pair[0] / pair[1])


def replicas_identical(model: torch.nn.Module, ctx: DistContext) -> bool:
    """True when every rank holds bit-identical parameters (checked with a per-tensor fingerprint)."""
    if not ctx.enabled:
        return True
    params = [p.detach() for p in model.parameters()]
    device = params[0].device
    fingerprint = torch.stack([torch.stack([p.double().sum(), p.double().square().sum(),
                                            (p.double() * torch.arange(p.numel(), device=device,
                                                                       dtype=torch.float64).view(p.shape)).sum()])
                               for p in params])
    lo, hi = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when there are several processes, else the model itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


# ---------------------------------------------------------------------------- GPU: precision and peak

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
    if device.type != "cuda":
        return None, tr(f"peak unknown for {device.type}: MFU not reported",
                        f"{device.type}의 최대 성능을 몰라 MFU를 보고하지 않습니다")
    return peak_flops(torch.cuda.get_device_name(device))


# ---------------------------------------------------------------------------- published configurations


@dataclass(frozen=True)
class PublishedConfig:
    """One training configuration as its source reports it. ``None`` means the cited place does not
    give the value (it is left empty rather than guessed)."""

    model: str
    params: float  # total parameters
    peak_lr: float | None  # AdamW's peak learning rate
    beta2: float | None
    weight_decay: float | None
    warmup: str | None
    schedule: str | None
    muon_lr: str | None  # "n/a" for runs without Muon
    source: str  # what a reader can open: paper (arXiv id, table/section) or repository file

    def shown(self, field: str) -> str | None:
        """A text field (``warmup``, ``schedule``, ``muon_lr``) in the notebook's language; sources stay as cited."""
        value = getattr(self, field)
        return None if value is None else tr(value, PUBLISHED_TEXT_KO.get(value, value))

    def __post_init__(self):
        if self.params <= 0:
            raise ValueError(f"{self.model}: params must be > 0, got {self.params}")
        if self.peak_lr is not None and not 0 < self.peak_lr < 1:
            raise ValueError(f"{self.model}: peak_lr must be in (0, 1), got {self.peak_lr}")
        if self.beta2 is not None and not 0 < self.beta2 < 1:
            raise ValueError(f"{self.model}: beta2 must be in (0, 1), got {self.beta2}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"{self.model}: weight_decay must be ≥ 0, got {self.weight_decay}")
        if "arXiv:" not in self.source and "github.com/" not in self.source:
            raise ValueError(f"{self.model}: the source must name an arXiv id or a github.com repository, "
                             f"got {self.source!r}")


_GPT3 = "Brown et al. 2020, arXiv:2005.14165, Table 2.1 and App. B"
_GPT3_SCHEDULE = "cosine to 10% of peak over 260B tokens"
_LLAMA2 = "Touvron et al. 2023 (Llama 2), arXiv:2307.09288, §2.2 and Table 1"
_LLAMA2_SCHEDULE = "cosine to 10% of peak"
_LLAMA3 = "Llama Team 2024 (Llama 3), arXiv:2407.21783, Table 3"

PUBLISHED_CONFIGS = (
    PublishedConfig("GPT-3 Small", 125e6, 6.0e-4, 0.95, 0.1, "375M tokens", _GPT3_SCHEDULE, "n/a (AdamW)", _GPT3),
    PublishedConfig("GPT-3 XL", 1.3e9, 2.0e-4, 0.95, 0.1, "375M tokens", _GPT3_SCHEDULE, "n/a (AdamW)", _GPT3),
    PublishedConfig("GPT-3", 175e9, 0.6e-4, 0.95, 0.1, "375M tokens", _GPT3_SCHEDULE, "n/a (AdamW)", _GPT3),
    PublishedConfig("Llama 2 7B", 7e9, 3.0e-4, 0.95, 0.1, "2,000 steps", _LLAMA2_SCHEDULE, "n/a (AdamW)", _LLAMA2),
    PublishedConfig("Llama 2 13B", 13e9, 3.0e-4, 0.95, 0.1, "2,000 steps", _LLAMA2_SCHEDULE, "n/a (AdamW)", _LLAMA2),
    PublishedConfig("Llama 2 34B", 34e9, 1.5e-4, 0.95, 0.1, "2,000 steps", _LLAMA2_SCHEDULE, "n/a (AdamW)", _LLAMA2),
    PublishedConfig("Llama 2 70B", 70e9, 1.5e-4, 0.95, 0.1, "2,000 steps", _LLAMA2_SCHEDULE, "n/a (AdamW)", _LLAMA2),
    PublishedConfig("Llama 3 8B", 8e9, 3e-4, None, None, None, None, "n/a", _LLAMA3),
    PublishedConfig("Llama 3 70B", 70e9, 1.5e-4, None, None, None, None, "n/a", _LLAMA3),
    PublishedConfig("MiniCPM-2.4B", 2.4e9, None, None, None, None,
                    "WSD: warmup, constant, then exponential decay over about the last 10% of tokens", "n/a",
                    "Hu et al. 2024 (MiniCPM), arXiv:2404.06395, the WSD scheduler section"),
    PublishedConfig("Moonlight (MoE, 3B active)", 16e9, None, None, 0.1, None, None,
                    "AdamW's lr × 0.2·√max(A, B) per A×B matrix (matches AdamW's update RMS)",
                    "Liu et al. 2025 (Moonlight), arXiv:2502.16982; github.com/MoonshotAI/Moonlight "
                    "examples/toy_train.py"),
    PublishedConfig("modded-nanogpt speedrun (GPT-2 small)", 124e6, None, 0.95, 0.0, "none",
                    "constant, then linear cooldown to 0.1× over the last cooldown_frac of steps",
                    "0.05 (momentum 0.95) on hidden matrices; Adam β=(0.8, 0.95) on the rest",
                    "github.com/KellerJordan/modded-nanogpt train_gpt.py (2025 records; it changes often)"),
)


# The text fields of PUBLISHED_CONFIGS in Korean (``PublishedConfig.shown``); a test checks every value has one.
PUBLISHED_TEXT_KO = {
    "375M tokens": "3.75억 토큰",
    "2,000 steps": "2,000스텝",
    "none": "없음",
    _GPT3_SCHEDULE: "2,600억 토큰에 걸쳐 최대값의 10%까지 코사인",
    _LLAMA2_SCHEDULE: "최대값의 10%까지 코사인",
    "WSD: warmup, constant, then exponential decay over about the last 10% of tokens":
        "WSD: 워밍업, 고정, 마지막 약 10%의 토큰 동안 지수 감쇠",
    "constant, then linear cooldown to 0.1× over the last cooldown_frac of steps":
        "고정, 마지막 cooldown_frac 비율의 스텝 동안 0.1×까지 선형 쿨다운",
    "n/a (AdamW)": "해당 없음(AdamW)",
    "n/a": "해당 없음",
    "AdamW's lr × 0.2·√max(A, B) per A×B matrix (matches AdamW's update RMS)":
        "A×B 행렬마다 AdamW의 lr × 0.2·√max(A, B)(AdamW 업데이트의 RMS에 맞춤)",
    "0.05 (momentum 0.95) on hidden matrices; Adam β=(0.8, 0.95) on the rest":
        "은닉층 행렬에 0.05(모멘텀 0.95), 나머지에는 Adam β=(0.8, 0.95)",
}


def published_configs(max_params: float | None = None) -> list[PublishedConfig]:
    """``PUBLISHED_CONFIGS`` sorted by size, optionally only models up to ``max_params`` parameters."""
    if max_params is not None and max_params <= 0:
        raise ValueError(f"max_params must be > 0 or None, got {max_params}")
    rows = sorted(PUBLISHED_CONFIGS, key=lambda c: c.params)
    return [c for c in rows if max_params is None or c.params <= max_params]


def published_peak_lr(model: str) -> float:
    """The published peak AdamW learning rate of one row of ``PUBLISHED_CONFIGS``, by its model name."""
    for config in PUBLISHED_CONFIGS:
        if config.model == model:
            if config.peak_lr is None:
                raise ValueError(f"{model}: the cited source gives no single peak learning rate")
            return config.peak_lr
    raise ValueError(f"no published configuration named {model!r}; known: "
                     f"{', '.join(c.model for c in PUBLISHED_CONFIGS)}")

