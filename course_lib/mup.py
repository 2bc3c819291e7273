"""Maximal update parametrization (μP) for Adam, on a small width-scalable transformer.

μP (Yang & Hu 2021, "Tensor Programs IV", arXiv:2011.14522; in the form of Yang et al. 2022, "Tensor Programs V",
arXiv:2203.03466, Table 3 / Table 8 for Adam) chooses, for every
parameter, an initialization scale, an Adam learning-rate multiplier and a forward multiplier so that
every activation moves by Θ(1) per step whatever the width. Then the best learning rate found on a
narrow model transfers to a wide one. Here everything is relative to a ``base_width`` (μP equals the
standard parametrization (SP) there), with ``width_mult = width / base_width``:

================  =====================  =====================  ======================
role              init std               Adam LR multiplier     forward multiplier
================  =====================  =====================  ======================
embedding         1 (constant)           1                      1
hidden matrix     1/√fan_in              1/width_mult           1
readout (output)  √(width_mult/fan_in)   1                      1/width_mult
================  =====================  =====================  ======================

and attention logits are scaled by ``√base_head_dim / head_dim`` (∝ 1/d) instead of 1/√d. Norm gains
start at 1 with LR multiplier 1. SP is the same model with every multiplier 1, readout std 1/√fan_in
and attention scale 1/√d. The multipliers agree with Microsoft's ``mup`` package (``MuReadout`` +
``set_base_shapes`` + ``MuAdam``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .models import RMSNorm, apply_rope, rope_cos_sin

ROLES = ("embedding", "hidden", "readout")


def mup_param_settings(role: str, fan_in: int, width_mult: float) -> tuple[float, float, float]:
    """μP for Adam: ``(init_std, lr_multiplier, forward_multiplier)`` of a weight with this role."""
    if fan_in < 1 or width_mult <= 0:
        raise ValueError(f"need fan_in ≥ 1 and width_mult > 0, got {fan_in}, {width_mult}")
    if role == "embedding":
        return 1.0, 1.0, 1.0
    if role == "hidden":
        return 1.0 / math.sqrt(fan_in), 1.0 / width_mult, 1.0
    if role == "readout":
        return math.sqrt(width_mult / fan_in), 1.0, 1.0 / width_mult
    raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def sp_param_settings(role: str, fan_in: int, width_mult: float) -> tuple[float, float, float]:
    """Standard parametrization: fan-in init, one learning rate, no multipliers."""
    if fan_in < 1 or width_mult <= 0:
        raise ValueError(f"need fan_in ≥ 1 and width_mult > 0, got {fan_in}, {width_mult}")
    if role == "embedding":
        return 1.0, 1.0, 1.0
    if role in ("hidden", "readout"):
        return 1.0 / math.sqrt(fan_in), 1.0, 1.0
    raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def mup_attention_scale(head_dim: int, base_head_dim: int) -> float:
    """μP attention scale √base_head_dim / head_dim: ∝ 1/d, equal to 1/√d at the base width."""
    if head_dim < 1 or base_head_dim < 1:
        raise ValueError(f"head dims must be ≥ 1, got {head_dim}, {base_head_dim}")
    return math.sqrt(base_head_dim) / head_dim


def sp_attention_scale(head_dim: int, base_head_dim: int) -> float:
    """SP attention scale 1/√head_dim."""
    if head_dim < 1 or base_head_dim < 1:
        raise ValueError(f"head dims must be ≥ 1, got {head_dim}, {base_head_dim}")
    return 1.0 / math.sqrt(head_dim)


PARAMETRIZATIONS = {
    "mup": (mup_param_settings, mup_attention_scale),
    "sp": (sp_param_settings, sp_attention_scale),
}


class _Block(nn.Module):
    def __init__(self, width: int, n_heads: int, mlp_ratio: int, attn_scale: float, eps: float):
        super().__init__()
        self.n_heads, self.head_dim, self.attn_scale = n_heads, width // n_heads, attn_scale
        self.attn_norm = RMSNorm(width, eps)
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)
        self.mlp_norm = RMSNorm(width, eps)
        self.up_proj = nn.Linear(width, mlp_ratio * width, bias=False)
        self.down_proj = nn.Linear(mlp_ratio * width, width, bias=False)

    def forward(self, x, cos, sin):
        b, t, w = x.shape
        h = self.attn_norm(x)
        q, k, v = (p(h).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.attn_scale)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, w))
        return x + self.down_proj(F.gelu(self.up_proj(self.mlp_norm(x))))


class WidthScalableTransformer(nn.Module):
    """A pre-norm causal transformer whose width can grow with the number of heads fixed (so the
    head dimension grows too), built in μP (``parametrization="mup"``) or SP form.

    ``settings_fn(role, fan_in, width_mult)`` and ``attention_scale_fn(head_dim, base_head_dim)``
    override the parametrization (the μP exercise plugs in here). ``self.roles`` maps each parameter
    name to its role ("embedding", "hidden", "readout" or "vector"), ``self.lr_mults`` to its Adam LR
    multiplier; ``param_groups(lr)`` turns those into optimizer groups.
    """

    def __init__(self, vocab_size: int, width: int, base_width: int, depth: int = 2, n_heads: int = 4,
                 mlp_ratio: int = 4, parametrization: str = "mup", settings_fn=None, attention_scale_fn=None,
                 rope_theta: float = 10000.0, eps: float = 1e-5):
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {sorted(PARAMETRIZATIONS)}, got {parametrization!r}")
        for name, value in (("vocab_size", vocab_size), ("width", width), ("base_width", base_width),
                            ("depth", depth), ("n_heads", n_heads), ("mlp_ratio", mlp_ratio)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % n_heads or base_width % n_heads or (width // n_heads) % 2:
            raise ValueError(f"width={width} and base_width={base_width} must split into {n_heads} even-sized heads")
        default_settings, default_scale = PARAMETRIZATIONS[parametrization]
        settings_fn = settings_fn or default_settings
        attention_scale_fn = attention_scale_fn or default_scale
        self.width, self.base_width, self.width_mult = width, base_width, width / base_width
        self.parametrization, self.rope_theta = parametrization, rope_theta
        head_dim = width // n_heads
        self.attn_scale = float(attention_scale_fn(head_dim, base_width // n_heads))
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(_Block(width, n_heads, mlp_ratio, self.attn_scale, eps) for _ in range(depth))
        self.norm = RMSNorm(width, eps)
        self.readout = nn.Linear(width, vocab_size, bias=False)
        self.roles, self.lr_mults, self.init_stds = {}, {}, {}
        self.output_mult = 1.0
        for name, p in self.named_parameters():
            role = "vector" if p.ndim == 1 else "embedding" if name == "embed.weight" else \
                "readout" if name == "readout.weight" else "hidden"
            self.roles[name] = role
            if role == "vector":
                self.lr_mults[name] = 1.0
                continue
            fan_in = p.shape[1]
            std, lr_mult, out_mult = (float(v) for v in settings_fn(role, fan_in, self.width_mult))
            self.init_stds[name], self.lr_mults[name] = std, lr_mult
            if role == "readout":
                self.output_mult = out_mult
            with torch.no_grad():
                p.normal_(0.0, std)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, return_hidden: bool = False):
        """Logits, or the mean next-token loss when ``labels`` is given (shifted inside, -100 ignored).
        ``return_hidden=True`` also returns the list of activations [embedding, block 1, …, logits]."""
        x = self.embed(input_ids)
        cos, sin = rope_cos_sin(input_ids.shape[1], self.width // self.blocks[0].n_heads, self.rope_theta,
                                x.device, x.dtype)
        hidden = [x]
        for block in self.blocks:
            x = block(x, cos, sin)
            hidden.append(x)
        logits = self.readout(self.norm(x)) * self.output_mult
        hidden.append(logits)
        out = logits
        if labels is not None:
            out = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                  labels[:, 1:].reshape(-1), ignore_index=-100)
        return (out, hidden) if return_hidden else out

    def param_groups(self, lr: float, weight_decay: float = 0.0) -> list[dict]:
        """One optimizer group per distinct LR multiplier: ``lr * multiplier``. With μP, pass
        ``weight_decay`` as the decoupled-AdamW coefficient; ``mup.MuAdamW`` scales it by width_mult
        so that ``lr × weight_decay`` stays the same, and so does this."""
        groups: dict[float, dict] = {}
        for name, p in self.named_parameters():
            mult = self.lr_mults[name]
            g = groups.setdefault(mult, dict(params=[], names=[], lr=lr * mult, lr_mult=mult,
                                             weight_decay=weight_decay / mult))
            g["params"].append(p)
            g["names"].append(name)
        return list(groups.values())


@torch.no_grad()
def activation_scales(model: WidthScalableTransformer, input_ids: torch.Tensor) -> list[float]:
    """Mean |x| of each activation the model reports (embedding, every block, logits)."""
    _, hidden = model(input_ids, return_hidden=True)
    return [h.abs().mean().item() for h in hidden]


def coord_check(widths, batches, parametrization: str = "mup", lr: float = 1e-2, steps: int = 4,
                base_width: int | None = None, vocab_size: int = 1024, seed: int = 0, **model_kwargs) -> dict:
    """The μP coordinate check (Yang et al. 2022, §D): train each width with Adam at the same LR for
    ``steps`` steps on the same batches and record the mean |activation| of every layer after each
    step. Returns ``{width: [[scale per layer] per step 0..steps]}``. Under μP the curves do not move
    with width; under SP the later-step activations (logits first) grow with it."""
    widths = list(widths)
    base_width = base_width or widths[0]
    out = {}
    for width in widths:
        torch.manual_seed(seed)
        model = WidthScalableTransformer(vocab_size, width, base_width, parametrization=parametrization,
                                         **model_kwargs)
        opt = torch.optim.Adam(model.param_groups(lr))
        record = [activation_scales(model, batches[0])]
        for step in range(steps):
            batch = batches[step % len(batches)]
            loss = model(batch, labels=batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            record.append(activation_scales(model, batches[0]))
        out[width] = record
    return out


def lr_sweep(widths, lrs, batches, parametrization: str = "mup", steps: int = 30, base_width: int | None = None,
             vocab_size: int = 1024, seed: int = 0, eval_batches=None, **model_kwargs) -> dict:
    """Train every (width, lr) pair with Adam for ``steps`` steps on the same batches and return
    ``{width: [final loss per lr]}``; the final loss is the mean over ``eval_batches`` (default: the
    mean training loss of the last 5 steps). Diverged runs report ``nan``."""
    widths = list(widths)
    base_width = base_width or widths[0]
    results = {}
    for width in widths:
        losses = []
        for lr in lrs:
            torch.manual_seed(seed)
            model = WidthScalableTransformer(vocab_size, width, base_width, parametrization=parametrization,
                                             **model_kwargs)
            opt = torch.optim.Adam(model.param_groups(lr))
            recent = []
            for step in range(steps):
                batch = batches[step % len(batches)]
                loss = model(batch, labels=batch)
                if not torch.isfinite(loss):
                    recent = [float("nan")]
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                recent = (recent + [loss.item()])[-5:]
            final = sum(recent) / len(recent)
            if eval_batches is not None and math.isfinite(final):
                with torch.no_grad():
                    vals = [model(b, labels=b).item() for b in eval_batches]
                final = sum(vals) / len(vals)
                final = final if math.isfinite(final) else float("nan")
            losses.append(final)
        results[width] = losses
    return results


def best_lr(lrs, losses) -> float:
    """The LR with the lowest finite loss."""
    finite = [(loss, lr) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    if not finite:
        raise ValueError("every run diverged; try smaller learning rates")
    return min(finite)[1]
