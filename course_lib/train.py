"""One training loop for the whole course: ``train_step`` is the step of nanoGPT's train.py (accumulate over
micro-batches, clip, update) as a function, with micro-batches weighted by their target tokens rather than 1/k;
``train`` loops over steps, evaluates and keeps the history."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from .data import make_loader
from .distributed import DistContext, global_mean, shard_rows, split_micro_batches
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
    def from_dict(cls, data: dict) -> TrainResult:
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
class StepPlan:
    """How each step runs beyond one fp32 process (notebook 10); the default changes nothing.

    - ``accum_steps``: each batch (under DDP, this rank's shard of it) is cut into that many equal
      micro-batches whose gradients are accumulated before the one optimizer step (``accumulate_gradients``).
    - ``dist_context`` (``course_lib.distributed.DistContext``), with the model wrapped in
      DistributedDataParallel: each batch is the *global* batch and this rank trains on its contiguous
      shard; the recorded loss is the mean over all ranks. Only rank 0 evaluates and shows progress.
    - ``autocast_dtype`` (e.g. ``torch.bfloat16`` on CUDA): forward passes under ``torch.autocast``.
    - ``grad_scaler`` (``torch.amp.GradScaler``, for fp16): loss scaling as in ``train_step``.
    """

    accum_steps: int = 1
    dist_context: object = None
    autocast_dtype: torch.dtype | None = None
    grad_scaler: object = None


class Stopwatch:
    """Seconds of training, paused around the work that is not training (evaluation, checkpoints); like d2l's
    ``Timer``, but it keeps one running total. On CUDA it waits for the GPU before stopping the clock (kernels
    run asynchronously)."""

    def __init__(self, seconds: float = 0.0, device=None):
        self.seconds = seconds  # the total up to the last stop()
        self.device = torch.device(device) if device is not None else None
        self._started = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> float:
        """Stop the clock; returns the total seconds."""
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - self._started
        self._started = None
        return self.seconds

    @contextlib.contextmanager
    def paused(self):
        """``with clock.paused(): ...`` does not count the time inside; ``clock.seconds`` is current there."""
        self.stop()
        try:
            yield self
        finally:
            self.start()


def accumulate_gradients(model: nn.Module, micro_batches, *, autocast_dtype: torch.dtype | None = None,
                         dist_context=None, grad_scaler=None) -> float:
    """Forward and backward over ``micro_batches``, adding their gradients into ``p.grad``; returns the mean loss.

    A micro-batch is a tensor of token ids (its own labels) or an ``(input_ids, labels)`` pair (label -100
    is ignored). Each micro-batch's mean loss is weighted by its share of the target tokens, n_i / Σ n_j,
    so the summed gradient is that of the mean loss over all the tokens, as for one big batch. Under
    DistributedDataParallel only the last backward all-reduces (``no_sync`` before it); DDP averages the
    ranks' gradients, which is the global mean when every rank has as many targets (equal shards). The
    loss returned is the token-weighted mean over the ranks of ``dist_context``. ``grad_scaler``: backward
    runs on the scaled loss."""
    if not micro_batches:
        raise ValueError("micro_batches is empty")
    pairs = [mb if isinstance(mb, (tuple, list)) else (mb, mb) for mb in micro_batches]
    counts = [_count_targets(ids, labels) for ids, labels in pairs]
    total = sum(counts)
    if total == 0:
        raise ValueError("no target tokens in any micro-batch (all labels are -100)")
    last = max(i for i, n in enumerate(counts) if n)
    device = pairs[0][0].device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for i, ((ids, labels), n) in enumerate(zip(pairs, counts)):
        if n == 0:
            continue
        sync = model.no_sync() if i != last and hasattr(model, "no_sync") else contextlib.nullcontext()
        with sync:
            with _autocast(device, autocast_dtype):
                loss = model(ids, labels=labels, return_logits=False).loss
            weighted = loss * (n / total)
            (weighted if grad_scaler is None else grad_scaler.scale(weighted)).backward()
        loss_sum += loss.detach().double() * n
    return global_mean(loss_sum, total, dist_context or DistContext(), device)


def _count_targets(ids: torch.Tensor, labels: torch.Tensor) -> int:
    """Targets of a causal LM: labels shift inside the model (position 0 is never one) and -100 is ignored."""
    if labels is ids:  # ids are never -100: count from the shape, without waiting for the device
        return ids.shape[0] * (ids.shape[1] - 1)
    return int((labels[:, 1:] != -100).sum())


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches, *, clip_norm: float | None = 1.0,
               autocast_dtype: torch.dtype | None = None, dist_context=None, step: int | None = None,
               name: str = "run", grad_scaler=None) -> tuple[float, float]:
    """One optimizer step: zero the gradients, accumulate them over ``micro_batches``
    (``accumulate_gradients``), clip their global norm to ``clip_norm`` (None or 0: no clipping), step.

    Returns (loss, gradient norm before clipping). The gradients stay in ``p.grad``. Raises
    FloatingPointError before the update if the loss or the gradient norm is not finite (``step`` and
    ``name`` only label that message). With ``grad_scaler`` (fp16) the gradients are unscaled before clipping
    and an overflowed step is skipped and the scale lowered (``GradScaler.step``/``update``, notebook 04); the
    LR schedule still advances, as in torch's AMP recipe. A scale below 1 is a divergence: FloatingPointError.
    """
    at = "" if step is None else f" at step {step}"
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, micro_batches, autocast_dtype=autocast_dtype, dist_context=dist_context,
                                grad_scaler=grad_scaler)
    if not math.isfinite(loss):
        fp16 = "; an fp16 activation over 65504 overflows: try bf16" if autocast_dtype == torch.float16 else ""
        raise FloatingPointError(f"{name}: the loss is {loss}{at}; training stopped. Try a lower learning rate, "
                                 f"gradient clipping, or check the batch for bad data{fp16}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if clip_norm:
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip_norm))
    else:
        norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
    if grad_scaler is not None:
        grad_scaler.step(optimizer)  # skipped when unscale_ found inf or NaN in the gradients
        grad_scaler.update()  # lower the scale after an overflow, raise it after a run of good steps
        if grad_scaler.get_scale() < 1.0:
            raise FloatingPointError(f"{name}: the loss scale fell below 1{at}: the gradients overflow even unscaled"
                                     "; training stopped. Try a lower learning rate, or --precision bf16 or fp32.")
        return loss, norm
    if not math.isfinite(norm):
        raise FloatingPointError(
            f"{name}: the gradient norm is {norm}{at} (the loss, {loss:.4g}, was finite); training stopped before "
            "the update. Look for an overflow in the model (try float32 or bf16 instead of fp16) or a bad batch."
        )
    optimizer.step()
    return loss, norm


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
    plan: StepPlan | None = None,
    result: TrainResult | None = None,
    on_step: Callable[[int, TrainResult], None] | None = None,
) -> TrainResult:
    """Train for ``steps`` optimizer steps on ``batches`` (an iterator of (batch, seq) id tensors).

    Each step is a ``train_step`` (labels = inputs; clipping to ``clip_norm``, None or 0 turns it off),
    then a scheduler step. Records the train loss, the pre-clip gradient norm and the LR every step, and
    the held-out loss every ``eval_every`` steps and at the end; the time spent evaluating (and in
    ``on_step``) is not counted as training time. Stops with FloatingPointError naming the step if the
    loss, the gradient norm or the weights are not finite (with a GradScaler an overflowed step is skipped
    instead, and the run stops once the loss scale falls below 1).

    - ``plan`` (``StepPlan``): gradient accumulation, data-parallel processes, autocast.
    - ``result``: a history to continue (resuming from a checkpoint): training starts at step
      ``len(result.train_loss) + 1`` and ``steps`` is the total.
    - ``on_step(step, result)``: called after every step (checkpointing, logging).
    """
    steps = require_number("steps", steps, at_least=1, integer=True)
    if clip_norm is not None:
        require_number("clip_norm", clip_norm, at_least=0.0, hint="pass None or 0 to turn clipping off")
    eval_every = require_number("eval_every", eval_every, at_least=0, integer=True, hint="0 turns evaluation off")
    plan = plan or StepPlan()
    accum_steps = require_number("accum_steps", plan.accum_steps, at_least=1, integer=True)
    ctx = plan.dist_context or DistContext()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    result = TrainResult(name=name) if result is None else result
    first_step = len(result.train_loss) + 1
    if first_step > steps + 1:
        raise ValueError(f"the history to continue already has {first_step - 1} steps, more than steps={steps}")
    bar = None
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=first_step - 1, desc=name, leave=False)
    model.train()
    clock = Stopwatch(result.seconds, device)
    clock.start()
    for step in range(first_step, steps + 1):
        try:
            batch = next(batches).to(device, non_blocking=True)
        except StopIteration as err:
            raise ValueError(f"the batch iterator ran out after {step - 1} of {steps} steps") from err
        micro_batches = split_micro_batches(shard_rows(batch, ctx.rank, ctx.world_size), accum_steps)
        lr = optimizer.param_groups[0]["lr"]
        loss, norm = train_step(model, optimizer, micro_batches, clip_norm=clip_norm, step=step, name=name,
                                autocast_dtype=plan.autocast_dtype, dist_context=plan.dist_context,
                                grad_scaler=plan.grad_scaler)
        if scheduler is not None:
            scheduler.step()
        result.lr.append(lr)
        result.train_loss.append(loss)
        result.grad_norm.append(norm)
        result.tokens += batch.numel()

        if ctx.is_main and val_dataset is not None and eval_every and (step % eval_every == 0 or step == steps):
            with clock.paused():
                with _autocast(device, plan.autocast_dtype):
                    val_loss = evaluate(unwrap_model(model), val_dataset, eval_batch_size, device)
                result.val_steps.append(step)
                result.val_seconds.append(clock.seconds)
                result.val_loss.append(val_loss)
                if not math.isfinite(val_loss):
                    validate_finite_weights(model, step, name)
                    raise FloatingPointError(f"{name}: the held-out loss is {val_loss} after step {step}; "
                                             "training stopped. Check the held-out data and the learning rate.")
        if on_step is not None:
            with clock.paused():
                result.seconds = clock.seconds
                on_step(step, result)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
    result.seconds = clock.stop()
    if bar is not None:
        bar.close()
    validate_finite_weights(model, steps, name)  # the last update is never followed by a loss that would show it
    return result


def validate_finite_weights(model: nn.Module, step: int, name: str = "run") -> None:
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
