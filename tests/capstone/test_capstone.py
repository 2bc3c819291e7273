"""The capstone: same start for every optimizer, a search that brackets its optimum, the quick study
end to end, a conclusion whose words follow the numbers, and the committed results."""

import json
import math
import random

import pytest
import torch

from course_lib import capstone
from course_lib.capstone import (STUDY_CELLS, CapstoneConfig, build_model, conclusion, prepare_data, results_file,
                                 results_table, run_one, seed_table, study_summary)
from course_lib.capstone.report import verdict
from course_lib.capstone.runner import search_lr


def test_every_optimizer_starts_from_the_same_weights_and_batches():
    config = CapstoneConfig.quick(steps=2)
    data = prepare_data(config)
    a = build_model(config, data.vocab_size)
    b = build_model(config, data.vocab_size)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    first = [run_one(config, data.train, opt, progress=False).train_loss[0] for opt in ("torch_adamw", "muon")]
    assert first[0] == first[1]  # same weights, same first batch -> same first loss


def test_study_seeds_change_initial_weights_and_batch_order():
    config = CapstoneConfig.quick()
    data = prepare_data(config)
    cell = STUDY_CELLS[0]
    c0, c1 = (capstone.cell_run_config(config, cell, s, len(data.train)) for s in (0, 1))
    assert (c0.model_seed, c0.data_seed) == (config.model_seed, config.data_seed)  # seed 0 is the original
    assert (c1.model_seed, c1.data_seed) == (config.model_seed + 1, config.data_seed + 1)
    w0, w1 = build_model(c0, data.vocab_size), build_model(c1, data.vocab_size)
    assert not torch.equal(w0.lm_head.weight, w1.lm_head.weight)
    assert c0.steps == len(data.train) // config.batch_size  # one pass: every sequence once


# ------------------------------------------------------------------------------------- LR search


@pytest.mark.parametrize("optimum", [1e-4, 3e-3, 0.5])
def test_search_extends_its_grid_until_the_optimum_is_bracketed(optimum):
    calls = []

    def objective(lr):
        calls.append(lr)
        return (math.log(lr) - math.log(optimum)) ** 2

    found = search_lr(objective, centre=3e-3, factor=2.0, max_points=20, log=lambda *a: None)
    lrs = sorted(found["tried"])
    assert found["bracketed"] and lrs[0] < found["best"] < lrs[-1]
    assert abs(math.log2(found["best"] / optimum)) <= 0.5  # the grid point nearest the optimum
    assert len(calls) == len(set(calls))  # no learning rate trained twice
    assert len(calls) == 3 + round(abs(math.log2(optimum / 3e-3)))  # start + one point per step outward


def test_search_says_when_it_gives_up_at_an_edge_and_treats_divergence_as_worst():
    notes = []
    found = search_lr(lambda lr: -lr, centre=1.0, max_points=4, log=notes.append)
    assert not found["bracketed"] and found["best"] == max(found["tried"]) and len(found["tried"]) == 4
    assert "still at the edge" in notes[0]
    diverging = search_lr(lambda lr: math.inf if lr > 1.5 else -lr, centre=1.0, log=notes.append)
    assert diverging["best"] == 1.0 and diverging["bracketed"]  # a diverged run brackets from above


# ------------------------------------------------------------------------------ quick end to end


def test_command_writes_every_output(tmp_path):
    assert capstone.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "capstone_compact.json").read_text())
    assert results["complete"] and (tmp_path / "capstone_compact.png").stat().st_size > 10_000
    assert set(results["replica"]) == {"torch_adamw", "muon_all"}
    quick = CapstoneConfig.quick()
    assert set(results["cells"]) == {c.name for c in STUDY_CELLS}
    for cell in STUDY_CELLS:
        for opt in cell.optimizers:
            entry = results["cells"][cell.name][opt]
            assert sorted(entry["seeds"]) == [f"seed_{s}" for s in range(quick.seeds)]
            assert len(entry["lr_search"]) == quick.search_max_points  # 2 start points, then one extension
            assert entry["seeds"]["seed_0"] == entry["lr_search"][f"{entry['tuned']['lr']:.4g}"]
            for s, run in entry["seeds"].items():
                assert run["model_seed"] == quick.model_seed + int(s.split("_")[1])
                assert run["summary"]["best_val_ppl"] == pytest.approx(math.exp(run["summary"]["best_val_loss"]))
                assert run["memory"]["state_mb"] > 0 and run["summary"]["tokens_per_s"] > 0
                assert len(run["val_seconds"]) == len(run["val_steps"])
            steps = 12 if cell.regime == "three_pass" else 4
            assert all(len(run["train_loss"]) == steps for run in entry["seeds"].values())
            if cell.schedule == "warmup_cosine":
                lrs = entry["seeds"]["seed_0"]["lr"]
                assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)  # warmup, then decay
            if opt == "muon":  # the hybrid's AdamW part took AdamW's tuned LR of the same cell
                assert entry["tuned"]["hybrid_adamw_lr"] == results["cells"][cell.name]["torch_adamw"]["tuned"]["lr"]
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == results["finished_runs"]  # one TensorBoard log per trained run
    report = (tmp_path / "capstone_compact.md").read_text(encoding="utf-8")
    assert results_table(results) in report and conclusion(results, "ko")[0] in report


# ------------------------------------------------------------------ the conclusion follows the data


def synthetic_results(hybrid_shift: float, noise: float = 0.01, seeds: int = 5) -> dict:
    """A finished results file whose hybrid is ``hybrid_shift`` above (+) or below (-) AdamW on every
    seed, plus seed noise; every other number plausible."""
    rng = random.Random(0)
    config = CapstoneConfig(seeds=seeds)

    def run(low):
        steps = list(range(8, 57, 8))
        val = [low + 0.5 * (len(steps) - 1 - i) / len(steps) for i in range(len(steps))]
        return {"train_loss": [9.0] * 56, "val_steps": steps, "val_loss": val, "val_seconds": [s * 0.25 for s in steps],
                "memory": {"state_mb": 50.0, "peak_mb": 900.0},
                "summary": {"best_val_loss": min(val), "final_val_loss": val[-1], "final_train_ma": low - 0.3,
                            "tokens_per_s": 8000.0}}

    cells = {}
    for cell in STUDY_CELLS:
        cells[cell.name] = {}
        base = [7.4 + rng.gauss(0, noise) for _ in range(seeds)]
        for opt in cell.optimizers:
            shift = hybrid_shift if opt == "muon" else 0.0
            cells[cell.name][opt] = {
                "tuned": {"lr": 0.002, "bracketed": True, "hybrid_adamw_lr": 0.002 if opt == "muon" else None},
                "seeds": {f"seed_{s}": run(base[s] + shift + rng.gauss(0, noise)) for s in range(seeds)}}
    replica = {opt: {"train_loss": [9.0] * 200, "summary": {"final_train_ma": loss, "final_train_ppl": math.exp(loss)}}
               for opt, loss in (("torch_adamw", 6.2), ("muon_all", 4.3))}
    return {"config": json.loads(json.dumps(config.__dict__)), "vocab_size": 16925, "parameters": 4_628_352,
            "sequences": {"replica": 1000, "train": 900, "held_out": 100}, "replica": replica, "cells": cells}


def hybrid_sentence(results, lang="en"):
    """The hybrid's part of the main cell's sentence: from its label to the next optimizer's."""
    line = next(line for line in conclusion(results, lang)
                if "constant LR, held-out" in line or "고정 학습률, 검증" in line)
    label, next_label = ("Muon hybrid", "Muon everywhere") if lang == "en" else ("Muon 하이브리드", "전체 Muon")
    return line.split(label)[1].split(next_label)[0]


@pytest.mark.parametrize("shift,word_en,word_ko,speed_en,speed_ko", [
    (-0.2, ": lower", "더 낮음", "fewer steps", "스텝 "),
    (0.2, ": higher", "더 높음", None, None),
    (0.0, ": level (within noise)", "비슷함", None, None)])
def test_conclusion_says_what_the_numbers_say(shift, word_en, word_ko, speed_en, speed_ko):
    results = synthetic_results(shift)
    en, ko = hybrid_sentence(results, "en"), hybrid_sentence(results, "ko")
    assert word_en in en and word_ko in ko
    if speed_en:  # the hybrid reaches AdamW's target earlier on every seed: the sentence says by how much
        assert speed_en in en and "적게 씀" in ko.split(speed_ko)[1]
    if shift > 0:  # it never reaches the target: no speed-up is claimed
        assert "reached the target on 0 of 5" in en and "fewer" not in en and "적게" not in ko


def test_a_difference_inside_the_rerun_drift_is_level_even_if_every_seed_agrees():
    v = verdict([7.0] * 5, [7.0 - 0.02 + 1e-4 * i for i in range(5)])  # tight seeds, but only 0.02 apart
    assert v["ci"] < 0.02 and v["word"] == "level"
    assert verdict([7.0, 7.1, 7.2, 7.3, 7.4], [6.8, 6.9, 7.0, 7.1, 7.2])["word"] == "lower"
    with pytest.raises(ValueError, match="as many values"):
        verdict([1.0, 2.0], [1.0])


def test_seed_table_has_one_row_per_run_and_marks_a_missed_target():
    results = synthetic_results(0.2)  # the hybrid never reaches AdamW's target
    rows = seed_table(results).splitlines()[2:]
    assert len(rows) == sum(len(c.optimizers) for c in STUDY_CELLS) * 5
    hybrid = [r for r in rows if r.startswith("| one_pass_constant | Muon hybrid |")]
    assert [r.split("|")[3].strip() for r in hybrid] == ["0", "1", "2", "3", "4"]
    assert all(r.split("|")[6].strip() == "—" for r in hybrid)


def test_committed_capstone_has_the_hybrid_below_adamw_in_every_setting_at_4_6m_parameters():
    results = json.loads(results_file("capstone_compact.json").read_text(encoding="utf-8"))
    study = study_summary(results)
    assert results["parameters"] < 100e6 and study["cells"]
    for name in study["cells"]:
        assert study["verdicts"][(name, "muon", "lowest")]["word"] == "lower", name
