"""Training stability and monitoring: gradient accumulation, z-loss, a loss-spike guard, per-layer
gradient norms and update-to-weight ratios (one step, or recorded over a whole run), activation
checkpointing. FLOPs and MFU are in ``compute``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import deque

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .train import accumulate_gradients

# ---------------------------------------------------------------------------- accumulation


def count_target_tokens(labels: torch.Tensor) -> int:
    """Targets a causal LM is scored on: labels are shifted inside the model, so position 0 is never
    a target, and label -100 is ignored."""
    return int((labels[:, 1:] != -100).sum())


def accumulation_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches, clip_norm=None) -> float:
    """One optimizer step from k micro-batches, equal to one step on their concatenation.

    ``micro_batches`` is a list of ``(input_ids, labels)``. Each micro-batch's mean loss is weighted
    by its share of the target tokens (n_i / Σ n_j; this is 1/k when every micro-batch has as many
    targets), gradients add up over the micro-batches, then the global norm is clipped once and the
    optimizer steps once. The gradients stay in ``p.grad``. Returns the token-weighted mean loss.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, micro_batches)  # the one implementation, shared with course_lib.train
    if clip_norm:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip_norm)
    optimizer.step()
    return loss


def global_grad_norm(parameters) -> float:
    """‖g‖₂ over all gradients together (what ``clip_grad_norm_`` returns)."""
    grads = [p.grad.detach().double() for p in parameters if p.grad is not None]
    if not grads:
        raise ValueError("no parameter has a gradient; call backward() first")
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads))


# ---------------------------------------------------------------------------- z-loss


def z_loss(logits: torch.Tensor, coeff: float = 1e-4, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PaLM's auxiliary loss ``coeff · log²Z`` with ``log Z = logsumexp(logits)`` (Chowdhery et al.
    2022, §5): it pulls the softmax normalizer towards 1 so logits cannot drift. Mean over positions
    (over ``mask``'s True positions if given)."""
    if coeff < 0:
        raise ValueError(f"coeff must be ≥ 0, got {coeff}")
    log_z = torch.logsumexp(logits.float(), dim=-1)
    sq = log_z.pow(2)
    if mask is not None:
        return coeff * sq[mask].mean()
    return coeff * sq.mean()


def cross_entropy_with_z_loss(logits: torch.Tensor, labels: torch.Tensor, coeff: float = 1e-4):
    """Causal-LM cross-entropy (labels shifted, -100 ignored) plus ``z_loss``; returns (total, ce, z)."""
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    targets = labels[:, 1:].reshape(-1)
    ce = F.cross_entropy(flat, targets, ignore_index=-100)
    z = z_loss(flat, coeff, mask=targets != -100)
    return ce + z, ce, z


# ---------------------------------------------------------------------------- spike guard


class LossSpikeGuard:
    """Detect a loss spike against the running statistics of recent losses, then skip or roll back.

    A loss is a spike when it is not finite, or when it exceeds ``mean + max(n_sigma · std,
    min_jump)`` of the last ``window`` accepted losses (no verdict before ``min_history`` of them).

    - ``mode="skip"``: the caller drops the step (no backward, no update), as PaLM skipped batches.
    - ``mode="rollback"``: ``recover()`` restores model and optimizer from the last snapshot, taken
      every ``snapshot_every`` accepted steps, which undoes a bad update that was already applied.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, window: int = 20,
                 n_sigma: float = 6.0, min_jump: float = 0.5, min_history: int = 5, mode: str = "rollback",
                 snapshot_every: int = 10):
        if mode not in ("skip", "rollback"):
            raise ValueError(f"mode must be 'skip' or 'rollback', got {mode!r}")
        if window < 2 or min_history < 2 or min_history > window or snapshot_every < 1:
            raise ValueError(f"need 2 ≤ min_history ≤ window and snapshot_every ≥ 1, got "
                             f"window={window}, min_history={min_history}, snapshot_every={snapshot_every}")
        self.model, self.optimizer, self.mode = model, optimizer, mode
        self.n_sigma, self.min_jump, self.min_history = n_sigma, min_jump, min_history
        self.snapshot_every = snapshot_every
        self.history: deque[float] = deque(maxlen=window)
        self.spikes: list[int] = []
        self.accepted = 0
        self.seen = 0
        self._snapshot = None
        self.snapshot()

    def threshold(self) -> float:
        if len(self.history) < self.min_history:
            return math.inf
        values = torch.tensor(list(self.history), dtype=torch.float64)
        return float(values.mean() + max(self.n_sigma * float(values.std()), self.min_jump))

    def is_spike(self, loss: float) -> bool:
        """Check one loss; records a spike (with its call index) or accepts the loss."""
        self.seen += 1
        loss = float(loss)
        if not math.isfinite(loss) or loss > self.threshold():
            self.spikes.append(self.seen)
            return True
        self.history.append(loss)
        self.accepted += 1
        if self.mode == "rollback" and self.accepted % self.snapshot_every == 0:
            self.snapshot()
        return False

    def snapshot(self) -> None:
        self._snapshot = (copy.deepcopy(self.model.state_dict()),
                          copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None)

    def recover(self) -> None:
        """``rollback``: restore the last snapshot. ``skip``: nothing to undo (the step is dropped)."""
        if self.mode == "rollback":
            model_state, opt_state = self._snapshot
            self.model.load_state_dict(model_state)
            if opt_state is not None:
                self.optimizer.load_state_dict(opt_state)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------- monitoring


def grad_norms_by_param(model: nn.Module) -> dict[str, float]:
    """‖grad‖₂ of every parameter that has a gradient, by name."""
    return {name: float(p.grad.detach().norm()) for name, p in model.named_parameters() if p.grad is not None}


def snapshot_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def update_to_weight_ratios(before: dict[str, torch.Tensor], model: nn.Module) -> dict[str, float]:
    """‖W_after − W_before‖ / ‖W_before‖ per parameter: how far one step moved each weight.
    Around 1e-3 per step is the usual healthy range for Adam-trained transformers (Karpathy)."""
    out = {}
    for name, p in model.named_parameters():
        if name not in before:
            raise ValueError(f"no snapshot for parameter {name!r}")
        w0 = before[name]
        out[name] = float((p.detach() - w0).norm() / w0.norm().clamp_min(1e-12))
    return out


# ---------------------------------------------------------------------------- checkpointing


def checkpoint_decoder_layers(model: nn.Module, enable: bool = True) -> nn.Module:
    """Wrap each decoder layer of a course ``TransformerForCausalLM`` in ``torch.utils.checkpoint``
    (non-reentrant): its activations are dropped after the forward pass and recomputed in backward.
    Parameter names do not change. ``enable=False`` undoes it."""
    for layer in model.model.layers:
        if enable and "forward" not in vars(layer):
            original = type(layer).forward.__get__(layer)
            layer.forward = functools.partial(_checkpointed, original)
        elif not enable and "forward" in vars(layer):
            del layer.forward
    return model


def _checkpointed(forward, *args):
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False)
    return forward(*args)


def saved_activation_bytes(fn, exclude: nn.Module | None = None) -> int:
    """Run ``fn()`` (a forward pass) and count the bytes autograd keeps for backward, each storage once
    and ``exclude``'s parameters left out (they exist anyway). Returns ``(bytes, fn())``."""
    params = {p.untyped_storage().data_ptr() for p in exclude.parameters()} if exclude is not None else set()
    seen: dict[int, int] = {}

    def pack(t):
        if t.device.type != "meta":
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in params:
                seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


# ---------------------------------------------------------------------------- monitoring a run


def train_with_monitoring(model: nn.Module, optimizer: torch.optim.Optimizer, batches, clip_norm: float | None = None,
                          loss_fn=None) -> dict:
    """Train one step per batch and record what a training dashboard plots, step by step.

    For each batch (a ``(B, T)`` tensor of token ids, used as its own labels): the loss, the global
    gradient norm before clipping, and, per parameter name, ``‖grad‖`` and the update-to-weight
    ratio ``‖ΔW‖ / ‖W‖`` of that step (Karpathy, "Building makemore Part 3": about 1e-3 per step is
    the usual healthy level). ``loss_fn(model, batch)`` replaces the plain causal-LM loss if given.
    Returns ``{"loss": [...], "grad_norm": [...], "param_grad_norms": {name: [...]},
    "update_ratios": {name: [...]}}``; every list has one entry per step.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("batches is empty: pass at least one (B, T) tensor of token ids")
    if clip_norm is not None and clip_norm <= 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm}")
    device = next(model.parameters()).device
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    history = {"loss": [], "grad_norm": [], "param_grad_norms": {n: [] for n in names},
               "update_ratios": {n: [] for n in names}}
    for step, batch in enumerate(batches):
        if not isinstance(batch, torch.Tensor) or batch.ndim != 2:
            raise ValueError(f"batch {step} must be a 2-D tensor of token ids, got "
                             f"{type(batch).__name__} {tuple(getattr(batch, 'shape', ()))}")
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch) if loss_fn is not None else model(batch, labels=batch, return_logits=False).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}: lower the learning rate")
        loss.backward()
        history["loss"].append(loss.item())
        history["grad_norm"].append(global_grad_norm(model.parameters()))
        for name, value in grad_norms_by_param(model).items():
            history["param_grad_norms"][name].append(value)
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        before = snapshot_params(model)
        optimizer.step()
        for name, value in update_to_weight_ratios(before, model).items():
            if name in history["update_ratios"]:
                history["update_ratios"][name].append(value)
    return history


def median_after(values, skip: int = 0) -> float:
    """Median of ``values[skip:]``: a level that ignores the first ``skip`` (warm-up) steps."""
    values = list(values)[skip:]
    if not values:
        raise ValueError(f"nothing left after skipping {skip} values; record more steps or skip fewer")
    return float(torch.tensor(values, dtype=torch.float64).median())
