"""The call a student writes, ``model(input_ids=x, labels=x)``: the course model against transformers.

1. Forward + backward of ``model(input_ids=x, labels=x).loss`` on the full 128,256-id vocabulary,
   batch 16 × 128, capstone shape (2 layers, hidden 128, eager attention), for the course's
   ``TransformerForCausalLM`` and ``transformers.LlamaForCausalLM`` with the same weights. A third arm
   re-creates the course model's loss before the fix (slice the logits, ``logits[:, :-1].reshape``,
   which copies them). The arms run interleaved, one round at a time, order alternating between
   rounds, so a busy machine slows them alike; each round gives one ratio to the transformers time.
2. ``course_lib.train.evaluate`` on the capstone's 100 held-out sequences (compact vocabulary), with
   the loss-only no-grad path (now) and with ``LinearCrossEntropy`` (before: loss + gradients).

    python benchmarks/bench_seed_call.py               # 9 rounds, 5 evaluations each way
    python benchmarks/bench_seed_call.py --rounds 3 --evals 2

Writes benchmarks/seed_call_results.md and .json. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import course_lib.models as models
from course_lib.capstone import CapstoneConfig, prepare_data
from course_lib.data import FULL_VOCAB_SIZE
from course_lib.losses import LinearCrossEntropy
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.train import evaluate

HERE = Path(__file__).resolve().parent
BEFORE = {"median": 1.15, "low": 1.0, "high": 1.4, "pairs": 9}  # course / transformers, measured before the fix


def model_config(vocab_size: int) -> TransformerConfig:
    """The capstone model shape (as benchmarks/bench_capstone.py)."""
    return TransformerConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                             attn_implementation="eager")


def sliced_logits_loss(model: TransformerForCausalLM, x: torch.Tensor) -> torch.Tensor:
    """The course model's return_logits=True loss before the fix: slicing the logits copies them."""
    logits = model(x).logits
    flat = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(flat.float(), x[:, 1:].reshape(-1), ignore_index=-100)


def timed_backward(model, loss_fn) -> tuple[float, float]:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = loss_fn()
    loss.backward()
    seconds = time.perf_counter() - start
    return seconds, loss.item()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers

    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def bench_seed_call(rounds: int, warmup: int) -> dict:
    from transformers import LlamaForCausalLM

    torch.manual_seed(1234)
    ours = TransformerForCausalLM(model_config(FULL_VOCAB_SIZE))
    llama_config = ours.config.to_llama_config()
    llama_config._attn_implementation = "eager"
    theirs = LlamaForCausalLM(llama_config)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randint(0, FULL_VOCAB_SIZE, (16, 128), generator=torch.Generator().manual_seed(0))

    arms = {
        "transformers": (theirs, lambda: theirs(input_ids=x, labels=x).loss),
        "course": (ours, lambda: ours(input_ids=x, labels=x).loss),
        "course_before": (ours, lambda: sliced_logits_loss(ours, x)),
    }
    for _ in range(warmup):
        for model, fn in arms.values():
            timed_backward(model, fn)
    times = {name: [] for name in arms}
    losses = {}
    for r in range(rounds):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in order:
            seconds, losses[name] = timed_backward(*arms[name])
            times[name].append(seconds)
        ratio = times["course"][-1] / times["transformers"][-1]
        before = times["course_before"][-1] / times["transformers"][-1]
        print(f"round {r + 1}: transformers {times['transformers'][-1]:.3f} s, course {times['course'][-1]:.3f} s "
              f"(× {ratio:.2f}), course before the fix {times['course_before'][-1]:.3f} s (× {before:.2f})",
              flush=True)
    ratios = [c / t for c, t in zip(times["course"], times["transformers"])]
    ratios_before = [c / t for c, t in zip(times["course_before"], times["transformers"])]
    return {"vocab": FULL_VOCAB_SIZE, "batch": list(x.shape), "rounds": rounds, "warmup": warmup, "times_s": times,
            "ratio": ratios, "ratio_before_recreated": ratios_before, "losses": losses,
            "loss_diff_course_vs_transformers": abs(losses["course"] - losses["transformers"]),
            "loss_diff_before_vs_after": abs(losses["course_before"] - losses["course"])}


def bench_evaluate(repeats: int) -> dict:
    data = prepare_data(CapstoneConfig())
    torch.manual_seed(1234)
    model = TransformerForCausalLM(model_config(data.vocab_size))
    loss_only = models.chunked_cross_entropy_loss

    def with_gradients(hidden, weight, targets, chunk_size=256):  # the behaviour before the fix
        return LinearCrossEntropy.apply(hidden, weight, targets, chunk_size)

    def run(before: bool) -> tuple[float, float]:
        models.chunked_cross_entropy_loss = with_gradients if before else loss_only
        try:
            start = time.perf_counter()
            loss = evaluate(model, data.val)
            return time.perf_counter() - start, loss
        finally:
            models.chunked_cross_entropy_loss = loss_only

    run(True), run(False)  # warm-up
    times = {"before": [], "after": []}
    losses = {}
    for r in range(repeats):
        for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
            seconds, losses[which] = run(which == "before")
            times[which].append(seconds)
    print(f"evaluate, {len(data.val)} sequences: before {statistics.median(times['before']):.3f} s, "
          f"after {statistics.median(times['after']):.3f} s (medians of {repeats})", flush=True)
    return {"vocab": data.vocab_size, "sequences": len(data.val), "seq_len": data.val[0].shape[-1],
            "repeats": repeats, "times_s": times, "losses": losses,
            "loss_diff": abs(losses["before"] - losses["after"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--evals", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)

    info = {"machine": machine()}
    print(info["machine"], flush=True)
    info["seed_call"] = seed = bench_seed_call(args.rounds, args.warmup)
    info["evaluate"] = ev = bench_evaluate(args.evals)
    info["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["before_from_brief"] = BEFORE
    (args.out / "seed_call_results.json").write_text(json.dumps(info, indent=1))

    m = info["machine"]
    med = statistics.median
    t = seed["times_s"]
    lines = [
        "# `model(input_ids=x, labels=x)`: course model vs transformers",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch threads; "
        f"torch {m['torch']}, transformers {m['transformers']}. Load average at start "
        f"{', '.join(f'{v:.1f}' for v in m['load_average_at_start'] or [])}, at end "
        f"{', '.join(f'{v:.1f}' for v in info['load_average_at_end'] or [])}.",
        "",
        f"## Forward + backward, full vocabulary ({seed['vocab']:,} ids), "
        f"batch {seed['batch'][0]} × {seed['batch'][1]}",
        "",
        f"Capstone shape (2 layers, hidden 128, intermediate 256, 4 heads, 2 KV heads, eager attention), same "
        f"weights in both models; {seed['warmup']} warm-up round, then {seed['rounds']} interleaved rounds "
        "(order alternating). Ratio = course time / transformers time in the same round.",
        "",
        "| round | transformers s | course s | course / transformers | course before the fix s "
        "| before / transformers |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(seed["rounds"]):
        lines.append(f"| {i + 1} | {t['transformers'][i]:.3f} | {t['course'][i]:.3f} | {seed['ratio'][i]:.2f} | "
                     f"{t['course_before'][i]:.3f} | {seed['ratio_before_recreated'][i]:.2f} |")
    lines += [
        "",
        "| course / transformers | median | range |",
        "|---|---:|---:|",
        f"| before the fix (from the task brief, {BEFORE['pairs']} pairs) | {BEFORE['median']:.2f} | "
        f"{BEFORE['low']:.1f}–{BEFORE['high']:.1f} |",
        f"| before the fix, re-created in this run (slice the logits) | {med(seed['ratio_before_recreated']):.2f} | "
        f"{min(seed['ratio_before_recreated']):.2f}–{max(seed['ratio_before_recreated']):.2f} |",
        f"| after the fix (shift the labels) | {med(seed['ratio']):.2f} | "
        f"{min(seed['ratio']):.2f}–{max(seed['ratio']):.2f} |",
        "",
        f"Losses: course {seed['losses']['course']:.6f}, transformers {seed['losses']['transformers']:.6f} "
        f"(difference {seed['loss_diff_course_vs_transformers']:.1e}); the re-created old loss differs from the "
        f"new one by {seed['loss_diff_before_vs_after']:.1e}.",
        "",
        f"## Evaluation: `course_lib.train.evaluate`, {ev['sequences']} held-out sequences of {ev['seq_len']}, "
        f"compact vocabulary ({ev['vocab']:,} ids)",
        "",
        f"Median of {ev['repeats']} (after one warm-up each, interleaved). Before: under `torch.no_grad` the loss "
        "still came from `LinearCrossEntropy`, which computes the gradients of the hidden states and the head "
        "weight in its forward. After: `chunked_cross_entropy_loss`, the loss alone.",
        "",
        "| | median s | range s | held-out loss |",
        "|---|---:|---:|---:|",
    ]
    for which in ("before", "after"):
        ts = ev["times_s"][which]
        lines.append(f"| {which} | {med(ts):.3f} | {min(ts):.3f}–{max(ts):.3f} | {ev['losses'][which]:.6f} |")
    lines += ["", f"Speed-up {med(ev['times_s']['before']) / med(ev['times_s']['after']):.1f}×; "
              f"loss difference {ev['loss_diff']:.1e}."]
    (args.out / "seed_call_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
