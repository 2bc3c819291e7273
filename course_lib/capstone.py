"""The capstone: AdamW vs Muon on 128k FineWeb tokens (seed 000's experiment, then beyond it).

    python -m course_lib.capstone                      # full run, compact vocabulary (minutes on a CPU)
    python -m course_lib.capstone --vocab full         # the full 128,256-id vocabulary (slower)
    python -m course_lib.capstone --quick              # a few steps, for a smoke test
    python -m course_lib.capstone --out results/       # where the PNG and JSON go

Three experiments, all from identical initial weights (seed 1234) and identical batches (seed 2024):

1. **seed replica**: seed 000's exact setting — all 128,000 tokens for training, torch.optim.AdamW
   (lr 2e-3, betas (0.9, 0.95), wd 0.01) vs Muon on every parameter (lr 2e-2, momentum 0.95, wd 0.01),
   200 steps, clip 1.0, 5-step moving average of the train loss;
2. **held-out**: the last 10% of the stream held out; AdamW vs seed-style Muon vs the hybrid
   (Muon on hidden matrices, AdamW on embeddings, head and norms), held-out loss every 20 steps;
3. **LR sweep**: each optimizer at several learning rates, so neither is judged at a lucky or unlucky LR.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .data import TokenChunkDataset, VocabMap, batch_stream, load_token_resource, split_tokens
from .models import TransformerConfig, TransformerForCausalLM
from .optim import build_optimizer
from .runtime import describe_device, pick_device, quick_mode, seed_everything
from .tokenizer import FULL_VOCAB_SIZE
from .train import TrainResult, train

# Display names of the optimizers compared (build_optimizer names on the left).
LABELS = {"torch_adamw": "AdamW", "adamw": "AdamW", "muon_all": "Muon (all params, seed)", "muon": "Muon hybrid"}


@dataclass
class CapstoneConfig:
    """Seed 000's settings; ``vocab`` and the sweep are ours."""

    seq_len: int = 128
    batch_size: int = 16
    steps: int = 200
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    attn_implementation: str = "eager"
    model_seed: int = 1234
    data_seed: int = 2024
    clip_norm: float = 1.0
    adamw_lr: float = 2e-3
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 0.01
    muon_lr: float = 2e-2
    momentum: float = 0.95
    vocab: str = "compact"  # "compact" (ids present in the data) or "full" (128,256)
    val_fraction: float = 0.1
    eval_every: int = 20
    window: int = 5
    adamw_sweep: tuple = (1e-3, 2e-3, 4e-3, 8e-3)
    muon_sweep: tuple = (1e-2, 2e-2, 4e-2, 8e-2)

    def __post_init__(self):
        if self.vocab not in ("compact", "full"):
            raise ValueError(f"vocab must be 'compact' or 'full', got {self.vocab!r}")
        if self.steps < 1 or self.batch_size < 1 or self.seq_len < 2:
            raise ValueError("steps and batch_size must be ≥ 1 and seq_len ≥ 2")

    @classmethod
    def quick(cls, **overrides) -> "CapstoneConfig":
        """Settings for tests: a few steps, two sweep points each."""
        base = dict(steps=12, eval_every=6, adamw_sweep=(2e-3, 8e-3), muon_sweep=(2e-2, 8e-2))
        return cls(**{**base, **overrides})


@dataclass
class CapstoneData:
    train_all: TokenChunkDataset  # all tokens (seed replica)
    train: TokenChunkDataset  # first 90%
    val: TokenChunkDataset  # last 10%
    vocab_size: int
    vocab_map: VocabMap | None = field(default=None, repr=False)


def prepare_data(config: CapstoneConfig) -> CapstoneData:
    tokens = load_token_resource().tokens
    vocab_map = None
    vocab_size = FULL_VOCAB_SIZE
    if config.vocab == "compact":
        vocab_map = VocabMap.from_tokens(tokens)
        tokens = vocab_map.to_compact(tokens)
        vocab_size = vocab_map.size
    train_tokens, val_tokens = split_tokens(tokens, config.val_fraction)
    return CapstoneData(
        train_all=TokenChunkDataset(tokens, config.seq_len, vocab_size),
        train=TokenChunkDataset(train_tokens, config.seq_len, vocab_size),
        val=TokenChunkDataset(val_tokens, config.seq_len, vocab_size),
        vocab_size=vocab_size,
        vocab_map=vocab_map,
    )


def build_model(config: CapstoneConfig, vocab_size: int, device=None) -> TransformerForCausalLM:
    """The capstone model, initialised from ``model_seed`` (so every optimizer starts identically)."""
    seed_everything(config.model_seed)
    model_config = TransformerConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.seq_len,
        attn_implementation=config.attn_implementation,
    )
    return TransformerForCausalLM(model_config).to(device or "cpu")


def run_one(config: CapstoneConfig, train_set, optimizer_name: str, lr: float | None = None, val_set=None,
            device=None, progress: bool = True, name: str | None = None) -> TrainResult:
    """Train one model with one optimizer; same weights and same batch order for every call."""
    device = device or pick_device()
    model = build_model(config, train_set.vocab_size, device)
    if optimizer_name in ("adamw", "torch_adamw"):
        lr = config.adamw_lr if lr is None else lr
        optimizer = build_optimizer(optimizer_name, model, lr=lr, betas=config.betas, weight_decay=config.weight_decay)
    elif optimizer_name in ("muon", "muon_all"):
        lr = config.muon_lr if lr is None else lr
        # Newton–Schulz in bf16 as torch.optim.Muon does on GPUs; CPUs without native bf16 matmuls
        # are faster (and more exact) in fp32.
        ns_dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        extra = dict(adamw_lr=config.adamw_lr, betas=config.betas) if optimizer_name == "muon" else {}
        optimizer = build_optimizer(optimizer_name, model, lr=lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay, ns_dtype=ns_dtype, **extra)
    else:
        raise ValueError(f"Unknown optimizer {optimizer_name!r}; use torch_adamw, adamw, muon or muon_all")
    batches = batch_stream(train_set, config.batch_size, config.data_seed)
    result = train(model, optimizer, batches, config.steps, clip_norm=config.clip_norm, val_dataset=val_set,
                   eval_every=config.eval_every if val_set is not None else 0, device=device, progress=progress,
                   name=name or f"{LABELS.get(optimizer_name, optimizer_name)} lr={lr:g}")
    return result


def _summary(result: TrainResult, window: int) -> dict:
    tail = result.train_loss[-window:]
    return {
        "name": result.name,
        "first_loss": result.train_loss[0],
        "final_train_ma": sum(tail) / len(tail),
        "final_val_loss": result.final_val_loss,
        "best_val_loss": min(result.val_loss) if result.val_loss else float("nan"),
        "seconds": result.seconds,
        "tokens_per_s": result.tokens_per_s,
        "step_seconds": result.seconds / len(result.train_loss),
    }


def run_capstone(config: CapstoneConfig, device=None, progress: bool = True, sweep: bool = True,
                 log=print) -> dict:
    """Run the three experiments; returns a JSON-ready dict with every curve and a summary."""
    device = device or pick_device()
    data = prepare_data(config)
    log(f"device: {describe_device(device)} | vocabulary: {config.vocab} ({data.vocab_size:,} ids) | "
        f"train sequences: {len(data.train_all)} (replica) / {len(data.train)} + {len(data.val)} held out")
    out = {"config": asdict(config), "device": describe_device(device), "vocab_size": data.vocab_size,
           "replica": {}, "heldout": {}, "sweep": {"adamw": {}, "muon": {}}}

    # 1. seed replica: all tokens, train loss only.
    for opt in ("torch_adamw", "muon_all"):
        r = run_one(config, data.train_all, opt, device=device, progress=progress, name=f"replica {LABELS[opt]}")
        out["replica"][opt] = {**r.to_dict(), "summary": _summary(r, config.window)}
        log(f"[replica] {LABELS[opt]:<24s} loss {r.train_loss[0]:.3f} -> {_summary(r, config.window)['final_train_ma']:.3f}"
            f" (last-{config.window} mean) | {r.seconds / config.steps:.3f} s/step")

    # 2. held-out comparison (default learning rates).
    for opt in ("torch_adamw", "muon_all", "muon"):
        r = run_one(config, data.train, opt, val_set=data.val, device=device, progress=progress,
                    name=f"held-out {LABELS[opt]}")
        out["heldout"][opt] = {**r.to_dict(), "summary": _summary(r, config.window)}
        log(f"[held-out] {LABELS[opt]:<24s} train MA {_summary(r, config.window)['final_train_ma']:.3f} | "
            f"held-out {r.final_val_loss:.3f}")

    # 3. LR sweep on the held-out split (AdamW and hybrid Muon), reusing the default-LR runs.
    if sweep:
        for family, opt, lrs, default in (("adamw", "torch_adamw", config.adamw_sweep, config.adamw_lr),
                                          ("muon", "muon", config.muon_sweep, config.muon_lr)):
            for lr in lrs:
                if math.isclose(lr, default):
                    r_dict = out["heldout"][opt]
                else:
                    r = run_one(config, data.train, opt, lr=lr, val_set=data.val, device=device, progress=progress)
                    r_dict = {**r.to_dict(), "summary": _summary(r, config.window)}
                out["sweep"][family][f"{lr:g}"] = r_dict
                log(f"[sweep] {family} lr={lr:g}: held-out {r_dict['summary']['final_val_loss']:.3f}")
        out["best"] = {
            fam: min(runs.items(), key=lambda kv: kv[1]["summary"]["final_val_loss"])[0]
            for fam, runs in out["sweep"].items()
        }
        log(f"best learning rates: {out['best']}")
    return out


def plot_capstone(results: dict, path: Path | None = None):
    """Three panels: seed replica (train MA), held-out comparison, LR sweep."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import plot_loss_curves

    window = results["config"]["window"]
    panels = 3 if results.get("sweep", {}).get("adamw") else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2))
    plot_loss_curves({LABELS[k]: v["train_loss"] for k, v in results["replica"].items()}, window, ax=axes[0],
                     title=f"Seed replica: train loss, {window}-step moving average")
    held = results["heldout"]
    plot_loss_curves({LABELS[k]: v["train_loss"] for k, v in held.items()}, window, ax=axes[1],
                     val_curves={LABELS[k]: (v["val_steps"], v["val_loss"]) for k, v in held.items()},
                     title="Held-out split: train MA and held-out loss")
    if panels == 3:
        ax = axes[2]
        for fam, runs in results["sweep"].items():
            lrs = [float(k) for k in runs]
            ax.plot(lrs, [r["summary"]["final_val_loss"] for r in runs.values()], "-o",
                    label="AdamW" if fam == "adamw" else "Muon hybrid (Muon lr)")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final held-out loss")
        ax.set_title("LR sweep")
        ax.grid(True, alpha=0.25)
        ax.legend()
    fig.suptitle(f"AdamW vs Muon on 128k FineWeb tokens ({results['config']['vocab']} vocabulary, "
                 f"{results['vocab_size']:,} ids, {results['config']['steps']} steps)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="AdamW vs Muon on 128k FineWeb tokens (the course capstone).")
    parser.add_argument("--vocab", choices=("compact", "full"), default="compact")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 200)")
    parser.add_argument("--quick", action="store_true", help="a few steps only (also set by COURSE_QUICK=1)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the learning-rate sweep")
    parser.add_argument("--out", type=Path, default=Path("outputs/capstone"), help="folder for the PNG and JSON")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    config = CapstoneConfig.quick(vocab=args.vocab) if (args.quick or quick_mode()) else CapstoneConfig(vocab=args.vocab)
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = run_capstone(config, device=pick_device(args.device), progress=not args.no_progress,
                           sweep=not args.no_sweep)
    results["wall_seconds"] = time.perf_counter() - start
    stem = f"capstone_{config.vocab}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    plot_capstone(results, args.out / f"{stem}.png")
    print(f"wrote {args.out / (stem + '.json')} and {args.out / (stem + '.png')} in {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
