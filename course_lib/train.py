"""One training loop for the whole course: seeded, clipped, with held-out evaluation and throughput."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch
from torch import nn

from .data import make_loader


@dataclass
class TrainResult:
    """Everything a run measured. ``train_loss[i]`` is the loss of step i+1 (before its update)."""

    name: str
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
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
) -> TrainResult:
    """Train for ``steps`` optimizer steps on ``batches`` (an iterator of (batch, seq) id tensors).

    Each step: forward with labels = inputs, backward, clip the global gradient norm to
    ``clip_norm`` (None or 0 turns clipping off), optimizer step, scheduler step. Records the train
    loss and pre-clip gradient norm every step and the held-out loss every ``eval_every`` steps and
    at the end. Stops with FloatingPointError naming the step if the loss is not finite.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if clip_norm is not None and not clip_norm >= 0:
        raise ValueError(f"clip_norm must be ≥ 0 or None, got {clip_norm}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be ≥ 0, got {eval_every}")
    device = device or next(model.parameters()).device
    result = TrainResult(name=name)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=name, leave=False)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        try:
            batch = next(batches)
        except StopIteration as err:
            raise ValueError(f"the batch iterator ran out after {step - 1} of {steps} steps") from err
        batch = batch.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = model(batch, labels=batch, return_logits=False).loss
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"{name}: the loss is {loss_value} at step {step}; training stopped. Try a lower learning "
                "rate, gradient clipping, or check the batch for bad data."
            )
        loss.backward()
        if clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        result.lr.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        result.train_loss.append(loss_value)
        result.grad_norm.append(float(norm))
        result.tokens += batch.numel()
        if val_dataset is not None and eval_every and (step % eval_every == 0 or step == steps):
            elapsed = time.perf_counter()
            result.val_steps.append(step)
            result.val_loss.append(evaluate(model, val_dataset, eval_batch_size, device))
            start += time.perf_counter() - elapsed  # evaluation time is not training time
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return result
