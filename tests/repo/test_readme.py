"""README.md shows the committed capstone run and the measured speed, nothing left to fill in."""

import json
import re

from classroom.readme import readme_section, replace_readme_section

from ..notebook_helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = ROOT / "results"


def test_no_placeholders_left():
    assert "PLACEHOLDER" not in README


def test_every_image_in_the_readme_exists():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images, "the README shows no figure"
    missing = [p for p in images if not p.startswith("http") and not (ROOT / p).is_file()]
    assert not missing, f"images the README shows but the repository lacks: {missing}"


def test_capstone_section_is_generated_from_the_committed_run():
    results = json.loads((RESULTS / "capstone_compact.json").read_text(encoding="utf-8"))
    assert results["complete"] and results["config"]["steps"] == 200 and results["config"]["seeds"] >= 5, \
        "the README must show a full run, not quick mode"
    assert readme_section(results) in README, (
        "README's capstone section differs from results/capstone_compact.json; run "
        "`python -m classroom.readme results/capstone_compact.json`")
    assert replace_readme_section(README, results) == README
    seeds = results["config"]["seeds"]
    passes = {1: "one pass", 2: "two passes"}
    prose = " ".join(README.split("<!-- capstone results")[0].split())  # hand-written text, one line
    assert prose.count(f"over {seeds} seeds") == 2, "README's syllabus row and capstone intro must state the seeds"
    for name in results["cells"]:  # every committed condition is named in the hand-written intro
        n = round(len(next(iter(results["cells"][name]["torch_adamw"]["seeds"].values()))["train_loss"])
                  * results["config"]["batch_size"] / results["sequences"]["train"])
        assert passes[n] in prose, f"README's capstone intro does not mention the condition {name} ({passes[n]})"


def test_speed_figures_are_the_recorded_benchmark():
    bench = json.loads((ROOT / "benchmarks" / "capstone_results.json").read_text())
    baseline = next(r for r in bench["rows"] if r["setup"].startswith("baseline") and r["vocab"] == 128_256)
    assert f"{baseline['step_s']:.2f} s" in README, "README's baseline step time is not the recorded one"


def test_seed_call_figures_are_the_recorded_benchmark():
    """README's figures for model(input_ids=x, labels=x) and the evaluation path come from
    benchmarks/seed_call_results.json (make benchmark), not from memory."""
    import statistics

    bench = json.loads((ROOT / "benchmarks" / "seed_call_results.json").read_text())
    call, evaluate = bench["seed_call"], bench["evaluate"]
    after, before = call["ratio"], call["ratio_before_recreated"]
    assert f"median {statistics.median(after):.2f}×" in README and f"중앙값 {statistics.median(after):.2f}배" in README
    assert f"{min(after):.2f}–{max(after):.2f} over {call['rounds']} interleaved rounds" in README
    assert f"median {statistics.median(before):.2f}× for the old path" in README
    assert call["loss_diff_course_vs_transformers"] == 0.0  # "the same loss to the last bit"
    times = evaluate["times_s"]
    assert (f"{statistics.median(times['after']):.2f} s instead of {statistics.median(times['before']):.2f} s"
            in README)


def test_clone_line_is_the_course_repository():
    from course_lib import REPO_URL

    assert f"git clone {REPO_URL}.git && cd {REPO_URL.rsplit('/', 1)[1]}" in README
