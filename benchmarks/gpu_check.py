"""The GPU check: every GPU path of the course in one short run, its figures written into
``benchmarks/gpu_results.md``.

    python benchmarks/gpu_check.py                 # on a machine with a CUDA GPU (make gpu-check)
    python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu_results.md   # tiny, on a CPU: does it run?

What it runs, each part in its own process with a time limit, so one failure is reported and the rest still run:

1. the capstone model, 200 steps, AdamW and the hybrid Muon, ``--precision auto`` (bf16 on compute capability
   8.0+, fp16 + GradScaler on 7.x): tokens/s, s/step, MFU;
2. ``--precision bf16`` and ``--precision fp16`` (the latter with its GradScaler), 50 steps of AdamW each: does
   each train (finite losses), and how fast (on a T4 the bf16 row shows what emulated bf16 costs);
3. the same model under ``torch.compile``, 200 steps of AdamW: tokens/s against row 1;
4. a real FP8 matmul (``torch._scaled_mm``, per-tensor and row-wise scales): whether it runs, its TFLOP/s on a
   4096³ product against bf16, and its difference from the emulated product;
5. the GPT-2-small preset (notebook 10) for 5 steps of AdamW on the course's 128k tokens: tokens/s and MFU;
6. with two GPUs or more: 2-process NCCL DistributedDataParallel against one process, 50 steps of AdamW, the
   largest loss difference.

Each part has a time limit; on one GPU they add up to under 8 minutes (not yet measured: no GPU was
available when this script was written). It rewrites the part of ``--out`` between
the ``gpu check`` markers and keeps the rest of the file. After a real GPU run, notebook 10 and the README
still say that no GPU figure has been measured: update them (``tests/notebooks/test_claims.py`` points at
the sentences). ``--cpu-smoke`` runs every part that a CPU can run in a few seconds each, to test this
script; its figures are not GPU figures and the file says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gpu check: begin -->", "<!-- gpu check: end -->"
CAPSTONE = [sys.executable, "-m", "course_lib.capstone", "--no-progress"]


def run_capstone(args: list[str], out: Path, timeout: int, launcher: list[str] | None = None) -> dict:
    """One ``python -m course_lib.capstone`` command; returns its results JSON, or the error it ended with."""
    cmd = (launcher + CAPSTONE[1:] if launcher else CAPSTONE) + args + ["--out", str(out)]
    shown = "python " + " ".join(cmd[1:-2])  # without the interpreter's path and the scratch folder
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s", "command": shown}
    seconds = time.perf_counter() - start
    files = sorted(out.glob("scaled_*.json"))
    if done.returncode != 0 or not files:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " / ".join(tail), "command": shown}
    return {"results": json.loads(files[0].read_text()), "seconds": seconds, "command": shown}


def speed_cells(record: dict, opt: str) -> tuple[str, str, str, str]:
    """tokens/s, MFU, s/step and the loss change of one optimizer's run in a ``run_capstone`` record."""
    run = record["results"]["runs"][opt]
    speed, losses = run["throughput"], run["train_loss"]
    mfu = "—" if speed["mfu"] is None else f"{100 * speed['mfu']:.1f}%"
    step_s = run["seconds"] / len(losses)
    finite = all(map(math.isfinite, losses))
    change = f"{losses[0]:.3f} → {losses[-1]:.3f}" + ("" if finite else " (not finite!)")
    return f"{speed['tokens_per_s']:,.0f}", mfu, f"{step_s:.3f}", change


def fp8_check(device: torch.device, size: int) -> dict:
    """Whether _scaled_mm runs per tensor and row-wise here, its speed against bf16 and its error against the
    emulated product."""
    from course_lib.fp8 import quantize_per_tensor, relative_error, scaled_mm, scaled_mm_available

    found = {"per-tensor": scaled_mm_available(device),
             "row-wise (bf16 output)": scaled_mm_available(device, rowwise=True, out_dtype=torch.bfloat16)}
    if not found["per-tensor"]:
        return {"available": found}
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    (qa, sa), (qb, sb) = quantize_per_tensor(a), quantize_per_tensor(b)
    real, emulated = scaled_mm(qa, qb, sa, sb), scaled_mm(qa, qb, sa, sb, emulate=True)

    def tflops(fn) -> float:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, n = time.perf_counter(), 10
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 2 * size**3 * n / (time.perf_counter() - start) / 1e12

    a16, b16 = a.bfloat16(), b.bfloat16()
    return {"available": found, "fp8_tflops": tflops(lambda: scaled_mm(qa, qb, sa, sb)),
            "bf16_tflops": tflops(lambda: a16 @ b16.t()),
            "vs_emulated": relative_error(real, emulated), "vs_fp32": relative_error(real, a @ b.t())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_results.md")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny runs on a CPU, to test this script")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here, so nothing to measure (use --cpu-smoke to test the script)",
              file=sys.stderr)
        return 2
    if not args.out.is_file() or BEGIN not in args.out.read_text(encoding="utf-8"):
        parser.error(f"{args.out} must exist and hold the markers {BEGIN} ... {END}")
    device = torch.device("cpu" if smoke else "cuda")
    from course_lib.precision import autocast_dtype_for, grad_scaler_for
    from course_lib.runtime import describe_device

    auto = autocast_dtype_for(device)
    auto_text = f"{auto or 'fp32'}" + (" + GradScaler" if grad_scaler_for(device, auto) is not None else "")
    steps = (lambda n: 2) if smoke else (lambda n: n)
    base = ["--quick"] if smoke else []
    rows, notes = [], []
    scratch = tempfile.TemporaryDirectory(prefix="gpu_check_")  # the runs' own outputs, removed at the end
    work = Path(scratch.name)

    def capstone_row(label, extra, n_steps, opts, timeout, launcher=None):
        out = work / label.replace(" ", "_").replace(",", "")
        record = run_capstone(base + ["--optimizers", *opts, "--steps", str(steps(n_steps)), *extra], out,
                              timeout, launcher)
        if "error" in record:
            rows.append((label, "—", "—", "—", "—", f"FAILED: {record['error']}", record["command"]))
            return None
        for opt in opts:
            rows.append((f"{label}, {opt}", *speed_cells(record, opt), "ok", record["command"]))
        return record

    started = time.perf_counter()
    capstone_row("capstone model, --precision auto", [], 200, ["torch_adamw", "muon"], 120)
    precisions = ["bf16", "fp16"]
    for precision in precisions:
        capstone_row(f"capstone model, --precision {precision}", ["--precision", precision], 50, ["torch_adamw"], 60)
    if smoke:
        rows.append(("capstone model, --compile", "—", "—", "—", "—", "skipped: CPU smoke (compiling takes minutes)",
                     "python -m course_lib.capstone --optimizers torch_adamw --steps 200 --compile"))
    else:
        capstone_row("capstone model, --compile", ["--compile"], 200, ["torch_adamw"], 100)
    try:
        fp8 = fp8_check(device, 256 if smoke else 4096)
    except Exception as err:  # report it and go on: one failed part must not hide the others
        fp8 = {"error": f"{type(err).__name__}: {err}"}
    if smoke:
        rows.append(("GPT-2-small preset", "—", "—", "—", "—", "skipped: CPU smoke (minutes on a CPU)",
                     "python -m course_lib.capstone --preset gpt2-small --micro-batch 8 --optimizers torch_adamw "
                     "--steps 5"))
    else:
        capstone_row("GPT-2-small preset, 128k tokens", ["--preset", "gpt2-small", "--micro-batch", "8"], 5,
                     ["torch_adamw"], 120)
    gpus = torch.cuda.device_count() if not smoke else 0
    if gpus >= 2:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]  # + -m ...
        two = capstone_row("capstone model, 2 GPUs (NCCL DDP)", [], 50, ["torch_adamw"], 120, launcher)
        one = capstone_row("capstone model, 1 GPU (same 50 steps)", [], 50, ["torch_adamw"], 90)
        if two and one:
            diff = max(abs(x - y) for x, y in zip(two["results"]["runs"]["torch_adamw"]["train_loss"],
                                                  one["results"]["runs"]["torch_adamw"]["train_loss"]))
            notes.append(f"2 GPUs vs 1 GPU, 50 steps of AdamW: largest train-loss difference {diff:.2e}.")
    else:
        rows.append(("capstone model, 2 GPUs (NCCL DDP)", "—", "—", "—", "—",
                     f"skipped: {gpus} GPU(s) here",
                     "torchrun --standalone --nproc_per_node=2 -m course_lib.capstone --optimizers torch_adamw "
                     "--steps 50"))
    total = time.perf_counter() - started
    scratch.cleanup()

    lines = [BEGIN, "",
             f"## GPU check: {'CPU smoke run, not GPU figures' if smoke else 'measured'} "
             f"({time.strftime('%Y-%m-%d')}, `python benchmarks/gpu_check.py`)", "",
             f"Device: {describe_device(device)}; torch {torch.__version__}"
             + (f", CUDA {torch.version.cuda}, compute capability "
                f"{'.'.join(map(str, torch.cuda.get_device_capability()))}" if not smoke else "")
             + f"; `--precision auto` here: {auto_text}; {total:.0f} s in all.", "",
             "| run | tokens/s | MFU | s/step | train loss first → last | status | command |",
             "|---|---:|---:|---:|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | `{r[6]}` |" for r in rows]
    lines += ["", "FP8 (`torch._scaled_mm`, E4M3 operands): "]
    if "error" in fp8:
        lines[-1] += f"FAILED: {fp8['error']}"
    else:
        lines[-1] += ", ".join(f"{k} runs: {v}" for k, v in fp8["available"].items())
        if "fp8_tflops" in fp8:
            lines[-1] += (f"; {fp8['fp8_tflops']:.3g} TFLOP/s against {fp8['bf16_tflops']:.3g} for bf16 on the same "
                          f"product; relative difference from the emulated product {fp8['vs_emulated']:.1e}, "
                          f"from fp32 {fp8['vs_fp32']:.4f}.")
    lines += [""] + notes + ([""] if notes else []) + [END]
    text = args.out.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    args.out.write_text(head + "\n".join(lines) + tail, encoding="utf-8")
    print(f"gpu_check: wrote {args.out} ({len(rows)} runs, {total:.0f} s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
