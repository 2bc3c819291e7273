"""One training loop for the whole course: seeded, clipped, with held-out evaluation and throughput."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterator

import torch
from torch import nn

from .data import make_loader
from .validate import require_number


@dataclass
class TrainResult:
    """Everything a run measured. ``train_loss[i]`` is the loss of step i+1 (before its update)."""

    name: str
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)  # training seconds before each evaluation
    seconds: float = 0.0
    tokens: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1] if self.val_loss else float("nan")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["tokens_per_s"] = self.tokens_per_s
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainResult":
        """Inverse of ``to_dict`` (derived keys such as ``tokens_per_s`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in data.items() if k in names})


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel (``.module``) and/or torch.compile (``._orig_mod``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


@torch.no_grad()
def evaluate(model: nn.Module, dataset, batch_size: int = 16, device=None) -> float:
    """Mean next-token loss over every sequence of ``dataset`` (token-weighted), in eval mode."""
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in make_loader(dataset, batch_size, seed=0, shuffle=False, drop_last=False):
        batch = batch.to(device)
        loss = model(batch, labels=batch, return_logits=False).loss
        n = batch.shape[0] * (batch.shape[1] - 1)
        total += loss.item() * n
        count += n
    model.train(was_training)
    return total / count


@dataclass(frozen=True)
class ScaleOut:
    """How one step runs beyond a single fp32 process (notebook 10); the default changes nothing.

    - ``accum_steps``: each batch is cut into that many equal micro-batches whose gradients add up
      (each micro-batch loss weighted by its share of the tokens), then one optimizer step.
    - ``dist_context`` (``course_lib.distributed.DistContext``) with the model wrapped in
      DistributedDataParallel: each batch is the *global* batch; this rank keeps its contiguous
      shard, DDP averages the gradients in backward (only on the last micro-batch; ``no_sync``
      before it), and the recorded loss is the token-weighted mean over all ranks. Only rank 0
      evaluates and shows progress.
    - ``autocast_dtype`` (e.g. ``torch.bfloat16`` on CUDA): forward passes under ``torch.autocast``.
    """

    accum_steps: int = 1
    dist_context: object = None
    autocast_dtype: torch.dtype | None = None


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[torch.Tensor],
    steps: int,
    *,
    clip_norm: float | None = 1.0,
    scheduler=None,
    val_dataset=None,
    eval_every: int = 0,
    eval_batch_size: int = 16,
    device=None,
    progress: bool = True,
    name: str = "run",
    scale: ScaleOut | None = None,
    result: TrainResult | None = None,
    on_step: Callable[[int, TrainResult], None] | None = None,
) -> TrainResult:
    """Train for ``steps`` optimizer steps on ``batches`` (an iterator of (batch, seq) id tensors).

    Each step: forward with labels = inputs, backward, clip the global gradient norm to
    ``clip_norm`` (None or 0 turns clipping off), optimizer step, scheduler step. Records the train
    loss and pre-clip gradient norm every step and the held-out loss every ``eval_every`` steps and
    at the end. Stops with FloatingPointError naming the step if the loss is not finite.

    Also optional:

    - ``scale`` (``ScaleOut``): gradient accumulation, data-parallel processes, autocast.
    - ``result``: a history to continue (resuming from a checkpoint): training starts at step
      ``len(result.train_loss) + 1`` and ``steps`` is the total.
    - ``on_step(step, result)``: called after every step (checkpointing, logging).
    """
    steps = require_number("steps", steps, at_least=1, integer=True)
    if clip_norm is not None:
        require_number("clip_norm", clip_norm, at_least=0.0, hint="pass None or 0 to turn clipping off")
    eval_every = require_number("eval_every", eval_every, at_least=0, integer=True, hint="0 turns evaluation off")
    scale = scale or ScaleOut()
    accum_steps = require_number("accum_steps", scale.accum_steps, at_least=1, integer=True)
    dist_context, autocast_dtype = scale.dist_context, scale.autocast_dtype
    device = torch.device(device) if device is not None else next(model.parameters()).device
    is_main = dist_context is None or dist_context.is_main
    result = TrainResult(name=name) if result is None else result
    first_step = len(result.train_loss) + 1
    if first_step > steps + 1:
        raise ValueError(f"the history to continue already has {first_step - 1} steps, more than steps={steps}")
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=first_step - 1, desc=name, leave=False)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    simple = accum_steps == 1 and dist_context is None and autocast_dtype is None
    start = time.perf_counter()
    seconds_before = result.seconds
    for step in range(first_step, steps + 1):
        try:
            batch = next(batches)
        except StopIteration as err:
            raise ValueError(f"the batch iterator ran out after {step - 1} of {steps} steps") from err
        batch = batch.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        if simple:  # the original single-process step, operation for operation
            loss = model(batch, labels=batch, return_logits=False).loss
            loss_value = loss.item()
        else:
            loss_value = _accumulate_gradients(model, batch, accum_steps, dist_context, autocast_dtype, device)
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"{name}: the loss is {loss_value} at step {step}; training stopped. Try a lower learning "
                "rate, gradient clipping, or check the batch for bad data."
            )
        if simple:
            loss.backward()
        if clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        norm = float(norm)
        if not math.isfinite(norm):
            raise FloatingPointError(
                f"{name}: the gradient norm is {norm} at step {step} (the loss, {loss_value:.4g}, was finite); "
                "training stopped before the update. Look for an overflow in the model (try float32 or bf16 "
                "instead of fp16) or a bad batch."
            )
        result.lr.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        result.train_loss.append(loss_value)
        result.grad_norm.append(norm)
        result.tokens += batch.numel()
        if is_main and val_dataset is not None and eval_every and (step % eval_every == 0 or step == steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # the clock must not stop before the GPU has finished the step
            elapsed = time.perf_counter()
            result.val_steps.append(step)
            result.val_seconds.append(seconds_before + elapsed - start)
            with _autocast(device, autocast_dtype):
                result.val_loss.append(evaluate(unwrap_model(model), val_dataset, eval_batch_size, device))
            if not math.isfinite(result.val_loss[-1]):
                check_finite_weights(model, step, name)
                raise FloatingPointError(f"{name}: the held-out loss is {result.val_loss[-1]} after step {step}; "
                                         "training stopped. Check the held-out data and the learning rate.")
            start += time.perf_counter() - elapsed  # evaluation time is not training time
        if on_step is not None:
            elapsed = time.perf_counter()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            result.seconds = seconds_before + (elapsed - start)
            on_step(step, result)
            start += time.perf_counter() - elapsed  # checkpoint writing is not training time
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.seconds = seconds_before + time.perf_counter() - start
    if bar is not None:
        bar.close()
    check_finite_weights(model, steps, name)  # the last update is never followed by a loss that would show it
    return result


def check_finite_weights(model: nn.Module, step: int, name: str = "run") -> None:
    """Raise FloatingPointError naming the step and the first parameters that hold inf or NaN.

    A non-finite update shows up in the next step's loss, except after the last step (or right
    before a checkpoint is written), so those places check the weights themselves."""
    bad = [n for n, p in unwrap_model(model).named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise FloatingPointError(
            f"{name}: after the update of step {step} the weights hold inf or NaN ({shown}); training stopped. "
            "Try a lower learning rate, a larger eps, or gradient clipping."
        )


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _accumulate_gradients(model, batch, accum_steps, dist_context, autocast_dtype, device) -> float:
    """Forward/backward over this rank's micro-batches; returns the global token-weighted mean loss.

    Each micro-batch loss is scaled by its share of the rank's target tokens, so the summed
    gradient is the gradient of the rank's mean loss; DDP then averages over ranks (equal shards, so
    that is the global mean). ``no_sync`` skips the all-reduce on all but the last micro-batch.
    """
    from .distributed import DistContext, global_mean, shard_rows, split_micro_batches

    ctx = dist_context or DistContext()
    shard = shard_rows(batch, ctx.rank, ctx.world_size)
    micro_batches = split_micro_batches(shard, accum_steps)
    counts = [mb.shape[0] * (mb.shape[1] - 1) for mb in micro_batches]  # targets per micro-batch
    total_count = sum(counts)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for i, (mb, n) in enumerate(zip(micro_batches, counts)):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with _autocast(device, autocast_dtype):
                loss = model(mb, labels=mb, return_logits=False).loss
            (loss * (n / total_count) if len(micro_batches) > 1 else loss).backward()
        loss_sum += loss.detach().double() * n
    return global_mean(loss_sum, total_count, ctx, device)
