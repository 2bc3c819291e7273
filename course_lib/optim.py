"""Optimizers written out by hand: small pure update functions plus thin ``torch.optim.Optimizer`` classes.

- ``AdamW``: Kingma & Ba 2015 (Adam) with the decoupled weight decay of Loshchilov & Hutter 2019;
  equal to ``torch.optim.AdamW`` bit for bit.
- ``Muon``: momentum, then Newton–Schulz orthogonalization of each update matrix (Jordan et al. 2024,
  github.com/KellerJordan/Muon); follows ``torch.optim.Muon`` step for step.
- ``MuonWithAdamW``: Muon for the hidden matrices, AdamW for embeddings, the LM head and 1-D parameters
  (Jordan et al. 2024; Liu et al. 2025, "Muon is Scalable for LLM Training").
- ``Lion``: sign of an interpolated momentum (Chen et al. 2023); equal to ``lion_pytorch.Lion`` bit for bit.

``build_optimizer(name, model)`` makes any of them by class name.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .validate import reject_unknown, require_bool, require_number

# Quintic Newton–Schulz coefficients (Jordan et al. 2024); the same as torch.optim.Muon's defaults.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def _check_hparams(lr, betas=None, eps=None, weight_decay=None, momentum=None) -> None:
    """Reject invalid hyperparameters where they are given, quoting the value (and its type when it is
    not a number): a string, an infinity or a NaN would otherwise only show up as NaN weights later."""
    require_number("lr", lr, at_least=0.0)
    if betas is not None:
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            require_number(f"betas[{i}]", beta, at_least=0.0, below=1.0)
    if eps is not None:
        require_number("eps", eps, at_least=0.0)
    if weight_decay is not None:
        require_number("weight_decay", weight_decay, at_least=0.0)
    if momentum is not None:
        require_number("momentum", momentum, at_least=0.0, below=1.0)


# ------------------------------------------------------------------------------------------- AdamW


def adamw_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """One AdamW step on one tensor, in place. ``step`` counts from 1.

    Decoupled decay first (θ ← θ·(1 − lr·λ)), then the moments, then the bias-corrected step
    θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε). The operation order is torch.optim.AdamW's, which
    makes the result bitwise identical to it.
    """
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


def adamw_update_foreach(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps, weight_decay):
    """``adamw_update`` on lists of tensors with one ``torch._foreach_*`` kernel per operation.

    Same arithmetic, far fewer kernel launches: this is how torch.optim.AdamW(foreach=True) runs.
    All tensors in the lists share one ``step``.
    """
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, -lr / bias_correction1)


class AdamW(torch.optim.Optimizer):
    """AdamW with torch.optim.AdamW's signature and results.

    ``foreach=True`` (default) updates all tensors of a group together; ``foreach=False`` loops over
    tensors with ``adamw_update``. Both give the same numbers.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, foreach=True):
        _check_hparams(lr, betas=betas, eps=eps, weight_decay=weight_decay)
        require_bool("foreach", foreach)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _adamw_group_step(self.state, group)
        return loss


def _adamw_group_step(opt_state, group) -> None:
    """AdamW on every parameter of one param group that has a gradient."""
    beta1, beta2 = group["betas"]
    hp = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"])
    by_step: dict[int, list] = {}  # foreach: tensors that share a step count are updated together
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError("AdamW does not support sparse gradients")
        state = opt_state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        if group["foreach"]:
            by_step.setdefault(state["step"], []).append(p)
        else:
            adamw_update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], **hp)
    for step, ps in by_step.items():
        adamw_update_foreach(ps, [p.grad for p in ps], [opt_state[p]["exp_avg"] for p in ps],
                             [opt_state[p]["exp_avg_sq"] for p in ps], step, **hp)


# -------------------------------------------------------------------------------------------- Muon


def newton_schulz(G: Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, eps: float = 1e-7, dtype=None) -> Tensor:
    """Approximately orthogonalize a matrix: return ≈ U·S'·Vᵀ where G = U·S·Vᵀ and S' ≈ 1.

    The quintic iteration X ← aX + b(XXᵀ)X + c(XXᵀ)²X is tuned to push small singular values up
    fast, not to converge: after 5 steps the singular values sit roughly in [0.7, 1.2] instead of
    exactly 1, which costs nothing in training and saves many iterations (Jordan et al. 2024).
    G is first divided by its Frobenius norm so every singular value is ≤ 1. Works on the wider
    orientation (rows ≤ cols) so XXᵀ is the small Gram matrix. ``dtype`` defaults to bfloat16 as in
    torch.optim.Muon; pass torch.float32 for a more exact result.
    """
    if G.ndim != 2:
        raise ValueError(f"newton_schulz expects a 2-D matrix, got shape {tuple(G.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    a, b, c = coefficients
    X = G.to(torch.bfloat16 if dtype is None else dtype)
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        gram = X @ X.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b·A + c·A²
        X = torch.addmm(X, poly, X, beta=a)  # a·X + (b·A + c·A²)·X
    return X.T if transposed else X


def muon_lr_scale(shape, adjust_lr_fn: str | None = "original") -> float:
    """Shape-based LR multiplier. ``"original"``: √max(1, rows/cols) (Jordan et al.);
    ``"match_rms_adamw"``: 0.2·√max(rows, cols), which makes the update RMS about AdamW's (Liu et al. 2025)."""
    rows, cols = (1, shape[0]) if len(shape) == 1 else (shape[0], math.prod(shape[1:]))
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"Unknown adjust_lr_fn {adjust_lr_fn!r}; use 'original' or 'match_rms_adamw'")


def _check_muon_group(group: dict) -> None:
    """Validate one Muon param group (``Muon`` and ``MuonWithAdamW`` both call it on every group they
    add): its hyperparameters, ``ns_steps`` stored as an int, and that every parameter is a tensor
    Muon can orthogonalize (at least one dimension and one entry)."""
    _check_hparams(group["lr"], weight_decay=group["weight_decay"], momentum=group["momentum"], eps=group["eps"])
    group["ns_steps"] = require_number("ns_steps", group["ns_steps"], at_least=0, integer=True)
    require_bool("nesterov", group["nesterov"])
    muon_lr_scale((2, 2), group["adjust_lr_fn"])  # validates the name
    if group["ns_dtype"] is not None and not isinstance(group["ns_dtype"], torch.dtype):
        raise TypeError(f"ns_dtype must be a torch dtype (e.g. torch.float32) or None, got {group['ns_dtype']!r}")
    for p in group["params"]:
        if p.ndim == 0 or p.numel() == 0:
            raise ValueError(
                f"Muon cannot update a parameter of shape {tuple(p.shape)}: it orthogonalizes matrices, so it "
                "accepts tensors with at least one dimension and one entry (1-D is treated as a 1×n row, N-D as "
                "(shape[0], rest)). Give scalars and empty tensors to AdamW, e.g. with MuonWithAdamW.for_model."
            )


def muon_update(param, grad, momentum_buffer, lr, momentum, weight_decay, nesterov=True, ns_steps=5,
                adjust_lr_fn="original", ns_dtype=None, eps=1e-7) -> None:
    """One Muon step on one parameter, in place (the order of torch.optim.Muon).

    buf ← β·buf + (1−β)·g;  u = lerp(g, buf, β) (Nesterov) or buf;  O = NS(u);
    θ ← θ·(1 − lr·λ) − lr·scale(shape)·O. A 1-D parameter is treated as a 1×n row, and a >2-D one
    as (shape[0], rest), so "Muon on every parameter" is well defined.
    """
    momentum_buffer.lerp_(grad, 1 - momentum)
    update = grad.lerp(momentum_buffer, momentum) if nesterov else momentum_buffer
    matrix = update.reshape(1, -1) if update.ndim == 1 else update.reshape(update.shape[0], -1)
    ortho = newton_schulz(matrix, ns_steps, eps=eps, dtype=ns_dtype).reshape(param.shape)
    param.mul_(1 - lr * weight_decay)
    param.add_(ortho, alpha=-lr * muon_lr_scale(param.shape, adjust_lr_fn))


class Muon(torch.optim.Optimizer):
    """Muon with torch.optim.Muon's keyword arguments (without ``ns_coefficients``, plus ``ns_dtype``), except the
    defaults ``lr`` = 0.02 and ``weight_decay`` = 0.01 (torch: 1e-3 and 0.1; 0.02 and 0.01 are the example in
    github.com/KellerJordan/Muon's README). Unlike torch's class it also accepts 1-D and >2-D
    parameters (see ``muon_update``); for a real model, give it only the hidden matrices and use
    ``MuonWithAdamW`` for the rest."""

    def __init__(self, params, lr=2e-2, weight_decay=0.01, momentum=0.95, nesterov=True, ns_steps=5,
                 adjust_lr_fn="original", ns_dtype=None, eps=1e-7):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype, eps=eps)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """torch fills in the defaults; then the group is checked (hyperparameters and shapes)."""
        super().add_param_group(param_group)
        _check_muon_group(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _muon_group_step(self.state, group)
        return loss


def _muon_group_step(opt_state, group) -> None:
    """Muon on every parameter of one param group that has a gradient."""
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(
                f"Muon got a sparse gradient for a parameter of shape {tuple(p.shape)}: it orthogonalizes dense "
                "matrices only. Build the embedding with sparse=False (nn.Embedding's default)."
            )
        state = opt_state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
        muon_update(p, p.grad, state["momentum_buffer"], group["lr"], group["momentum"],
                    group["weight_decay"], group["nesterov"], group["ns_steps"],
                    group["adjust_lr_fn"], group["ns_dtype"], group["eps"])


# ----------------------------------------------------------------------------------- MuonWithAdamW


def is_muon_param(name: str, param: Tensor, model: nn.Module | None = None) -> bool:
    """Hidden weight matrices go to Muon; embeddings, the LM head and 1-D tensors go to AdamW.

    Embedding rows are looked up, not multiplied, so orthogonalizing their update has no meaning;
    the LM head is left to AdamW by common practice (Jordan et al. 2024), and vectors have no
    matrix structure to orthogonalize.
    """
    if param.ndim < 2:
        return False
    if model is not None:
        embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        head = getattr(model, "lm_head", None)
        if id(param) in embeddings or (head is not None and param is head.weight):
            return False
    return not any(key in name for key in ("embed", "lm_head", "wte", "wpe"))


def split_params_for_muon(model: nn.Module):
    """(muon_params, adamw_params) following ``is_muon_param``; shared weights counted once."""
    muon, adamw, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (muon if is_muon_param(name, p, model) else adamw).append(p)
    return muon, adamw


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for the hidden matrices, AdamW for everything else, in one optimizer (the design of Keller Jordan's
    ``MuonWithAuxAdam``: param groups flagged ``use_muon``; the arithmetic is torch's).

    Each param group carries ``use_muon``; ``MuonWithAdamW.for_model(model, ...)`` builds the two groups
    with ``split_params_for_muon``. The result equals ``torch.optim.Muon`` on the hidden matrices plus
    ``torch.optim.AdamW`` on the rest, bit for bit; one object just means one ``step()``, one LR
    scheduler and one ``state_dict()``.
    """

    # The keys a param group may carry, with their defaults: Muon's are ``Muon``'s; AdamW's are the
    # capstone's (lr 2e-3, betas (0.9, 0.95), weight decay 0.01).
    MUON_DEFAULTS = dict(lr=2e-2, momentum=0.95, weight_decay=0.01, nesterov=True, ns_steps=5,
                         adjust_lr_fn="original", ns_dtype=None, eps=1e-7)
    ADAMW_DEFAULTS = dict(lr=2e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01, foreach=True)
    COMMON_KEYS = ("params", "use_muon", "name", "initial_lr")  # initial_lr: set by LR schedulers

    def __init__(self, param_groups):
        super().__init__(list(param_groups), {})

    def add_param_group(self, param_group: dict) -> None:
        """Fill in the defaults of the group's kind and reject unknown keys and invalid values: a
        misspelled keyword (``nestrov=False``) would otherwise sit in the group, silently ignored."""
        g = dict(param_group)
        g["use_muon"] = require_bool("use_muon", g.get("use_muon", False))
        defaults = self.MUON_DEFAULTS if g["use_muon"] else self.ADAMW_DEFAULTS
        kind = "a Muon param group (use_muon=True)" if g["use_muon"] else "an AdamW param group (use_muon=False)"
        reject_unknown(f"MuonWithAdamW: {kind}", g, (*defaults, *self.COMMON_KEYS))
        for key, value in defaults.items():
            g.setdefault(key, value)
        super().add_param_group(g)
        g = self.param_groups[-1]
        if g["use_muon"]:
            _check_muon_group(g)
        else:
            _check_hparams(g["lr"], betas=g["betas"], eps=g["eps"], weight_decay=g["weight_decay"])
            require_bool("foreach", g["foreach"])

    @classmethod
    def for_model(cls, model: nn.Module, muon_lr=2e-2, adamw_lr=2e-3, momentum=0.95, betas=(0.9, 0.95),
                  weight_decay=0.01, adamw_weight_decay=None, nesterov=True, ns_steps=5, adjust_lr_fn="original",
                  ns_dtype=None, eps=1e-7):
        """Muon (``muon_lr``, ``momentum``, ``nesterov``, ``ns_steps``, ``adjust_lr_fn``, ``ns_dtype``, ``eps``)
        on the hidden matrices, AdamW (``adamw_lr``, ``betas``) on the rest; ``weight_decay`` for both unless
        ``adamw_weight_decay`` is given."""
        muon_params, adamw_params = split_params_for_muon(model)
        groups = [dict(params=muon_params, use_muon=True, lr=muon_lr, momentum=momentum, weight_decay=weight_decay,
                       nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype, eps=eps)]
        if adamw_params:
            groups.append(dict(params=adamw_params, use_muon=False, lr=adamw_lr, betas=tuple(betas),
                               weight_decay=weight_decay if adamw_weight_decay is None else adamw_weight_decay))
        return cls(groups)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                _muon_group_step(self.state, group)
            else:
                _adamw_group_step(self.state, group)
        return loss


# -------------------------------------------------------------------------------------------- Lion


def lion_update(param: Tensor, grad: Tensor, exp_avg: Tensor, lr: float, beta1: float, beta2: float,
                weight_decay: float) -> None:
    """One Lion step on one tensor, in place (Chen et al. 2023, "Symbolic Discovery of Optimization
    Algorithms", Algorithm 2).

    θ ← θ·(1 − lr·λ);  θ ← θ − lr·sign(β₁·m + (1−β₁)·g);  m ← β₂·m + (1−β₂)·g.
    The sign is taken of an interpolation that uses β₁; the momentum kept for the next step uses β₂.
    Every coordinate moves by exactly lr (or 0 where the interpolation is exactly 0). The operation
    order is lion-pytorch's, which makes the result bitwise identical to ``lion_pytorch.Lion``.
    """
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    update = exp_avg.clone().mul_(beta1).add_(grad, alpha=1 - beta1).sign_()
    param.add_(update, alpha=-lr)
    exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)


class Lion(torch.optim.Optimizer):
    """Lion with lion-pytorch's signature and results: one state tensor (``exp_avg``) per parameter,
    half of AdamW's optimizer memory. Typical settings: lr 3–10× smaller than AdamW's and weight decay
    3–10× larger, so that lr·λ stays about the same (Chen et al. 2023, §5)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        _check_hparams(lr, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lion does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                lion_update(p, p.grad, state["exp_avg"], group["lr"], beta1, beta2, group["weight_decay"])
        return loss


# --------------------------------------------------------------------------------- build_optimizer


OPTIMIZER_NAMES = ("AdamW", "torch.optim.AdamW", "Muon", "MuonWithAdamW", "Lion")

# The keyword arguments build_optimizer passes on for each name (besides ``lr``).
_KEYWORDS = {
    "adamw": ("betas", "eps", "weight_decay", "foreach"),
    "torch.optim.adamw": ("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable",
                          "differentiable", "fused"),
    "muon": ("momentum", "weight_decay", "nesterov", "ns_steps", "adjust_lr_fn", "ns_dtype", "eps"),
    "muonwithadamw": ("adamw_lr", "momentum", "betas", "weight_decay", "adamw_weight_decay", "nesterov", "ns_steps",
                      "adjust_lr_fn", "ns_dtype", "eps"),
    "lion": ("betas", "weight_decay"),
}


def build_optimizer(name: str, model: nn.Module, lr: float | None = None, **kwargs) -> torch.optim.Optimizer:
    """The optimizer class called ``name`` (case-insensitive) for ``model``'s trainable parameters.

    - ``"AdamW"`` (this module's) and ``"torch.optim.AdamW"``: the capstone's defaults, lr 2e-3,
      betas (0.9, 0.95), weight decay 0.01.
    - ``"Muon"``: Muon on every parameter, embeddings and norms included (a 1-D tensor is a 1×n matrix); lr 2e-2.
    - ``"MuonWithAdamW"``: ``MuonWithAdamW.for_model``; ``lr`` is Muon's (2e-2), ``adamw_lr`` the rest's (2e-3).
    - ``"Lion"``: ``Lion``'s own defaults (lr 1e-4, betas (0.9, 0.99), no weight decay).

    Other keyword arguments go to the class; a misspelled one raises TypeError with a guess.
    """
    key = name.lower()
    if key not in _KEYWORDS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZER_NAMES)}")
    reject_unknown(f"build_optimizer({name!r})", kwargs, _KEYWORDS[key])
    params = [p for p in model.parameters() if p.requires_grad]
    if key in ("adamw", "torch.optim.adamw"):
        cls = AdamW if key == "adamw" else torch.optim.AdamW
        kwargs = {"betas": (0.9, 0.95), "weight_decay": 0.01, **kwargs}
        return cls(params, lr=2e-3 if lr is None else lr, **kwargs)
    if key == "muon":
        return Muon(params, lr=2e-2 if lr is None else lr, **kwargs)
    if key == "muonwithadamw":
        return MuonWithAdamW.for_model(model, muon_lr=2e-2 if lr is None else lr, **kwargs)
    return Lion(params, lr=1e-4 if lr is None else lr, **kwargs)
