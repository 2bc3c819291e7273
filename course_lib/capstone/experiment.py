"""What the capstone runs: its settings, data, model, optimizers and the conditions of the study.

Nothing here trains; ``runner.py`` does. Every run is fully determined by a ``CapstoneConfig``, an
optimizer name, a learning rate and a study seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..data import (FULL_VOCAB_SIZE, TokenChunkDataset, VocabMap, load_token_resource, split_at_document,
                    split_tokens)
from ..models import TransformerConfig, TransformerForCausalLM
from ..optim import MuonWithAdamW, build_optimizer, split_params_for_muon
from ..precision import autocast_dtype_for, has_bf16_tensor_cores
from ..runtime import seed_everything
from ..validate import require_number

# Display names of the optimizers (study keys, as in the results files, on the left).
LABELS = {"torch_adamw": "AdamW", "adamw": "AdamW", "muon": "Muon hybrid",
          "muon_adamw_searched": "Muon hybrid, AdamW part searched",
          "muon_vocab": "Muon on the vocabulary matrices only", "muon_no_ns": "Muon hybrid without Newton–Schulz",
          "muon_all": "Muon everywhere"}
# The build_optimizer name (the class) behind each study key; the ablations build MuonWithAdamW's groups
# themselves (``make_optimizer``).
OPTIMIZER_CLASS_NAMES = {"torch_adamw": "torch.optim.AdamW", "adamw": "AdamW", "muon": "MuonWithAdamW",
                         "muon_adamw_searched": "MuonWithAdamW", "muon_vocab": "MuonWithAdamW",
                         "muon_no_ns": "MuonWithAdamW", "muon_all": "Muon"}
# What each ablation changes in the hybrid, and which learning rate its search moves.
ABLATIONS = ("muon_adamw_searched", "muon_vocab", "muon_no_ns")
HYBRIDS = ("muon", *ABLATIONS)  # Muon on some matrices, AdamW on the rest
SCHEDULES = ("constant", "warmup_cosine")


@dataclass(frozen=True)
class Condition:
    """One condition of the study: how many passes over the training split each run makes, its LR
    schedule and the optimizers compared. Every run is scored by its lowest held-out loss, so a run of
    several passes is early-stopped on held-out text."""

    name: str
    passes: int
    schedule: str
    optimizers: tuple


# The held-out study (the results files keep the key "cells" for it).
# - one_pass_constant: every training sequence seen once; AdamW, the hybrid, Muon everywhere and three
#   ablations that locate Muon everywhere's gain (ABLATIONS). The default study runs this condition only.
# - two_pass_constant: two passes, early-stopped on held-out text: the setting chosen to take the hybrid and
#   Muon everywhere below the bigram table's point estimate (results/regime_search.md). With five seeds it got
#   no optimizer beyond the table's interval and changed no ordering, and its runs took 2.3x the training
#   time of the three ablations, so it left the default study (make compare: 17 min on 2 CPU cores);
#   ``conditions=`` (``--conditions``) runs it again.
STUDY_CONDITIONS = (
    Condition("one_pass_constant", 1, "constant", ("torch_adamw", "muon", *ABLATIONS, "muon_all")),
    Condition("two_pass_constant", 2, "constant", ("torch_adamw", "muon", "muon_all")),
)
CONDITION_NAMES = tuple(c.name for c in STUDY_CONDITIONS)


def study_conditions(config) -> tuple:
    """The conditions a study with ``config`` runs, in ``STUDY_CONDITIONS`` order."""
    return tuple(c for c in STUDY_CONDITIONS if c.name in config.conditions)


# Where each learning-rate search starts (three points a factor of 2 apart around the centre). The
# centres only decide how many runs a search needs: a search whose best point is at an edge of its
# grid extends the grid until the best point has a neighbour on both sides. They come from an earlier
# full run and from the search that chose the two-pass regime (on study seed 100). ``muon_adamw_searched``
# searches the AdamW part (Muon at the hybrid's tuned LR); ``muon_no_ns`` moves each matrix by lr x (a
# unit-Frobenius matrix), about sqrt(128) = 11 times less per entry than an orthogonalized 128-column
# update, hence its larger centre.
LR_CENTRES = {
    "one_pass_constant": {"torch_adamw": 2e-3, "muon": 1e-2, "muon_adamw_searched": 8e-3, "muon_vocab": 2e-2,
                          "muon_no_ns": 1e-1, "muon_all": 2e-2},
    "two_pass_constant": {"torch_adamw": 2e-3, "muon": 1e-2, "muon_all": 2e-2},
}


@dataclass
class CapstoneConfig:
    """The original notebook's settings (the first block) and the study's (the rest)."""

    seq_len: int = 128
    batch_size: int = 16
    steps: int = 200
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    attn_implementation: str = "eager"
    tie_embeddings: bool = False  # one vocabulary matrix for the embedding and the LM head (GPT-2's choice)
    model_seed: int = 1234
    data_seed: int = 2024
    clip_norm: float = 1.0
    adamw_lr: float = 2e-3
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 0.01
    muon_lr: float = 2e-2
    momentum: float = 0.95
    vocab: str = "compact"  # "compact" (ids present in the data) or "full" (128,256)
    window: int = 5
    # The held-out study.
    val_fraction: float = 0.1
    eval_every: int = 20  # three-pass runs
    study_eval_every: int = 11  # every run of the study (5 times a pass)
    conditions: tuple = ("one_pass_constant",)  # names from STUDY_CONDITIONS
    seeds: int = 5  # evaluated study seeds 1..seeds: model_seed + s and data_seed + s (initialisation, batch order)
    tuning_seed: int = 0  # the learning rates are searched on this study seed, which no table reports
    lr_centres: dict = field(default_factory=lambda: {c: dict(v) for c, v in LR_CENTRES.items()})
    search_factor: float = 2.0
    search_start_points: int = 3  # the centre and its neighbours (2: the centre and the next one up)
    search_max_points: int = 6
    warmup_fraction: float = 0.1  # warmup_cosine conditions: warmup steps = this x steps, then cosine
    max_train_sequences: int | None = None  # quick mode: a smaller training split, same passes
    # Scaling up (notebook 10). The defaults keep the original single-process run exactly as it was.
    attention_dropout: float = 0.0
    max_micro_batch: int | None = None  # None: each process's share of the batch in one pass
    lr_schedule: str = "constant"  # or "warmup_cosine" (to min_lr_ratio of the peak)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    hybrid_adamw_lr: float | None = None  # AdamW part of the hybrid; None: adamw_lr
    muon_weight_decay: float | None = None  # both groups of the Muon runs (hybrids too); None: weight_decay
    precision: str = "auto"  # "auto" (autocast_dtype_for: bf16 or fp16 by GPU, else fp32), "bf16", "fp16", "fp32"
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
                     "num_attention_heads", "num_key_value_heads", "window", "study_eval_every", "seeds"):
            require_number(name, getattr(self, name), at_least=1, integer=True)
        require_number("search_start_points", self.search_start_points, at_least=2, at_most=3, integer=True)
        require_number("search_max_points", self.search_max_points, at_least=self.search_start_points, integer=True,
                       hint="at least search_start_points")
        for name in ("model_seed", "data_seed", "eval_every", "warmup_steps", "tuning_seed"):
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
        require_number("warmup_fraction", self.warmup_fraction, at_least=0.0, below=1.0)
        require_number("search_factor", self.search_factor, above=1.0)
        if len(tuple(self.betas)) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            require_number(f"betas[{i}]", beta, at_least=0.0, below=1.0)
        self.conditions = tuple(self.conditions)
        unknown = [c for c in self.conditions if c not in CONDITION_NAMES]
        if unknown or not self.conditions:
            raise ValueError(f"conditions must be a non-empty selection of {CONDITION_NAMES}, got {self.conditions!r}")
        for cond in study_conditions(self):
            centres = self.lr_centres.get(cond.name, {})
            missing = [opt for opt in cond.optimizers if opt not in centres]
            if missing:
                raise ValueError(f"lr_centres[{cond.name!r}] has no starting learning rate for {missing}; "
                                 f"give one per optimizer, e.g. {LR_CENTRES[cond.name]}")
            for opt in cond.optimizers:
                require_number(f"lr_centres[{cond.name!r}][{opt!r}]", centres[opt], above=0.0)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        for name in ("max_micro_batch", "max_eval_sequences", "max_train_sequences"):
            if getattr(self, name) is not None:
                require_number(name, getattr(self, name), at_least=1, integer=True, hint="or None")
        autocast_dtype_for(torch.device("cpu"), self.precision)  # validates the name
        self.betas = tuple(self.betas)

    @classmethod
    def gpt2_small(cls, **overrides) -> CapstoneConfig:
        """GPT-2 small's shape (12 layers, 12 heads, width 768, context 1024) in the course's Llama-style model
        (SwiGLU width 2048 gives GPT-2's 7.1M weights per layer; RoPE instead of learned positions), with the
        settings of the GPT-2-small AdamW-vs-Muon run in the notes the course started from: global batch 480
        sequences (32 x 15 accumulation on one GPU); AdamW lr 6e-4, wd 0.1, betas (0.9, 0.95); hybrid: Muon lr
        0.02, momentum 0.95 on the hidden matrices, AdamW lr 3e-4 on the rest, no weight decay in either group;
        2,000 warmup steps then cosine to 10%; autocast on GPUs (``--precision auto``: bf16 on compute
        capability 8.0+, fp16 + GradScaler on a T4) and SDPA attention.

        Not GPT-2 small's size: the vocabulary is the Llama 3 tokenizer's and the embedding and LM head are
        untied unless ``tie_embeddings=True``. With the full 128,256-id vocabulary (what a large token file
        uses) that is 282.0M parameters untied and 183.5M tied (GPT-2 small: 124.4M, one tied 50,257 x 768
        matrix); see ``parameter_count``. Meant for a token file of billions of tokens (``tokens_path``); the
        original run saw about 20B GPT-2 tokens of OpenWebText, and token counts and losses do not transfer
        between tokenizers."""
        base = dict(seq_len=1024, batch_size=480, steps=40_000, hidden_size=768, intermediate_size=2048,
                    num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                    attn_implementation="sdpa", adamw_lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95),
                    muon_lr=0.02, momentum=0.95, hybrid_adamw_lr=3e-4, muon_weight_decay=0.0,
                    lr_schedule="warmup_cosine", warmup_steps=2000, min_lr_ratio=0.1, max_micro_batch=32,
                    eval_every=500, max_eval_sequences=256, window=50, preset="gpt2-small")
        return cls(**{**base, **overrides})

    @classmethod
    def gpt2_small_smoke(cls, **overrides) -> CapstoneConfig:
        """The same shape for 2 steps of one sequence per micro-batch: checks that it runs, on any device."""
        base = dict(steps=2, batch_size=2, max_micro_batch=1, warmup_steps=1, eval_every=2, max_eval_sequences=2,
                    window=1)
        return cls.gpt2_small(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides) -> CapstoneConfig:
        """Settings for tests: every code path of the full run, in seconds. Shorter sequences and a
        training split of 32 sequences (4 steps per pass), 2 seeds, searches that start with 2 points and
        extend once, and every condition of ``STUDY_CONDITIONS`` (the default study runs one)."""
        base = dict(steps=12, seq_len=32, batch_size=8, eval_every=6, study_eval_every=2, seeds=2,
                    conditions=CONDITION_NAMES,
                    max_train_sequences=32, max_eval_sequences=16, search_start_points=2, search_max_points=3,
                    window=3)
        return cls(**{**base, **overrides})


@dataclass
class CapstoneData:
    train_all: TokenChunkDataset  # all tokens (seed replica)
    train: TokenChunkDataset  # the documents before the cut (about 90%)
    val: TokenChunkDataset  # the documents after it: none is split between the two
    vocab_size: int
    vocab_map: VocabMap | None = field(default=None, repr=False)
    held_out_documents: int | None = None  # None for a token file without document starts


def load_tokens(path=None) -> tuple[torch.Tensor, list | None]:
    """The course's 128k tokens and where each document starts, or the flat ``input_ids`` of another
    dataset saved the same way (``datasets.Dataset.save_to_disk`` of one row whose ``input_ids`` is the
    whole token stream; its ``document_starts``, if it has them)."""
    if path is None:
        resource = load_token_resource()
        return resource.tokens, resource.document_starts
    from datasets import load_from_disk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no token dataset at {path}")
    ds = load_from_disk(str(path)).with_format("numpy")
    if "input_ids" not in ds.column_names:
        raise ValueError(f"{path} has columns {ds.column_names}; expected 'input_ids' (like the course's resource)")
    tokens = torch.cat([torch.from_numpy(row["input_ids"].astype("int64")).reshape(-1) for row in ds])
    starts = ds[0]["document_starts"].tolist() if len(ds) == 1 and "document_starts" in ds.column_names else None
    return tokens, starts


def prepare_data(config: CapstoneConfig) -> CapstoneData:
    """The replica's sequences (all tokens) and the study's split: the held-out part starts where a
    document starts (``split_at_document``), so no document is seen in part during training."""
    tokens, starts = load_tokens(config.tokens_path)
    vocab_map = None
    vocab_size = FULL_VOCAB_SIZE
    if config.vocab == "compact":
        vocab_map = VocabMap.from_tokens(tokens)
        tokens = vocab_map.to_compact(tokens)
        vocab_size = vocab_map.size
    held_out_documents = None
    if starts and config.val_fraction > 0:
        train_tokens, val_tokens, held_out_documents = split_at_document(tokens, starts, config.val_fraction)
    else:
        train_tokens, val_tokens = split_tokens(tokens, config.val_fraction)
    if config.max_train_sequences is not None:
        train_tokens = train_tokens[: config.max_train_sequences * config.seq_len]
    if config.max_eval_sequences is not None:
        val_tokens = val_tokens[: config.max_eval_sequences * config.seq_len]
    return CapstoneData(
        train_all=TokenChunkDataset(tokens, config.seq_len, vocab_size),
        train=TokenChunkDataset(train_tokens, config.seq_len, vocab_size),
        val=TokenChunkDataset(val_tokens, config.seq_len, vocab_size),
        vocab_size=vocab_size,
        vocab_map=vocab_map,
        held_out_documents=held_out_documents,
    )


def model_config(config: CapstoneConfig, vocab_size: int) -> TransformerConfig:
    return TransformerConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.seq_len,
        attn_implementation=config.attn_implementation,
        attention_dropout=config.attention_dropout,
        tie_word_embeddings=config.tie_embeddings,
    )


def parameter_count(config: CapstoneConfig, vocab_size: int) -> int:
    """How many parameters the capstone model has (built on the meta device: no memory, no random draws)."""
    with torch.device("meta"):
        return TransformerForCausalLM(model_config(config, vocab_size)).num_parameters()


def parameter_groups(config: CapstoneConfig, vocab_size: int) -> dict:
    """How many parameters sit in each group the optimizers treat differently (built on the meta device):
    the vocabulary matrices (embedding and LM head), the hidden matrices of the blocks, and the 1-D norm gains."""
    with torch.device("meta"):
        model = TransformerForCausalLM(model_config(config, vocab_size))
    hidden, rest = split_params_for_muon(model)
    return {"vocabulary": sum(p.numel() for p in rest if p.ndim == 2), "hidden": sum(p.numel() for p in hidden),
            "norms": sum(p.numel() for p in rest if p.ndim < 2),
            "hidden_shapes": sorted({tuple(p.shape) for p in hidden})}


def build_model(config: CapstoneConfig, vocab_size: int, device=None) -> TransformerForCausalLM:
    """The capstone model, initialised from ``model_seed`` (so every optimizer starts identically)."""
    seed_everything(config.model_seed)
    return TransformerForCausalLM(model_config(config, vocab_size)).to(device or "cpu")


def make_optimizer(config: CapstoneConfig, model, optimizer_name: str, lr: float | None = None, device=None):
    """The optimizer of one run, with the config's settings; returns (optimizer, lr), ``lr`` being the
    learning rate a search moves.

    - ``torch_adamw`` / ``adamw``: torch's / the course's AdamW at ``lr``.
    - ``muon``: the hybrid, Muon at ``lr`` on the hidden matrices, AdamW at ``hybrid_adamw_lr`` on the rest.
    - ``muon_all``: Muon at ``lr`` on every parameter.
    - ablations of the hybrid (MuonWithAdamW with its groups set here): ``muon_adamw_searched``: Muon at
      ``muon_lr``, the AdamW part at ``lr``; ``muon_vocab``: Muon at ``lr`` on the embedding and LM head
      only, AdamW at ``hybrid_adamw_lr`` on the rest; ``muon_no_ns``: the hybrid with ``ns_steps=0``,
      so each hidden matrix moves along its Nesterov momentum divided by its Frobenius norm (normalized,
      not orthogonalized) at ``lr``.

    torch.optim.AdamW uses its fused kernel on CPUs and CUDA GPUs (about 6x faster than foreach on the
    full vocabulary on a CPU, benchmarks/). Newton–Schulz runs in bf16 on GPUs with bf16 tensor cores and
    in fp32 elsewhere (a T4 emulates bf16; CPUs without native bf16 matmuls are faster, and more exact, in
    fp32); torch.optim.Muon always uses bf16."""
    device_type = torch.device(device or "cpu").type
    adamw = dict(betas=config.betas, weight_decay=config.weight_decay)
    if optimizer_name in ("adamw", "torch_adamw"):
        lr = config.adamw_lr if lr is None else lr
        fused = dict(fused=True) if optimizer_name == "torch_adamw" and device_type in ("cpu", "cuda") else {}
        return build_optimizer(OPTIMIZER_CLASS_NAMES[optimizer_name], model, lr=lr, **adamw, **fused), lr
    if optimizer_name not in OPTIMIZER_CLASS_NAMES:
        raise ValueError(f"Unknown optimizer {optimizer_name!r}; use one of {', '.join(OPTIMIZER_CLASS_NAMES)}")
    default = config.adamw_lr if optimizer_name == "muon_adamw_searched" else config.muon_lr
    lr = default if lr is None else lr
    ns_dtype = torch.bfloat16 if has_bf16_tensor_cores(torch.device(device or "cpu")) else torch.float32
    muon = dict(momentum=config.momentum, ns_dtype=ns_dtype,
                weight_decay=config.weight_decay if config.muon_weight_decay is None else config.muon_weight_decay)
    if optimizer_name == "muon_all":
        return build_optimizer("Muon", model, lr=lr, **muon), lr
    adamw_lr = config.adamw_lr if config.hybrid_adamw_lr is None else config.hybrid_adamw_lr
    adamw["weight_decay"] = muon["weight_decay"]  # a hybrid's AdamW part decays like its Muon part
    hidden, rest = split_params_for_muon(model)
    if optimizer_name == "muon_vocab":
        hidden, rest = [p for p in rest if p.ndim == 2], hidden + [p for p in rest if p.ndim < 2]
    muon_lr, ns_steps = lr, (0 if optimizer_name == "muon_no_ns" else 5)
    if optimizer_name == "muon_adamw_searched":
        muon_lr, adamw_lr = config.muon_lr, lr
    groups = [dict(params=hidden, use_muon=True, lr=muon_lr, ns_steps=ns_steps, **muon),
              dict(params=rest, use_muon=False, lr=adamw_lr, **adamw)]
    return MuonWithAdamW(groups), lr


def make_scheduler(config: CapstoneConfig, optimizer):
    """None for a constant LR; LambdaLR(warmup_cosine) otherwise (every group, Muon's included)."""
    if config.lr_schedule == "constant":
        return None
    from ..schedules import lambda_lr

    return lambda_lr(optimizer, "warmup_cosine", warmup_steps=config.warmup_steps, total_steps=config.steps,
                     min_ratio=config.min_lr_ratio)


def steps_per_pass(config: CapstoneConfig, train_sequences: int) -> int:
    """Optimizer steps in one pass over ``train_sequences`` (the incomplete last batch is dropped)."""
    if train_sequences < config.batch_size:
        raise ValueError(f"the training split holds {train_sequences} sequences, fewer than one batch of "
                         f"{config.batch_size}; lower batch_size or max_train_sequences")
    return train_sequences // config.batch_size


def condition_run_config(config: CapstoneConfig, condition: Condition, seed: int, train_sequences: int,
                         hybrid_adamw_lr: float | None = None, muon_lr: float | None = None) -> CapstoneConfig:
    """The settings of one study run: the condition's steps (its passes x steps per pass), schedule and
    evaluation, and study seed ``seed`` (model_seed + seed, data_seed + seed: seed 0 is the original
    notebook's initialisation and batch order). ``hybrid_adamw_lr`` and ``muon_lr``: the learning rates an
    ablation holds fixed (see ``make_optimizer``)."""
    if condition.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {condition.schedule!r}; use one of {SCHEDULES}")
    require_number("passes", condition.passes, at_least=1, integer=True)
    steps = condition.passes * steps_per_pass(config, train_sequences)
    warmup = max(1, round(config.warmup_fraction * steps)) if condition.schedule == "warmup_cosine" else 0
    return replace(config, steps=steps, eval_every=min(config.study_eval_every, steps), lr_schedule=condition.schedule,
                   warmup_steps=warmup, model_seed=config.model_seed + seed, data_seed=config.data_seed + seed,
                   hybrid_adamw_lr=hybrid_adamw_lr, muon_lr=config.muon_lr if muon_lr is None else muon_lr)


def evaluated_seeds(config: CapstoneConfig) -> tuple:
    """The study seeds every table reports: the first ``seeds`` non-negative integers other than the tuning seed."""
    seeds, s = [], 0
    while len(seeds) < config.seeds:
        if s != config.tuning_seed:
            seeds.append(s)
        s += 1
    return tuple(seeds)
