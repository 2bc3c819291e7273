"""How long `make test` takes, and where the time goes: runs the suite (quick mode, as `make test` does)
once per process count and writes benchmarks/test_suite.{json,md}.

    python benchmarks/bench_test_suite.py --jobs 2     # as `make test` runs it (2 processes, --dist worksteal)
    python benchmarks/bench_test_suite.py --jobs 0 2   # one process, then 2

Per-file times come from pytest's JUnit XML (the sum of a file's tests: setup, call and teardown). Run it
on an idle machine: another busy process makes every number larger.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"
TEST_PATHS = ["tests", "notebooks/en", "notebooks/ko"]
# Earlier measurements, kept for comparison: (what, tests, seconds). Before pytest-xdist the suite ran in one
# process (torch with 2 threads); this is CI's own clean-clone run of `make test` at that commit.
HISTORY = [("one process, CI clean clone at commit 018ce14 (before this benchmark)", 824, 592),
           ("2 (pytest-xdist, --dist loadfile), commit f1da6c6, before the redesign", 924, 403)]
# The per-file times of that last run, kept for comparison (the tests were one flat folder then).
BEFORE = OUT / "test_suite_before_redesign.json"
DIST = "loadgroup"


def run_suite(jobs: int, xml: Path) -> dict:
    cmd = [sys.executable, "-m", "pytest", *TEST_PATHS, "--nbmake", "--nbmake-timeout=900", "-p", "no:cacheprovider",
           "-q", f"--junitxml={xml}"]
    if jobs:
        cmd += ["-n", str(jobs), "--dist", DIST]
    started = time.perf_counter()
    env = {**os.environ, "COURSE_QUICK": "1"}
    if jobs:  # as `make test` does: one torch thread per process, so the processes do not oversubscribe the cores
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lint_started = time.perf_counter()  # `make test` runs ruff first
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "course_lib", "classroom", "tests", "benchmarks",
                           "resource", "notebooks/en"], cwd=ROOT, capture_output=True, text=True)
    lint_s = time.perf_counter() - lint_started
    if lint.returncode != 0:
        raise SystemExit(f"ruff failed:\n{lint.stdout[-3000:]}")
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    if proc.returncode != 0:
        raise SystemExit(f"the suite failed with {jobs} jobs: {summary}\n{proc.stdout[-3000:]}")
    per_file: dict[str, float] = defaultdict(float)
    tests = 0
    for case in ET.parse(xml).getroot().iter("testcase"):
        tests += 1
        classname = case.get("classname", "")
        if classname.startswith("notebooks"):  # an nbmake item: key by notebook, en and ko summed
            name = case.get("name", classname).split("::")[0]
        else:  # tests.classroom.test_grade -> tests/classroom/test_grade
            name = classname.replace(".", "/")
        per_file[name] += float(case.get("time", 0.0))
    return {"jobs": jobs, "wall_s": round(wall, 1), "lint_s": round(lint_s, 1), "tests": tests, "summary": summary,
            "per_file_s": dict(sorted(((k, round(v, 1)) for k, v in per_file.items()), key=lambda kv: -kv[1]))}


def write_report(runs: list[dict]) -> None:
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "runs": runs}
    (OUT / "test_suite.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    lines = ["# `make test`: where the time goes", "",
             f"Measured by `benchmarks/bench_test_suite.py` on {os.cpu_count()} CPU cores, Python "
             f"{platform.python_version()}, quick mode (`COURSE_QUICK=1`), tests already set up (no install).", "",
             "| processes | tests | wall time |", "|---|---|---|"]
    for what, tests, seconds in HISTORY:
        lines.append(f"| {what} | {tests} | {seconds / 60:.1f} min ({seconds} s) |")
    for r in runs:
        lines.append(f"| {r['jobs'] or 1}{f' (pytest-xdist, --dist {DIST})' if r['jobs'] else ''} | {r['tests']} | "
                     f"{r['wall_s'] / 60:.1f} min ({r['wall_s']:.0f} s) + ruff {r['lint_s']:.0f} s |")
    base = runs[0]
    lines += ["", f"Slowest files, summed test time in the run with {base['jobs'] or 1} process(es) "
              "(a notebook's row sums its en and ko quick-mode runs):", "", "| file | seconds |", "|---|---|"]
    for name, seconds in list(base["per_file_s"].items())[:20]:
        lines.append(f"| `{name}` | {seconds:.0f} |")
    total = sum(base["per_file_s"].values())
    lines += [f"| all {len(base['per_file_s'])} files | {total:.0f} |", ""]
    if BEFORE.is_file():
        before = json.loads(BEFORE.read_text(encoding="utf-8"))["runs"][-1]
        lines += [f"Before the redesign (flat tests/, --dist loadfile, {before['tests']} tests, "
                  f"{before['wall_s']:.0f} s), the same sums:", "", "| file | seconds |", "|---|---|"]
        for name, seconds in list(before["per_file_s"].items())[:20]:
            lines.append(f"| `{name}` | {seconds:.0f} |")
        lines += [f"| all {len(before['per_file_s'])} files | {sum(before['per_file_s'].values()):.0f} |", ""]
    (OUT / "test_suite.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[2], help="process counts to time (0: no xdist)")
    args = parser.parse_args()
    runs = []
    for jobs in args.jobs:
        runs.append(run_suite(jobs, OUT / f".junit_{jobs}.xml"))
        (OUT / f".junit_{jobs}.xml").unlink()
        print(f"{jobs or 1} process(es): {runs[-1]['summary']} in {runs[-1]['wall_s']:.0f} s", flush=True)
        write_report(runs)  # written after each run: an interrupted benchmark keeps what it measured


if __name__ == "__main__":
    main()
