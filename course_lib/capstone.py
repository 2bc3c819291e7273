"""The capstone: AdamW vs Muon on 128k FineWeb tokens (seed 000's experiment, then beyond it).

    python -m course_lib.capstone                      # full run, compact vocabulary (minutes on a CPU)
    python -m course_lib.capstone --vocab full         # the full 128,256-id vocabulary (slower)
    python -m course_lib.capstone --quick              # a few steps, for a smoke test
    python -m course_lib.capstone --out results/       # where the PNG and JSON go

Beyond one CPU (notebook 10): one run per optimizer, on any number of processes or GPUs:

    python -m course_lib.capstone --optimizers torch_adamw muon --steps 200 --checkpoint-every 50
    torchrun --standalone --nproc_per_node=2 -m course_lib.capstone --optimizers torch_adamw muon
    python -m course_lib.capstone --resume outputs/capstone/checkpoints/muon.pt   # after a crash
    torchrun --standalone --nproc_per_node=8 -m course_lib.capstone --preset gpt2-small --tokens PATH
    python -m course_lib.capstone --preset gpt2-small --smoke        # the seed-002 shape, 2 steps, CPU ok

Every mode also runs unchanged under torchrun (DistributedDataParallel; only rank 0 writes files).

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
import os
import signal
import sys
import warnings
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from .checkpoint import SeekableBatchStream, load_checkpoint, save_checkpoint, set_rng_state
from .data import TokenChunkDataset, VocabMap, load_token_resource, split_tokens
from .distributed import (DistContext, autocast_dtype_for, barrier, close_distributed, device_peak_flops,
                          init_distributed, plan_batches, replicas_identical, wrap_model)
from .models import TransformerConfig, TransformerForCausalLM
from .optim import build_optimizer
from .results import ResultsFile, check_output_folder
from .runtime import check_device, describe_device, pick_device, quick_mode, seed_everything
from .tokenizer import FULL_VOCAB_SIZE
from .train import TrainResult, check_finite_weights, train
from .validate import require_number

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
    # Factors of 2 around each default; the low ends were added after a 4-point sweep found both optima
    # at its lowest point (more passes over the data favour smaller steps on held-out loss).
    adamw_sweep: tuple = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)
    muon_sweep: tuple = (5e-3, 1e-2, 2e-2, 4e-2, 8e-2)
    # Scaling up (notebook 10). The defaults keep seed 000's single-process run exactly as it was.
    attention_dropout: float = 0.0
    max_micro_batch: int | None = None  # None: each process's share of the batch in one pass
    lr_schedule: str = "constant"  # or "warmup_cosine" (to min_lr_ratio of the peak)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    hybrid_adamw_lr: float | None = None  # AdamW part of the hybrid; None: adamw_lr
    muon_weight_decay: float | None = None  # both groups of the Muon runs; None: weight_decay
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere), "bf16" or "fp32"
    compile: bool = False  # torch.compile the model (GPU; slow to start on a CPU)
    tokens_path: str | None = None  # another token dataset saved like the course's (datasets folder)
    max_eval_sequences: int | None = None  # evaluate on at most this many held-out sequences
    preset: str | None = None

    def __post_init__(self):
        """Check every setting where it is given, quoting the value (a bad one would otherwise surface
        minutes later, or as NaN)."""
        if self.vocab not in ("compact", "full"):
            raise ValueError(f"vocab must be 'compact' or 'full', got {self.vocab!r}")
        for name in ("steps", "batch_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "window"):
            require_number(name, getattr(self, name), at_least=1, integer=True)
        for name in ("model_seed", "data_seed", "eval_every", "warmup_steps"):
            require_number(name, getattr(self, name), at_least=0, integer=True)
        require_number("seq_len", self.seq_len, at_least=2, integer=True)
        for name in ("adamw_lr", "muon_lr", "clip_norm", "weight_decay"):
            require_number(name, getattr(self, name), at_least=0.0)
        for name in ("hybrid_adamw_lr", "muon_weight_decay"):
            if getattr(self, name) is not None:
                require_number(name, getattr(self, name), at_least=0.0)
        require_number("momentum", self.momentum, at_least=0.0, below=1.0)
        require_number("val_fraction", self.val_fraction, at_least=0.0, below=1.0)
        require_number("attention_dropout", self.attention_dropout, at_least=0.0, below=1.0)
        require_number("min_lr_ratio", self.min_lr_ratio, at_least=0.0, at_most=1.0)
        if len(tuple(self.betas)) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            require_number(f"betas[{i}]", beta, at_least=0.0, below=1.0)
        for name in ("adamw_sweep", "muon_sweep"):
            for lr in getattr(self, name):
                require_number(f"a learning rate of {name}", lr, above=0.0)
        if self.lr_schedule not in ("constant", "warmup_cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'warmup_cosine', got {self.lr_schedule!r}")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        for name in ("max_micro_batch", "max_eval_sequences"):
            if getattr(self, name) is not None:
                require_number(name, getattr(self, name), at_least=1, integer=True, hint="or None")
        autocast_dtype_for(torch.device("cpu"), self.precision)  # validates the name
        self.betas = tuple(self.betas)
        self.adamw_sweep, self.muon_sweep = tuple(self.adamw_sweep), tuple(self.muon_sweep)

    @classmethod
    def gpt2_small(cls, **overrides) -> "CapstoneConfig":
        """Seed 002's scale: GPT-2 small's shape (12 layers, 12 heads, width 768, context 1024) in the
        course's Llama-style model (SwiGLU width 2048 gives GPT-2's 7.1M weights per layer; RoPE
        instead of learned positions); global batch 480 sequences (32 × 15 accumulation on one GPU);
        AdamW lr 6e-4, wd 0.1, betas (0.9, 0.95); hybrid: Muon lr 0.02, momentum 0.95 on hidden
        matrices, AdamW lr 3e-4 on the rest, no weight decay in the Muon run (the seed's library
        default); 2,000 warmup steps then cosine to 10%; bf16 autocast and SDPA attention on GPUs.
        Seed 002 trained 40,000 steps on OpenWebText (about 20B tokens): pass ``tokens_path``."""
        base = dict(seq_len=1024, batch_size=480, steps=40_000, hidden_size=768, intermediate_size=2048,
                    num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                    attn_implementation="sdpa", adamw_lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95),
                    muon_lr=0.02, momentum=0.95, hybrid_adamw_lr=3e-4, muon_weight_decay=0.0,
                    lr_schedule="warmup_cosine", warmup_steps=2000, min_lr_ratio=0.1, max_micro_batch=32,
                    eval_every=500, max_eval_sequences=256, window=50, preset="gpt2-small")
        return cls(**{**base, **overrides})

    @classmethod
    def gpt2_small_smoke(cls, **overrides) -> "CapstoneConfig":
        """The same shape for 2 steps of one sequence per micro-batch: checks that it runs, on any device."""
        base = dict(steps=2, batch_size=2, max_micro_batch=1, warmup_steps=1, eval_every=2, max_eval_sequences=2,
                    window=1)
        return cls.gpt2_small(**{**base, **overrides})

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


def load_tokens(path=None) -> torch.Tensor:
    """The course's 128k tokens, or the flat ``input_ids`` of another dataset saved the same way
    (``datasets.Dataset.save_to_disk`` of one row whose ``input_ids`` is the whole token stream)."""
    if path is None:
        return load_token_resource().tokens
    from datasets import load_from_disk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no token dataset at {path}")
    ds = load_from_disk(str(path)).with_format("numpy")
    if "input_ids" not in ds.column_names:
        raise ValueError(f"{path} has columns {ds.column_names}; expected 'input_ids' (like the course's resource)")
    return torch.cat([torch.from_numpy(row["input_ids"].astype("int64")).reshape(-1) for row in ds])


def prepare_data(config: CapstoneConfig) -> CapstoneData:
    tokens = load_tokens(config.tokens_path)
    vocab_map = None
    vocab_size = FULL_VOCAB_SIZE
    if config.vocab == "compact":
        vocab_map = VocabMap.from_tokens(tokens)
        tokens = vocab_map.to_compact(tokens)
        vocab_size = vocab_map.size
    train_tokens, val_tokens = split_tokens(tokens, config.val_fraction)
    if config.max_eval_sequences is not None:
        val_tokens = val_tokens[: config.max_eval_sequences * config.seq_len]
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
        attention_dropout=config.attention_dropout,
    )
    return TransformerForCausalLM(model_config).to(device or "cpu")


def make_optimizer(config: CapstoneConfig, model, optimizer_name: str, lr: float | None = None, device=None):
    """The optimizer of one run, with the config's settings; returns (optimizer, lr).

    torch.optim.AdamW uses its fused kernel (one pass over memory for the whole update) on CPUs and
    CUDA GPUs: on the full 128,256-id vocabulary it steps about 6x faster than foreach on a CPU
    (benchmarks/). On CUDA, Muon's Newton–Schulz runs in bf16 (as torch.optim.Muon does); the
    course's own AdamW is foreach (one kernel per operation for all tensors) everywhere."""
    device_type = torch.device(device or "cpu").type
    cuda = device_type == "cuda"
    if optimizer_name in ("adamw", "torch_adamw"):
        lr = config.adamw_lr if lr is None else lr
        fused = optimizer_name == "torch_adamw" and device_type in ("cpu", "cuda")
        extra = dict(fused=True) if fused else {}
        optimizer = build_optimizer(optimizer_name, model, lr=lr, betas=config.betas, weight_decay=config.weight_decay,
                                    **extra)
    elif optimizer_name in ("muon", "muon_all"):
        lr = config.muon_lr if lr is None else lr
        # Newton–Schulz in bf16 as torch.optim.Muon does on GPUs; CPUs without native bf16 matmuls
        # are faster (and more exact) in fp32.
        ns_dtype = torch.bfloat16 if cuda else torch.float32
        wd = config.weight_decay if config.muon_weight_decay is None else config.muon_weight_decay
        extra = {}
        if optimizer_name == "muon":
            extra = dict(adamw_lr=config.adamw_lr if config.hybrid_adamw_lr is None else config.hybrid_adamw_lr,
                         betas=config.betas)
        optimizer = build_optimizer(optimizer_name, model, lr=lr, momentum=config.momentum,
                                    weight_decay=wd, ns_dtype=ns_dtype, **extra)
    else:
        raise ValueError(f"Unknown optimizer {optimizer_name!r}; use torch_adamw, adamw, muon or muon_all")
    return optimizer, lr


def make_scheduler(config: CapstoneConfig, optimizer):
    """None for a constant LR; LambdaLR(warmup_cosine) otherwise (every group, Muon's included)."""
    if config.lr_schedule == "constant":
        return None
    from .schedules import lambda_lr

    return lambda_lr(optimizer, "warmup_cosine", warmup_steps=config.warmup_steps, total_steps=config.steps,
                     min_ratio=config.min_lr_ratio)


def run_one(config: CapstoneConfig, train_set, optimizer_name: str, lr: float | None = None, val_set=None,
            device=None, progress: bool = True, name: str | None = None, *, dist_context: DistContext | None = None,
            checkpoint_path=None, checkpoint_every: int = 0, resume: dict | None = None,
            crash_after_step: int | None = None) -> TrainResult:
    """Train one model with one optimizer; same weights and same batch order for every call.

    With ``dist_context`` (several processes) the model is wrapped in DistributedDataParallel and
    each process trains on its shard of every global batch. ``checkpoint_path`` + ``checkpoint_every``
    save a resumable checkpoint every that many steps and at the end (rank 0 writes); ``resume`` (a
    loaded checkpoint) continues that run exactly. ``crash_after_step`` kills the process (SIGKILL)
    right after that step, as a power cut would, for tests and demonstrations.
    """
    ctx = dist_context or DistContext()
    require_number("checkpoint_every", checkpoint_every, at_least=0, integer=True, hint="0 saves only at the end")
    if crash_after_step is not None:
        require_number("crash_after_step", crash_after_step, at_least=1, integer=True)
    device = torch.device(device) if device is not None else pick_device()
    raw = build_model(config, train_set.vocab_size, device)
    optimizer, lr = make_optimizer(config, raw, optimizer_name, lr, device)
    scheduler = make_scheduler(config, optimizer)
    name = name or f"{LABELS.get(optimizer_name, optimizer_name)} lr={lr:g}"
    _, accum_steps = plan_batches(config.batch_size, ctx.world_size,
                                  max_micro_batch=config.max_micro_batch or config.batch_size)
    stream = SeekableBatchStream(train_set, config.batch_size, config.data_seed)
    result = None
    if resume is not None:
        raw.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        stream = SeekableBatchStream(train_set, config.batch_size, config.data_seed, resume["data"]["position"])
        result = TrainResult.from_dict(resume["result"])
        set_rng_state(resume["rng"])  # last: building the model above drew from the generators
    model = torch.compile(raw) if config.compile else raw
    model = wrap_model(model, ctx, device)
    extra = {"config": asdict(config), "optimizer_name": optimizer_name, "lr": lr, "name": name,
             "world_size": ctx.world_size, "checkpoint_every": checkpoint_every}

    def save(step, res):
        check_finite_weights(raw, step, name)  # never replace a good checkpoint by one holding NaN
        if ctx.is_main:
            save_checkpoint(checkpoint_path, model=raw, optimizer=optimizer, scheduler=scheduler, step=step,
                            stream=stream, result=res, extra=extra)

    def on_step(step, res):
        if checkpoint_path is not None and checkpoint_every and step % checkpoint_every == 0:
            save(step, res)
        if crash_after_step is not None and step == crash_after_step:
            barrier(ctx)  # every rank has finished the step; then all die together
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    autocast_dtype = autocast_dtype_for(device, config.precision)
    result = train(model, optimizer, stream, config.steps, clip_norm=config.clip_norm, scheduler=scheduler,
                   val_dataset=val_set, eval_every=config.eval_every if val_set is not None else 0, device=device,
                   progress=progress, name=name, result=result, on_step=on_step,
                   accum_steps=accum_steps, dist_context=ctx if ctx.enabled else None, autocast_dtype=autocast_dtype)
    if checkpoint_path is not None and (not checkpoint_every or config.steps % checkpoint_every):
        save(config.steps, result)
    if not replicas_identical(raw, ctx):
        raise RuntimeError(f"{name}: the {ctx.world_size} replicas hold different weights after training")
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
                 log=print, dist_context: DistContext | None = None, results_path: Path | None = None,
                 restart: bool = False) -> dict:
    """Run the three experiments; returns a JSON-ready dict with every curve and a summary.

    With ``results_path`` the JSON is written after every finished run (``course_lib.results``), and
    a file left by an interrupted run with the same settings is continued: its runs are kept, only the
    missing ones are trained (``restart=True`` starts over). Under torchrun pass ``dist_context``:
    every run is data-parallel and only rank 0 logs and writes."""
    device = device or pick_device()
    ctx = dist_context or DistContext()
    log = log if ctx.is_main else (lambda *a, **k: None)
    progress = progress and ctx.is_main
    run_one = partial(_run_one, dist_context=ctx)
    data = prepare_data(config)
    log(f"device: {describe_device(device)} | vocabulary: {config.vocab} ({data.vocab_size:,} ids) | "
        f"train sequences: {len(data.train_all)} (replica) / {len(data.train)} + {len(data.val)} held out")
    header = {"config": asdict(config), "device": describe_device(device), "vocab_size": data.vocab_size,
              "replica": {}, "heldout": {}, "sweep": {"adamw": {}, "muon": {}}}
    results = ResultsFile(results_path if ctx.is_main else None, header, restart=restart, log=log)

    def finished(keys, train_set, opt, **kwargs) -> dict:
        """The run at ``keys``: taken from the results file if it is there, else trained and stored."""
        record = results.get(*keys)
        if record is None:
            r = run_one(config, train_set, opt, device=device, progress=progress, **kwargs)
            record = {**r.to_dict(), "summary": _summary(r, config.window)}
            results.put(keys, record)
        return record

    # 1. seed replica: all tokens, train loss only.
    for opt in ("torch_adamw", "muon_all"):
        r = finished(("replica", opt), data.train_all, opt, name=f"replica {LABELS[opt]}")
        log(f"[replica] {LABELS[opt]:<24s} loss {r['train_loss'][0]:.3f} -> {r['summary']['final_train_ma']:.3f}"
            f" (last-{config.window} mean) | {r['summary']['step_seconds']:.3f} s/step")

    # 2. held-out comparison (default learning rates).
    for opt in ("torch_adamw", "muon_all", "muon"):
        r = finished(("heldout", opt), data.train, opt, val_set=data.val, name=f"held-out {LABELS[opt]}")
        log(f"[held-out] {LABELS[opt]:<24s} train MA {r['summary']['final_train_ma']:.3f} | "
            f"held-out {r['summary']['final_val_loss']:.3f}")

    # 3. LR sweep on the held-out split (AdamW and hybrid Muon), reusing the default-LR runs.
    extra = {}
    if sweep:
        for family, opt, lrs, default in (("adamw", "torch_adamw", config.adamw_sweep, config.adamw_lr),
                                          ("muon", "muon", config.muon_sweep, config.muon_lr)):
            for lr in lrs:
                if math.isclose(lr, default):
                    r = results.get("heldout", opt)
                    results.put(("sweep", family, f"{lr:g}"), r, new_run=False)  # the same run, listed twice
                else:
                    r = finished(("sweep", family, f"{lr:g}"), data.train, opt, lr=lr, val_set=data.val)
                log(f"[sweep] {family} lr={lr:g}: held-out {r['summary']['final_val_loss']:.3f}")
        sweeps = results.get("sweep")
        extra["best"] = {fam: min(runs.items(), key=lambda kv: kv[1]["summary"]["final_val_loss"])[0]
                         for fam, runs in sweeps.items()}
        log(f"best learning rates: {extra['best']}")
        for fam, lr in extra["best"].items():
            if sweep_edge(sweeps[fam], lr):
                log(f"NOTE: {fam}'s best learning rate {lr} is at the edge of its sweep; its optimum may lie beyond it")
    else:
        results.data.pop("best", None)  # from an earlier run of the same settings with a sweep
    return results.finish(**extra)


def sweep_edge(runs_by_lr: dict, best) -> bool:
    """True if ``best`` is the smallest or the largest learning rate swept: the sweep did not bracket
    the optimum, so a comparison at "the best learning rate" may not be one."""
    lrs = sorted(float(lr) for lr in runs_by_lr)
    return len(lrs) > 1 and float(best) in (lrs[0], lrs[-1])


_run_one = run_one


def fit_batch_to_data(config: CapstoneConfig, train_sequences: int, world_size: int = 1, log=print) -> CapstoneConfig:
    """Warn about epochs; shrink the global batch if the data cannot fill one (the 128k tokens hold
    only 125 sequences of 1,024, fewer than seed 002's batch of 480)."""
    if config.batch_size > train_sequences:
        batch = (train_sequences // world_size) * world_size
        if batch < world_size:
            raise ValueError(f"{train_sequences} training sequences cannot feed {world_size} processes")
        log(f"WARNING: the data holds {train_sequences} training sequences of {config.seq_len} tokens, fewer than "
            f"the global batch of {config.batch_size}; using a batch of {batch}. The preset is meant for a larger "
            "token file: pass --tokens PATH.")
        config = replace(config, batch_size=batch, max_micro_batch=min(config.max_micro_batch or batch, batch))
    epochs = config.steps * config.batch_size / train_sequences
    if epochs > 1:
        log(f"WARNING: {config.steps} steps x {config.batch_size} sequences = {epochs:,.1f} passes over the "
            f"{train_sequences} training sequences: the model will memorise them; "
            "compare held-out losses, and use a larger token file (--tokens) for seed 002's experiment.")
    return config


def throughput(config: CapstoneConfig, vocab_size: int, result: TrainResult, device, world_size: int = 1) -> dict:
    """tokens/s (all processes together) and MFU against the device's bf16 peak (None if unknown).
    FLOPs per token: 6 × the matmul weights + 12 × layers × context × width for attention."""
    from .stability import transformer_flops_per_token

    model_config = TransformerConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                                     intermediate_size=config.intermediate_size,
                                     num_hidden_layers=config.num_hidden_layers,
                                     num_attention_heads=config.num_attention_heads,
                                     num_key_value_heads=config.num_key_value_heads,
                                     max_position_embeddings=config.seq_len)
    flops = transformer_flops_per_token(model_config, config.seq_len)
    peak, peak_label = device_peak_flops(torch.device(device))
    achieved = result.tokens_per_s * flops["total"]
    return {"tokens_per_s": result.tokens_per_s, "flops_per_token": flops["total"], "achieved_flops": achieved,
            "peak_flops_per_device": peak, "peak": peak_label, "world_size": world_size,
            "mfu": achieved / (peak * world_size) if peak else None}


def run_pair(config: CapstoneConfig, optimizers=("torch_adamw", "muon"), device=None, progress: bool = True,
             log=print, dist_context: DistContext | None = None, out: Path | None = None,
             checkpoint_every: int = 0, crash_after_step: int | None = None, results_path: Path | None = None,
             restart: bool = False) -> dict:
    """One run per optimizer on the held-out split (the scaled-up comparison of notebook 10).
    Rank 0 writes ``run_<optimizer>.json`` after each run and keeps checkpoints under ``out/checkpoints``;
    with ``results_path`` the combined JSON is also written after each run and continued as in
    ``run_capstone``."""
    ctx = dist_context or DistContext()
    device = device or pick_device()
    log = log if ctx.is_main else (lambda *a, **k: None)
    data = prepare_data(config)
    config = fit_batch_to_data(config, len(data.train), ctx.world_size, log)
    micro, accum = plan_batches(config.batch_size, ctx.world_size, max_micro_batch=config.max_micro_batch or config.batch_size)
    with torch.device("meta"):  # count parameters without allocating them
        probe = TransformerForCausalLM(TransformerConfig(
            vocab_size=data.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads, max_position_embeddings=config.seq_len))
    log(f"device: {describe_device(device)} x {ctx.world_size} process(es) | precision: "
        f"{autocast_dtype_for(device, config.precision) or torch.float32} | parameters: {probe.num_parameters():,} | "
        f"vocabulary: {config.vocab} ({data.vocab_size:,} ids)")
    log(f"global batch {config.batch_size} sequences = {micro} (micro-batch) x {accum} (accumulation) x "
        f"{ctx.world_size} (processes) = {config.batch_size * config.seq_len:,} tokens per step")
    header = {"config": asdict(config), "device": describe_device(device), "world_size": ctx.world_size,
              "micro_batch": micro, "accum_steps": accum, "vocab_size": data.vocab_size, "runs": {}}
    results = ResultsFile(results_path if ctx.is_main else None, header, restart=restart, log=log)
    for opt in optimizers:
        if results.get("runs", opt) is not None:
            log(f"[{LABELS.get(opt, opt)}] already in {results_path}: not trained again")
            continue
        ckpt = out / "checkpoints" / f"{opt}.pt" if out is not None and checkpoint_every else None
        r = run_one(config, data.train, opt, val_set=data.val, device=device, progress=progress and ctx.is_main,
                    name=LABELS.get(opt, opt), dist_context=ctx, checkpoint_path=ckpt,
                    checkpoint_every=checkpoint_every, crash_after_step=crash_after_step)
        results.put(("runs", opt), record_run(config, data.vocab_size, r, device, ctx, out, opt, log))
    return results.finish()


def record_run(config, vocab_size, result: TrainResult, device, ctx: DistContext, out, opt, log=print) -> dict:
    """The run's JSON record (history, summary, throughput); rank 0 writes ``out/run_<opt>.json``."""
    speed = throughput(config, vocab_size, result, device, ctx.world_size)
    record = {**result.to_dict(), "summary": _summary(result, config.window), "throughput": speed,
              "world_size": ctx.world_size, "written_by_rank": ctx.rank, "replicas_identical": True}
    mfu_text = f"MFU {100 * speed['mfu']:.1f}% of {speed['peak']}" if speed["mfu"] is not None else speed["peak"]
    log(f"[{result.name}] loss {result.train_loss[0]:.3f} -> {record['summary']['final_train_ma']:.3f} (last "
        f"{config.window}) | held-out {result.final_val_loss:.3f} | {speed['tokens_per_s']:,.0f} tokens/s | {mfu_text}")
    if ctx.is_main and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"run_{opt}.json").write_text(json.dumps(record, indent=1))
    return record


def results_table(results: dict) -> str:
    """A Markdown table of a ``run_capstone`` result: final train loss (moving average), held-out
    loss and time per step of every run, and each optimizer at its best swept learning rate."""
    cfg = results["config"]
    window = cfg["window"]
    lines = [f"| experiment | optimizer | lr | train loss, last {window} steps | held-out loss, end | "
             "lowest held-out (step) | s/step |",
             "|---|---|---:|---:|---:|---:|---:|"]

    def row(experiment, key, lr, run):
        s = run["summary"]
        val = lowest = "—"
        if run["val_loss"]:
            i = min(range(len(run["val_loss"])), key=run["val_loss"].__getitem__)
            val, lowest = f"{s['final_val_loss']:.3f}", f"{run['val_loss'][i]:.3f} ({run['val_steps'][i]})"
        lines.append(f"| {experiment} | {LABELS[key]} | {lr:g} | {s['final_train_ma']:.3f} | {val} | {lowest} | "
                     f"{s['step_seconds']:.3f} |")

    default_lr = {"torch_adamw": cfg["adamw_lr"], "muon_all": cfg["muon_lr"], "muon": cfg["muon_lr"]}
    for key, run in results["replica"].items():
        row("seed replica (all tokens)", key, default_lr[key], run)
    for key, run in results["heldout"].items():
        row("held-out split, seed LRs", key, default_lr[key], run)
    for family, key in (("adamw", "torch_adamw"), ("muon", "muon")):
        best = results.get("best", {}).get(family)
        if best is not None:
            row("held-out split, best swept LR", key, float(best), results["sweep"][family][best])
    return "\n".join(lines)


def plot_capstone(results: dict, path: Path | None = None):
    """Three panels: seed replica (train MA), held-out comparison, LR sweep."""
    from .plots import finish_figure, plot_loss_curves, pyplot_for

    plt = pyplot_for(path)
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
    return finish_figure(fig, path)


def _int_at_least(low: int):
    """An argparse type: an integer ≥ ``low``; anything else is a usage error that quotes the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be ≥ {low}, got {text!r}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.capstone",
                                     description="AdamW vs Muon on 128k FineWeb tokens (the course capstone).",
                                     epilog="Runs unchanged under torchrun --standalone --nproc_per_node=N "
                                            "(DistributedDataParallel, gloo on CPU, NCCL on GPU).")
    parser.add_argument("--vocab", choices=("compact", "full"), default="compact")
    parser.add_argument("--steps", type=_int_at_least(1), default=None, help="optimizer steps per run (default 200)")
    parser.add_argument("--quick", action="store_true", help="a few steps only (also set by COURSE_QUICK=1)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the learning-rate sweep")
    parser.add_argument("--out", type=Path, default=Path("outputs/capstone"),
                        help="folder for the PNG and JSON; the JSON is written after every finished run, and "
                             "running the same command again continues from it")
    parser.add_argument("--restart", action="store_true",
                        help="train every run again, overwriting the results in --out")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--no-progress", action="store_true")
    scale = parser.add_argument_group("scaling up (notebook 10): one run per optimizer, resumable")
    scale.add_argument("--optimizers", nargs="+", choices=("torch_adamw", "adamw", "muon", "muon_all"),
                       help="run only these optimizers, once each, on the held-out split")
    scale.add_argument("--preset", choices=("gpt2-small",), help="seed 002's scale (GPU): GPT-2 small shape, "
                       "context 1024, batch 480, warmup + cosine; AdamW vs hybrid Muon")
    scale.add_argument("--smoke", action="store_true", help="with --preset: 2 tiny steps, allowed on a CPU")
    scale.add_argument("--tokens", type=Path, default=None, help="another token dataset saved like the course's")
    scale.add_argument("--batch-size", type=_int_at_least(1), default=None,
                       help="global batch (sequences per optimizer step)")
    scale.add_argument("--micro-batch", type=_int_at_least(1), default=None,
                       help="largest micro-batch per process; the rest is gradient accumulation")
    scale.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=None,
                       help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    scale.add_argument("--compile", action="store_true", help="torch.compile the model (off by default)")
    scale.add_argument("--checkpoint-every", type=_int_at_least(0), default=0,
                       help="save a resumable checkpoint every K steps (0: only at the end)")
    scale.add_argument("--resume", type=Path, default=None, help="continue the run saved in this checkpoint")
    scale.add_argument("--crash-after-step", type=_int_at_least(1), default=None,
                       help="for tests and demos: kill the process (SIGKILL) right after this step")
    return parser


def config_from_args(args) -> CapstoneConfig:
    quick = args.quick or quick_mode()
    if args.preset:
        make = CapstoneConfig.gpt2_small_smoke if args.smoke else CapstoneConfig.gpt2_small
        config = make(vocab=args.vocab)
    else:
        config = CapstoneConfig.quick(vocab=args.vocab) if quick else CapstoneConfig(vocab=args.vocab)
    changes = {k: v for k, v in dict(steps=args.steps, batch_size=args.batch_size, max_micro_batch=args.micro_batch,
                                     precision=args.precision).items() if v is not None}
    if args.tokens is not None:
        changes["tokens_path"] = str(args.tokens)
    if args.compile:
        changes["compile"] = True
    if "steps" in changes and config.warmup_steps > changes["steps"]:
        changes["warmup_steps"] = max(0, changes["steps"] // 20)
    return replace(config, **changes)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke and not args.preset:
        parser.error("--smoke goes with --preset gpt2-small")
    if (args.checkpoint_every or args.crash_after_step) and not (args.optimizers or args.preset or args.resume):
        parser.error("--checkpoint-every and --crash-after-step work with --optimizers, --preset or --resume")
    if args.resume is not None and not args.resume.is_file():
        parser.error(f"--resume {args.resume}: no such checkpoint file")
    if args.tokens is not None and not args.tokens.is_dir():
        parser.error(f"--tokens {args.tokens}: no such folder (a dataset saved with datasets' save_to_disk)")
    # Everything that can be checked is checked before the first step: a bad value must not cost a run.
    try:
        device = check_device(args.device, source="--device") if args.device else pick_device()
        config = None if args.resume is not None else config_from_args(args)
        ckpt = load_checkpoint(args.resume) if args.resume is not None else None  # CheckpointError if damaged
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if args.preset and device.type != "cuda" and not args.smoke:
        parser.error(f"--preset {args.preset} trains a model of about 100M parameters on 1,024-token sequences: "
                     f"it needs a GPU (this process sees {device.type}). Run `--preset {args.preset} --smoke` "
                     "to check that it starts on this machine.")
    ctx, device = init_distributed(device)
    try:
        if ctx.is_main:
            try:
                check_output_folder(args.out)
            except ValueError as err:
                parser.error(str(err))
        if args.resume is not None:
            return _main_resume(args, ckpt, ctx, device)
        return _main_run(args, config, ctx, device)
    except KeyboardInterrupt:
        if ctx.is_main:
            print(f"\ninterrupted: every finished run is saved in {args.out}; run the same command again to "
                  "continue from them (--restart starts over)", file=sys.stderr)
        return 130
    finally:
        close_distributed()


def _main_run(args, config: CapstoneConfig, ctx: DistContext, device) -> int:
    if args.optimizers or args.preset:
        opts = tuple(args.optimizers or ("torch_adamw", "muon"))
        stem = f"scaled_{config.preset or 'capstone'}_{config.vocab}"
        results = run_pair(config, opts, device=device, progress=not args.no_progress, dist_context=ctx,
                           out=args.out, checkpoint_every=args.checkpoint_every,
                           crash_after_step=args.crash_after_step, results_path=args.out / f"{stem}.json",
                           restart=args.restart)
    else:
        stem = f"capstone_{config.vocab}"
        results = run_capstone(config, device=device, progress=not args.no_progress, sweep=not args.no_sweep,
                               dist_context=ctx, results_path=args.out / f"{stem}.json", restart=args.restart)
    if ctx.is_main:  # only rank 0 writes; the JSON is already complete
        if "runs" in results:
            plot_runs(results, args.out / f"{stem}.png")
        else:
            plot_capstone(results, args.out / f"{stem}.png")
            (args.out / f"{stem}.md").write_text(results_table(results) + "\n")
        print(f"wrote {args.out / (stem + '.json')} and {args.out / (stem + '.png')} in "
              f"{results['wall_seconds']:.0f} s")
    barrier(ctx)
    return 0


def _main_resume(args, ckpt: dict, ctx: DistContext, device) -> int:
    extra = ckpt["extra"]
    config = CapstoneConfig(**extra["config"])
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    if extra["world_size"] != ctx.world_size and ctx.is_main:
        warnings.warn(f"the checkpoint was written by {extra['world_size']} process(es), this run has "
                      f"{ctx.world_size}: same global batch, but sums happen in another order", stacklevel=2)
    log = print if ctx.is_main else (lambda *a, **k: None)
    log(f"resuming {extra['name']} from {args.resume} at step {ckpt['step']} of {config.steps} "
        f"(data position {ckpt['data']['position']}, epoch {ckpt['data']['epoch']})")
    data = prepare_data(config)
    every = args.checkpoint_every or extra["checkpoint_every"]
    r = run_one(config, data.train, extra["optimizer_name"], lr=extra["lr"], val_set=data.val, device=device,
                progress=not args.no_progress and ctx.is_main, name=extra["name"], dist_context=ctx,
                checkpoint_path=args.resume, checkpoint_every=every, resume=ckpt,
                crash_after_step=args.crash_after_step)
    record_run(config, data.vocab_size, r, device, ctx, args.out, extra["optimizer_name"], log)
    barrier(ctx)
    return 0


def plot_runs(results: dict, path: Path | None = None):
    """Train loss (moving average) and held-out loss of each run of ``run_pair``."""
    from .plots import finish_figure, plot_loss_curves, pyplot_for

    plt = pyplot_for(path)
    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_loss_curves({LABELS.get(k, k): v["train_loss"] for k, v in runs.items()}, results["config"]["window"], ax=ax,
                     val_curves={LABELS.get(k, k): (v["val_steps"], v["val_loss"]) for k, v in runs.items()},
                     title=f"{results['config']['preset'] or 'capstone'}: {results['world_size']} process(es), "
                           f"batch {results['config']['batch_size']} x {results['config']['seq_len']}")
    return finish_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
