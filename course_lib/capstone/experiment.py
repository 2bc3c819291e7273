"""What the capstone runs: its settings, data, model, optimizers and the cells of the study.

Nothing here trains; ``runner.py`` does. Every run is fully determined by a ``CapstoneConfig``, an
optimizer name, a learning rate and a study seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..data import FULL_VOCAB_SIZE, TokenChunkDataset, VocabMap, load_token_resource, split_tokens
from ..models import TransformerConfig, TransformerForCausalLM
from ..optim import build_optimizer
from ..precision import autocast_dtype_for
from ..runtime import seed_everything
from ..validate import require_number

# Display names of the optimizers (study keys, as in the results files, on the left; muon_all_rms is muon_all with
# torch.optim.Muon's adjust_lr_fn="match_rms_adamw").
LABELS = {"torch_adamw": "AdamW", "adamw": "AdamW", "muon": "Muon hybrid", "muon_all": "Muon everywhere (original)",
          "muon_all_rms": "Muon everywhere (match_rms_adamw)"}
# The build_optimizer name (the class) behind each study key.
OPTIMIZER_CLASS_NAMES = {"torch_adamw": "torch.optim.AdamW", "adamw": "AdamW", "muon": "MuonWithAdamW",
                         "muon_all": "Muon", "muon_all_rms": "Muon"}
STUDY_OPTIMIZERS = ("torch_adamw", "muon", "muon_all", "muon_all_rms")
SCHEDULES = ("constant", "warmup_cosine")
REGIMES = ("one_pass", "three_pass")


@dataclass(frozen=True)
class Cell:
    """One comparison of the study: a data regime, an LR schedule and the optimizers compared.

    ``one_pass``: one pass over the training split (every sequence seen once: learning).
    ``three_pass``: the original notebook's 200 steps, about 3.6 passes over the training split (memorising)."""

    name: str
    regime: str
    schedule: str
    optimizers: tuple


# The held-out study. Muon everywhere (both shape rules) only in the main cell: its 16,925 x 128
# embedding and head make it the slowest optimizer, and the budget (make compare <= 30 min on 2 CPU
# cores) pays for four optimizers x 5 seeds once.
STUDY_CELLS = (
    Cell("one_pass_constant", "one_pass", "constant", STUDY_OPTIMIZERS),
    Cell("one_pass_cosine", "one_pass", "warmup_cosine", ("torch_adamw", "muon")),
    Cell("three_pass_constant", "three_pass", "constant", ("torch_adamw", "muon")),
)

# Where each learning-rate search starts (three points a factor of 2 apart around the centre). The
# centres only decide how many runs a search needs: a search whose best point is at an edge of its
# grid extends the grid until the best point has a neighbour on both sides. They are the optima of an
# earlier full run (the hybrid under warmup + cosine started at 1e-2 there and extended itself to 8e-2).
LR_CENTRES = {
    "one_pass_constant": {"torch_adamw": 2e-3, "muon": 1e-2, "muon_all": 2e-2, "muon_all_rms": 8e-3},
    "one_pass_cosine": {"torch_adamw": 4e-3, "muon": 8e-2},
    "three_pass_constant": {"torch_adamw": 1e-3, "muon": 5e-3},
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
    one_pass_eval_every: int = 8
    seeds: int = 5  # study seed s: model_seed + s and data_seed + s (initialisation and batch order)
    lr_centres: dict = field(default_factory=lambda: {c: dict(v) for c, v in LR_CENTRES.items()})
    search_factor: float = 2.0
    search_start_points: int = 3  # the centre and its neighbours (2: the centre and the next one up)
    search_max_points: int = 6
    warmup_fraction: float = 0.1  # warmup_cosine cells: warmup steps = this x steps, then cosine
    max_train_sequences: int | None = None  # quick mode: a smaller training split, same passes
    # Scaling up (notebook 10). The defaults keep the original single-process run exactly as it was.
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
                     "num_attention_heads", "num_key_value_heads", "window", "one_pass_eval_every", "seeds"):
            require_number(name, getattr(self, name), at_least=1, integer=True)
        require_number("search_start_points", self.search_start_points, at_least=2, at_most=3, integer=True)
        require_number("search_max_points", self.search_max_points, at_least=self.search_start_points, integer=True,
                       hint="at least search_start_points")
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
        require_number("warmup_fraction", self.warmup_fraction, at_least=0.0, below=1.0)
        require_number("search_factor", self.search_factor, above=1.0)
        if len(tuple(self.betas)) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            require_number(f"betas[{i}]", beta, at_least=0.0, below=1.0)
        for cell in STUDY_CELLS:
            centres = self.lr_centres.get(cell.name, {})
            missing = [opt for opt in cell.optimizers if opt not in centres]
            if missing:
                raise ValueError(f"lr_centres[{cell.name!r}] has no starting learning rate for {missing}; "
                                 f"give one per optimizer, e.g. {LR_CENTRES[cell.name]}")
            for opt in cell.optimizers:
                require_number(f"lr_centres[{cell.name!r}][{opt!r}]", centres[opt], above=0.0)
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
        """GPT-2 small's shape (12 layers, 12 heads, width 768, context 1024) in the course's
        Llama-style model (SwiGLU width 2048 gives GPT-2's 7.1M weights per layer; RoPE instead of
        learned positions), as in Keller Jordan's modded-nanogpt and the Muon blog post's GPT-2 runs;
        global batch 480 sequences (32 x 15 accumulation on one GPU); AdamW lr 6e-4, wd 0.1, betas
        (0.9, 0.95); hybrid: Muon lr 0.02, momentum 0.95 on hidden matrices, AdamW lr 3e-4 on the rest,
        no weight decay in the Muon run; 2,000 warmup steps then cosine to 10%; bf16 autocast and SDPA
        attention on GPUs. Meant for about 20B tokens of OpenWebText: pass ``tokens_path``."""
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
        extend once."""
        base = dict(steps=12, seq_len=32, batch_size=8, eval_every=6, one_pass_eval_every=2, seeds=2,
                    max_train_sequences=32, max_eval_sequences=16, search_start_points=2, search_max_points=3,
                    window=3)
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
    )


def parameter_count(config: CapstoneConfig, vocab_size: int) -> int:
    """How many parameters the capstone model has (built on the meta device: no memory, no random draws)."""
    with torch.device("meta"):
        return TransformerForCausalLM(model_config(config, vocab_size)).num_parameters()


def build_model(config: CapstoneConfig, vocab_size: int, device=None) -> TransformerForCausalLM:
    """The capstone model, initialised from ``model_seed`` (so every optimizer starts identically)."""
    seed_everything(config.model_seed)
    return TransformerForCausalLM(model_config(config, vocab_size)).to(device or "cpu")


def make_optimizer(config: CapstoneConfig, model, optimizer_name: str, lr: float | None = None, device=None):
    """The optimizer of one run, with the config's settings; returns (optimizer, lr).

    torch.optim.AdamW uses its fused kernel (one pass over memory for the whole update) on CPUs and
    CUDA GPUs: on the full 128,256-id vocabulary it steps about 6x faster than foreach on a CPU
    (benchmarks/). On CUDA, Muon's Newton–Schulz runs in bf16 (as torch.optim.Muon does); the
    course's own AdamW is foreach (one kernel per operation for all tensors) everywhere."""
    device_type = torch.device(device or "cpu").type
    if optimizer_name in ("adamw", "torch_adamw"):
        lr = config.adamw_lr if lr is None else lr
        fused = optimizer_name == "torch_adamw" and device_type in ("cpu", "cuda")
        extra = dict(fused=True) if fused else {}
        optimizer = build_optimizer(OPTIMIZER_CLASS_NAMES[optimizer_name], model, lr=lr, betas=config.betas,
                                    weight_decay=config.weight_decay, **extra)
    elif optimizer_name in ("muon", "muon_all", "muon_all_rms"):
        lr = config.muon_lr if lr is None else lr
        # Newton–Schulz in bf16 as torch.optim.Muon does on GPUs; CPUs without native bf16 matmuls
        # are faster (and more exact) in fp32.
        ns_dtype = torch.bfloat16 if device_type == "cuda" else torch.float32
        wd = config.weight_decay if config.muon_weight_decay is None else config.muon_weight_decay
        extra = {}
        if optimizer_name == "muon":
            extra = dict(adamw_lr=config.adamw_lr if config.hybrid_adamw_lr is None else config.hybrid_adamw_lr,
                         betas=config.betas)
        if optimizer_name == "muon_all_rms":
            extra = dict(adjust_lr_fn="match_rms_adamw")
        optimizer = build_optimizer(OPTIMIZER_CLASS_NAMES[optimizer_name], model, lr=lr,
                                    momentum=config.momentum, weight_decay=wd, ns_dtype=ns_dtype, **extra)
    else:
        raise ValueError(f"Unknown optimizer {optimizer_name!r}; use torch_adamw, adamw, muon, muon_all or "
                         "muon_all_rms")
    return optimizer, lr


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


def cell_run_config(config: CapstoneConfig, cell: Cell, seed: int, train_sequences: int,
                    hybrid_adamw_lr: float | None = None) -> CapstoneConfig:
    """The settings of one study run: the cell's steps, evaluation and schedule, and study seed
    ``seed`` (0 is the original notebook's initialisation and batch order)."""
    if cell.regime == "one_pass":
        steps, every = steps_per_pass(config, train_sequences), config.one_pass_eval_every
    elif cell.regime == "three_pass":
        steps, every = config.steps, config.eval_every
    else:
        raise ValueError(f"unknown regime {cell.regime!r}; use one of {REGIMES}")
    warmup = max(1, round(config.warmup_fraction * steps)) if cell.schedule == "warmup_cosine" else 0
    return replace(config, steps=steps, eval_every=min(every, steps), lr_schedule=cell.schedule, warmup_steps=warmup,
                   model_seed=config.model_seed + seed, data_seed=config.data_seed + seed,
                   hybrid_adamw_lr=hybrid_adamw_lr)
