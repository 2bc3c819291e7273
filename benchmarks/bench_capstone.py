"""Capstone step time: the course's model and optimizers vs a straightforward baseline.

The baseline is written the way the original capstone notebook was: ``transformers.LlamaForCausalLM``
(eager attention) with the full 128,256-id vocabulary, ``model(input_ids=x, labels=x)`` (which materialises
and upcasts the full logits tensor), ``torch.optim.AdamW`` with its CPU default (for-loop) and gradient clipping.

    python benchmarks/bench_capstone.py                 # per-step medians + real 200+200-step runs
    python benchmarks/bench_capstone.py --repeats 3 --no-runs

Writes benchmarks/capstone_results.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from course_lib.capstone import CapstoneConfig, prepare_data, run_one
from course_lib.capstone.experiment import OPTIMIZER_CLASS_NAMES
from course_lib.data import FULL_VOCAB_SIZE
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import build_optimizer

HERE = Path(__file__).resolve().parent


def model_config(vocab_size: int) -> TransformerConfig:
    return TransformerConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def time_steps(step, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def baseline_step_fn(vocab_size: int, batch: torch.Tensor):
    from transformers import LlamaForCausalLM

    torch.manual_seed(1234)
    llama_config = model_config(vocab_size).to_llama_config()
    llama_config._attn_implementation = "eager"
    model = LlamaForCausalLM(llama_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.01)

    def step():
        optimizer.zero_grad()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def course_step_fn(vocab_size: int, batch: torch.Tensor, optimizer_name: str):
    torch.manual_seed(1234)
    model = TransformerForCausalLM(model_config(vocab_size))
    kwargs = {"ns_dtype": torch.float32} if optimizer_name.startswith("muon") else {}
    if optimizer_name == "torch_adamw":
        kwargs = {"fused": True}  # what the capstone's AdamW runs use on a CPU
    optimizer = build_optimizer(OPTIMIZER_CLASS_NAMES[optimizer_name], model, **kwargs)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(batch, labels=batch, return_logits=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-runs", action="store_true", help="skip the real 200 + 200-step compact runs")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)

    data = prepare_data(CapstoneConfig(vocab="compact"))
    compact_vocab = data.vocab_size
    g = torch.Generator().manual_seed(0)
    batch_full = torch.randint(0, FULL_VOCAB_SIZE, (16, 128), generator=g)
    batch_compact = torch.randint(0, compact_vocab, (16, 128), generator=g)

    rows = []

    def record(name, vocab, fn):
        seconds = time_steps(fn, args.repeats)
        rows.append({"setup": name, "vocab": vocab, "step_s": seconds})
        print(f"{name:<58s} vocab {vocab:>7,}: {seconds:.3f} s/step", flush=True)

    record("baseline: LlamaForCausalLM + torch AdamW (as the original notebook)", FULL_VOCAB_SIZE,
           baseline_step_fn(FULL_VOCAB_SIZE, batch_full))
    for name in ("torch_adamw", "adamw", "muon", "muon_all"):
        record(f"course model + {name}", FULL_VOCAB_SIZE, course_step_fn(FULL_VOCAB_SIZE, batch_full, name))
    record("baseline: LlamaForCausalLM + torch AdamW (as the original notebook)", compact_vocab,
           baseline_step_fn(compact_vocab, batch_compact))
    for name in ("torch_adamw", "adamw", "muon", "muon_all"):
        record(f"course model + {name}", compact_vocab, course_step_fn(compact_vocab, batch_compact, name))

    base_full = rows[0]["step_s"]
    for row in rows:
        row["vs_full_baseline"] = row["step_s"] / base_full

    runs = {}
    if not args.no_runs:
        config = CapstoneConfig(vocab="compact")
        for opt in ("torch_adamw", "muon"):
            start = time.perf_counter()
            result = run_one(config, data.train_all, opt, progress=False)
            runs[opt] = {"steps": config.steps, "wall_s": time.perf_counter() - start,
                         "final_loss_ma5": sum(result.train_loss[-5:]) / 5}
            print(f"real run {opt}: {runs[opt]['wall_s']:.1f} s for {config.steps} steps", flush=True)

    info = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
            "torch": torch.__version__, "repeats": args.repeats, "rows": rows, "runs": runs}
    (args.out / "capstone_results.json").write_text(json.dumps(info, indent=1))
    lines = [
        "# Capstone step time",
        "",
        f"Machine: {info['machine']}; torch {torch.__version__}; batch 16 × 128 tokens; median of "
        f"{args.repeats} steps after one warm-up step (forward, backward, clip, optimizer step).",
        "",
        "| setup | vocabulary | s/step | × full-vocab baseline |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['setup']} | {r['vocab']:,} | {r['step_s']:.3f} | {r['vs_full_baseline']:.2f} |" for r in rows]
    if runs:
        total = sum(r["wall_s"] for r in runs.values())
        lines += ["", "Real compact-vocabulary runs (capstone settings, `run_one`): "
                  + ", ".join(f"{k} {v['steps']} steps in {v['wall_s']:.0f} s" for k, v in runs.items())
                  + f"; together {total:.0f} s ({total / 60:.1f} min)."]
    (args.out / "capstone_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
