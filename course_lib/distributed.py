"""Beyond one CPU: data parallelism with torchrun + DistributedDataParallel (DDP).

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
