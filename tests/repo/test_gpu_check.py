"""benchmarks/gpu_check.py, the one command a GPU machine runs: it refuses to pretend on a CPU, and its CPU
smoke mode runs every part a CPU can run and rewrites only its own section of the results file."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run for real")
def test_without_a_gpu_it_measures_nothing_and_says_so(tmp_path):
    out = tmp_path / "gpu_results.md"
    shutil.copy(ROOT / "benchmarks" / "gpu_results.md", out)
    before = out.read_text(encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "no CUDA GPU here" in done.stderr
    assert out.read_text(encoding="utf-8") == before


def test_cpu_smoke_fills_its_section_and_keeps_the_rest(tmp_path):
    out = tmp_path / "gpu_results.md"
    shutil.copy(ROOT / "benchmarks" / "gpu_results.md", out)
    before = out.read_text(encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    head, section, tail = text.partition("<!-- gpu check: begin -->")[0], \
        text.split("<!-- gpu check: begin -->")[1].split("<!-- gpu check: end -->")[0], \
        text.split("<!-- gpu check: end -->")[1]
    assert head == before.split("<!-- gpu check: begin -->")[0] and tail == before.split("<!-- gpu check: end -->")[1]
    assert "CPU smoke run, not GPU figures" in section and "FAILED" not in section
    for run in ("--precision auto, torch_adamw", "--precision auto, muon", "--precision bf16, torch_adamw",
                "--precision fp16, torch_adamw"):
        row = next(line for line in section.splitlines() if run in line)
        assert "| ok |" in row and "not finite" not in row, row
    assert "skipped: CPU smoke" in section and "skipped: 0 GPU(s) here" in section
    assert "per-tensor runs: True" in section or "per-tensor runs: False" in section
