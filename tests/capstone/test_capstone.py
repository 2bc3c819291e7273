"""The capstone: same start for every optimizer, a search that brackets its optimum on a seed no table
reports, the ablation optimizers, the quick study end to end, a conclusion whose words (and attribution)
follow the numbers, and the committed results."""

import json
import math
import random

import pytest
import torch

from course_lib import capstone
from course_lib.baselines import baseline_losses
from course_lib.capstone import (STUDY_CONDITIONS, CapstoneConfig, build_model, conclusion, prepare_data, results_file,
                                 results_table, run_one, seed_table, study_summary)
from course_lib.capstone.experiment import ABLATIONS, evaluated_seeds, make_optimizer, parameter_groups
from course_lib.capstone.report import below_baseline, report_markdown, verdict
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
    cond = STUDY_CONDITIONS[0]
    c0, c1 = (capstone.condition_run_config(config, cond, s, len(data.train)) for s in (0, 1))
    assert (c0.model_seed, c0.data_seed) == (config.model_seed, config.data_seed)  # seed 0 is the original
    assert (c1.model_seed, c1.data_seed) == (config.model_seed + 1, config.data_seed + 1)
    w0, w1 = build_model(c0, data.vocab_size), build_model(c1, data.vocab_size)
    assert not torch.equal(w0.lm_head.weight, w1.lm_head.weight)
    assert c0.steps == len(data.train) // config.batch_size  # one pass: every sequence once
    two = next(c for c in STUDY_CONDITIONS if c.passes == 2)
    assert capstone.condition_run_config(config, two, 0, len(data.train)).steps == 2 * c0.steps


@pytest.mark.parametrize("tuning_seed,seeds,expected", [(0, 5, (1, 2, 3, 4, 5)), (2, 3, (0, 1, 3)), (7, 2, (0, 1))])
def test_the_tuning_seed_is_never_an_evaluated_seed(tuning_seed, seeds, expected):
    assert evaluated_seeds(CapstoneConfig(tuning_seed=tuning_seed, seeds=seeds)) == expected


def test_the_held_out_part_starts_where_a_document_starts():
    from course_lib.data import BOS_ID, load_token_resource, split_at_document

    data = prepare_data(CapstoneConfig())
    assert int(data.val.tokens[0]) == int(data.vocab_map.to_compact(torch.tensor([BOS_ID])))  # a document begins
    resource = load_token_resource()
    train, held_out, documents = split_at_document(resource.tokens, resource.document_starts, 0.1)
    assert len(train) in resource.document_starts and len(held_out) >= 12_800  # at least the 10% asked for
    assert documents == data.held_out_documents == sum(s >= len(train) for s in resource.document_starts)
    with pytest.raises(ValueError, match="no document starts"):
        split_at_document(torch.arange(10), [0], 0.1)


def test_the_ablations_change_only_what_they_say():
    config = CapstoneConfig.quick(hybrid_adamw_lr=1e-3, muon_lr=3e-2)
    data = prepare_data(config)
    model = build_model(config, data.vocab_size)
    vocab = {id(model.model.embed_tokens.weight), id(model.lm_head.weight)}

    def groups(opt, lr):
        optimizer, _ = make_optimizer(config, model, opt, lr)
        return [(g["use_muon"], g["lr"], g["ns_steps"] if g["use_muon"] else None, {id(p) for p in g["params"]})
                for g in optimizer.param_groups]

    (m_on, m_lr, m_ns, m_params), (a_on, a_lr, _, a_params) = groups("muon", 0.02)
    assert (m_on, m_lr, m_ns, a_on, a_lr) == (True, 0.02, 5, False, 1e-3) and not m_params & vocab
    assert groups("muon_adamw_searched", 0.004)[0][1:3] == (3e-2, 5)  # Muon at the hybrid's lr ...
    assert groups("muon_adamw_searched", 0.004)[1][1] == 0.004  # ... and the searched lr on the AdamW part
    assert groups("muon_no_ns", 0.1)[0][1:] == (0.1, 0, m_params)  # same matrices, no Newton-Schulz
    (v_on, v_lr, _, v_params), (_, v_adamw_lr, _, v_rest) = groups("muon_vocab", 0.05)
    assert v_params == vocab and v_lr == 0.05 and v_adamw_lr == 1e-3 and m_params <= v_rest
    counts = parameter_groups(config, data.vocab_size)
    assert counts["vocabulary"] == sum(p.numel() for p in model.parameters() if id(p) in vocab)
    assert counts["vocabulary"] + counts["hidden"] + counts["norms"] == model.num_parameters()
    with pytest.raises(ValueError, match="Unknown optimizer"):
        make_optimizer(config, model, "muon_everywhere_rms")


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
    data = prepare_data(quick)
    assert results["baselines"] == pytest.approx(baseline_losses(data.train, data.val, data.vocab_size))
    assert results["evaluated_seeds"] == list(evaluated_seeds(quick))
    assert quick.tuning_seed not in evaluated_seeds(quick)
    assert set(results["cells"]) == {c.name for c in STUDY_CONDITIONS} == set(quick.conditions)  # quick: all
    for cond in STUDY_CONDITIONS:
        tuned = {opt: results["cells"][cond.name][opt]["tuned"]["lr"] for opt in cond.optimizers}
        for opt in cond.optimizers:
            entry = results["cells"][cond.name][opt]
            assert sorted(entry["seeds"]) == [f"seed_{s}" for s in evaluated_seeds(quick)]
            assert len(entry["lr_search"]) == quick.search_max_points  # 2 start points, then one extension
            for run in entry["lr_search"].values():  # every search run is on the tuning seed
                assert run["model_seed"] == quick.model_seed + quick.tuning_seed
            for s, run in entry["seeds"].items():
                assert run["model_seed"] == quick.model_seed + int(s.split("_")[1])
                assert run["summary"]["best_val_ppl"] == pytest.approx(math.exp(run["summary"]["best_val_loss"]))
                assert run["memory"]["state_mb"] > 0 and run["summary"]["tokens_per_s"] > 0
                assert len(run["val_seconds"]) == len(run["val_steps"])
                assert len(run["train_loss"]) == cond.passes * len(data.train) // quick.batch_size
            if opt in ("muon", *ABLATIONS):  # the AdamW part took AdamW's tuned LR of the same condition
                assert entry["tuned"]["hybrid_adamw_lr"] == tuned["torch_adamw"]
            if opt == "muon_adamw_searched":  # ... except here, where Muon keeps the hybrid's and AdamW's is searched
                assert entry["tuned"]["muon_lr"] == tuned["muon"]
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == results["finished_runs"]  # one TensorBoard log per trained run
    report = (tmp_path / "capstone_compact.md").read_text(encoding="utf-8")
    assert results_table(results) in report and conclusion(results, "ko")[0] in report


# ------------------------------------------------------------------ the conclusion follows the data


SHIFTS = {"torch_adamw": 0.0, "muon_adamw_searched": -0.45, "muon_vocab": -0.40, "muon_no_ns": 0.0,
          "muon_all": -0.55}  # the hybrid's shift is the test's parameter


def synthetic_results(hybrid_shift: float, noise: float = 0.01, seeds: int = 5, shifts=None) -> dict:
    """A finished results file whose hybrid is ``hybrid_shift`` above (+) or below (-) AdamW on every
    seed and every other optimizer ``shifts[opt]`` away, plus seed noise; every other number plausible."""
    rng = random.Random(0)
    config = CapstoneConfig(seeds=seeds)
    shifts = {**SHIFTS, **(shifts or {}), "muon": hybrid_shift}

    def run(low, steps_per_pass=55, passes=1):
        steps = list(range(11, 55 * passes + 1, 11))
        val = [low + 0.5 * (len(steps) - 1 - i) / len(steps) for i in range(len(steps))]
        train = [9.0 - 0.02 * i for i in range(55 * passes)]
        return {"train_loss": train, "val_steps": steps, "val_loss": val, "val_seconds": [s * 0.25 for s in steps],
                "memory": {"state_mb": 50.0, "peak_mb": 900.0},
                "summary": {"best_val_loss": min(val), "best_val_step": steps[val.index(min(val))],
                            "final_val_loss": val[-1], "final_train_ma": low - 0.3, "tokens_per_s": 8000.0}}

    cells = {}
    for cond in STUDY_CONDITIONS:
        cells[cond.name] = {}
        base = [7.4 + rng.gauss(0, noise) for _ in range(seeds)]
        for opt in cond.optimizers:
            cells[cond.name][opt] = {
                "tuned": {"lr": 0.002, "bracketed": True, "hybrid_adamw_lr": 0.002 if opt != "torch_adamw" else None,
                          "muon_lr": 0.01 if opt == "muon_adamw_searched" else None},
                "seeds": {f"seed_{s}": run(base[i] + shifts[opt] + rng.gauss(0, noise), passes=cond.passes)
                          for i, s in enumerate(evaluated_seeds(config))}}
    replica = {opt: {"train_loss": [9.0] * 200, "summary": {"final_train_ma": loss, "final_train_ppl": math.exp(loss)}}
               for opt, loss in (("torch_adamw", 6.2), ("muon_all", 4.3))}
    return {"config": json.loads(json.dumps(config.__dict__)), "vocab_size": 16925, "parameters": 4_628_352,
            "parameter_groups": {"vocabulary": 4_332_800, "hidden": 294_912, "norms": 640,
                                 "hidden_shapes": [[64, 128], [128, 128], [128, 256], [256, 128]]},
            "baselines": {"unigram": 7.46, "unigram_ci95": 0.07, "bigram": 6.87, "bigram_ci95": 0.10,
                          "bigram_discount": 0.8, "held_out_sequences": 117, "held_out_targets": 14_859},
            "sequences": {"replica": 1000, "train": 880, "held_out": 117, "held_out_documents": 13},
            "replica": replica, "cells": cells}


def hybrid_sentence(results, lang="en"):
    """The hybrid's part of the main condition's sentence: from its label to the next optimizer's."""
    line = next(line for line in conclusion(results, lang)
                if "constant LR, held-out" in line or "고정 학습률, 검증" in line)
    label, next_label = ("Muon hybrid", "Muon everywhere") if lang == "en" else ("Muon 하이브리드", "전체 Muon")
    return line.split(label)[1].split(next_label)[0]


@pytest.mark.parametrize("shift,word_en,word_ko,reached", [
    (-0.2, ": lower", "더 낮음", True), (0.2, ": higher", "더 높음", False),
    (0.0, ": level (within noise)", "비슷함", None)])
def test_conclusion_says_what_the_numbers_say(shift, word_en, word_ko, reached):
    results = synthetic_results(shift)
    en, ko = hybrid_sentence(results, "en"), hybrid_sentence(results, "ko")
    assert word_en in en and word_ko in ko
    if reached:  # the hybrid gets to AdamW's target on every seed, read on the 11-step evaluation grid
        assert "reached the target by step ≤" in en and "on 5 of 5 seeds" in en and "5개 중 5개" in ko
    if reached is False:  # it never reaches the target: no step count is claimed
        assert "never reached the target on 5 seeds" in en and "≤" not in en and "목표에 못 미침" in ko


def test_the_attribution_sentence_is_computed_from_the_ablations():
    results = synthetic_results(-0.10, noise=0.0)
    att = study_summary(results)["attribution"]["one_pass_constant"]
    assert att["total"]["gain"] == pytest.approx(0.55) and att["vocabulary"]["gain"] == pytest.approx(0.40)
    assert att["hidden"]["gain"] == pytest.approx(0.10) and att["rest"]["gain"] == pytest.approx(0.05)
    assert att["vocabulary_share"] == pytest.approx(0.40 / 0.55)
    line = next(x for x in conclusion(results, "en") if x.startswith("Muon by parameter group"))
    assert "Muon everywhere 0.550 ± 0.000;" in line
    assert "(embedding and LM head, AdamW on the rest) 0.400 ± 0.000;" in line
    assert "(the hybrid) 0.100 ± 0.000." in line and "the two parts, 0.050 ± 0.000, mixes" in line
    ko = next(x for x in conclusion(results, "ko") if x.startswith("매개변수 묶음별 Muon"))
    assert "어휘 행렬(임베딩과 LM 헤드)에만 0.400 ± 0.000" in ko
    assert study_summary(results)["attribution"]["two_pass_constant"] is None  # no ablations there: no sentence


def test_the_conclusion_places_every_optimizer_against_the_bigram_table():
    results = synthetic_results(-0.2, shifts={"muon_all": -0.70, "muon_vocab": -0.50})
    line = next(x for x in conclusion(results, "en") if x.startswith("one_pass_constant, lowest held-out loss"))
    below, rest = line.split("below the bigram's sequence interval: ")[1].split(";", 1)
    assert "Muon everywhere" in below and "AdamW" not in below  # 7.4 - 0.7 = 6.7 < 6.87 - 0.10
    assert "Muon on the vocabulary matrices only" in rest.split("above that")[0]  # 6.9: within 6.87 ± 0.10
    assert rest.split("above that interval: ")[1].startswith("AdamW 7.")
    assert any("Where the parameters are: 4,628,352 in all" in x and "(93.6%)" in x for x in conclusion(results))


def test_a_difference_inside_the_rerun_drift_is_level_even_if_every_seed_agrees():
    v = verdict([7.0] * 5, [7.0 - 0.02 + 1e-4 * i for i in range(5)])  # tight seeds, but only 0.02 apart
    assert v["ci"] < 0.02 and v["word"] == "level"
    assert verdict([7.0, 7.1, 7.2, 7.3, 7.4], [6.8, 6.9, 7.0, 7.1, 7.2])["word"] == "lower"
    with pytest.raises(ValueError, match="as many values"):
        verdict([1.0, 2.0], [1.0])


def test_seed_table_has_one_row_per_run_and_marks_a_missed_target():
    results = synthetic_results(0.2)  # the hybrid never reaches AdamW's target
    rows = seed_table(results).splitlines()[2:]
    assert len(rows) == sum(len(c.optimizers) for c in STUDY_CONDITIONS) * 5
    hybrid = [r for r in rows if r.startswith("| one_pass_constant | Muon hybrid |")]
    assert [r.split("|")[3].strip() for r in hybrid] == ["1", "2", "3", "4", "5"]  # the evaluated seeds
    assert all(r.split("|")[6].strip() == "—" for r in hybrid)


def test_committed_results_regenerate_their_report_and_say_where_they_stand_against_the_baselines():
    path = results_file("capstone_compact.json")
    results = json.loads(path.read_text(encoding="utf-8"))
    assert results["complete"] and results["parameters"] < 100e6
    assert path.with_suffix(".md").read_text(encoding="utf-8") == report_markdown(results)
    assert path.with_suffix(".png").stat().st_size > 50_000
    data = prepare_data(CapstoneConfig())
    assert results["baselines"] == pytest.approx(baseline_losses(data.train, data.val, data.vocab_size))
    cells, b = study_summary(results)["cells"], results["baselines"]
    assert set(cells) == set(CapstoneConfig().conditions) == {"one_pass_constant"}  # the default study
    one = cells["one_pass_constant"]["optimizers"]
    # README and notebook 09: only the hybrid with its AdamW part searched gets below the bigram's interval;
    # AdamW stays above it, and Muon everywhere is below the bigram's point estimate.
    below = [opt for opt, row in one.items() if below_baseline(row["lowest"], b) == "below"]
    assert below == ["muon_adamw_searched"]
    assert below_baseline(one["torch_adamw"]["lowest"], b) == "above"
    assert one["muon_all"]["lowest"]["mean"] < b["bigram"] < b["unigram"]
    assert (path.parent / "regime_search.md").is_file()  # the search for a setting beyond the bigram table
