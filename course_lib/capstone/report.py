"""What the capstone's results say, computed from the results file: per-seed statistics, the table,
and the conclusion in words (English or Korean). Nothing here is typed in from a run: change the
results and every number and every direction word follows.
"""

from __future__ import annotations

import math
import statistics

from ..i18n import notebook_language, tr
from ..optim import muon_lr_scale
from .experiment import LABELS, STUDY_CELLS

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (then the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)

# How far a reader's rerun of the same command may land from the committed numbers, in held-out loss.
# Measured by rerunning the committed capstone on a second 2-core CPU: identical to 1e-6 at low learning
# rates, up to 0.03 at the highest (float rounding in another order, amplified by training). A
# difference smaller than this is called level whatever the seeds say.
RERUN_DRIFT = 0.03

# Published comparisons, cited as such (none of them is measured by this course).
PUBLISHED = {
    "en": [
        "modded-nanogpt's optimizer track (Keller Jordan et al., github.com/KellerJordan/modded-nanogpt, 124M "
        "parameters, 524k tokens per step): AdamW needs 5,625 steps and Muon 3,600 to reach 3.28 validation loss, "
        "about 1.56x; the AdamW entry is marked there as likely under-tuned.",
        "Wen et al. 2025, \"Fantastic pretraining optimizers and where to find them\": against well-tuned AdamW, "
        "speed-ups of about 1.4x at 0.1B parameters shrinking to about 1.1x at 1.2B.",
        "Liu et al. 2025, \"Muon is scalable for LLM training\" (Moonlight): about 2x compute efficiency over AdamW "
        "in scaling-law fits.",
    ],
    "ko": [
        "modded-nanogpt의 옵티마이저 트랙(Keller Jordan 외, github.com/KellerJordan/modded-nanogpt, "
        "매개변수 1.24억 개, 스텝당 52.4만 토큰): 검증 손실 3.28에 도달하는 데 AdamW는 5,625스텝, Muon은 3,600스텝이 "
        "걸려 약 1.56배입니다. "
        "AdamW 기록은 튜닝이 덜 되었을 수 있다고 그곳에 적혀 있습니다.",
        "Wen 외 2025, \"Fantastic pretraining optimizers and where to find them\": 잘 튜닝한 AdamW 대비 속도 향상이 "
        "매개변수 0.1B에서 약 1.4배, 1.2B에서는 약 1.1배로 줄어듭니다.",
        "Liu 외 2025, \"Muon is scalable for LLM training\"(Moonlight): 스케일링 법칙 피팅에서 AdamW 대비 약 2배의 "
        "계산 효율.",
    ],
}


# ------------------------------------------------------------------------------------- statistics


def mean_ci(values) -> tuple[float, float | None]:
    """(mean, half-width of the two-sided 95 % t interval); the half-width is None for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_ci needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    t = _T975[len(values) - 2] if len(values) - 1 <= len(_T975) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def verdict(a_values, b_values, drift: float = RERUN_DRIFT) -> dict:
    """Compare b with a over paired seeds (seed s of both shares initialisation and batch order).

    ``diff`` is the mean of b - a with its 95 % half-width ``ci``. The word is ``lower`` or
    ``higher`` only when the interval excludes 0 *and* the mean difference exceeds ``drift`` (what a
    rerun on another machine may move); otherwise ``level``."""
    if len(a_values) != len(b_values):
        raise ValueError(f"paired comparison needs as many values on both sides, got {len(a_values)} and "
                         f"{len(b_values)}")
    diffs = [b - a for a, b in zip(a_values, b_values)]
    diff, ci = mean_ci(diffs)
    clear = ci is not None and abs(diff) > ci and abs(diff) > drift
    word = ("lower" if diff < 0 else "higher") if clear else "level"
    return {"diff": diff, "ci": ci, "word": word, "n": len(diffs)}


def first_reach(val_steps, val_loss, target: float, val_seconds=None):
    """(step, training seconds) of the first evaluation at or below ``target``; (None, None) if never."""
    for i, (step, loss) in enumerate(zip(val_steps, val_loss)):
        if loss <= target:
            return step, (val_seconds[i] if val_seconds else None)
    return None, None


# --------------------------------------------------------------------------------- cell summaries


def seed_runs(results: dict, cell: str, opt: str) -> list[dict]:
    seeds = results["cells"][cell][opt]["seeds"]
    return [seeds[k] for k in sorted(seeds, key=lambda k: int(k.split("_")[1]))]


def summarize_cell(results: dict, cell: str) -> dict:
    """Per optimizer: tuned LR, every seed's lowest and final held-out loss, steps and training seconds
    to the target (the median over seeds of AdamW's lowest held-out loss), and their means with 95 %
    intervals."""
    cell_results = results["cells"][cell]
    adamw_lows = [r["summary"]["best_val_loss"] for r in seed_runs(results, cell, "torch_adamw")]
    target = statistics.median(adamw_lows)
    out = {"target": target, "optimizers": {}}
    for opt in cell_results:
        runs = seed_runs(results, cell, opt)
        row = {"lr": cell_results[opt]["tuned"]["lr"], "bracketed": cell_results[opt]["tuned"]["bracketed"],
               "hybrid_adamw_lr": cell_results[opt]["tuned"].get("hybrid_adamw_lr"),
               "steps": len(runs[0]["train_loss"])}
        for key, field in (("lowest", "best_val_loss"), ("final", "final_val_loss"), ("train", "final_train_ma"),
                           ("tokens_per_s", "tokens_per_s")):
            values = [r["summary"][field] for r in runs]
            row[key] = {"values": values, **dict(zip(("mean", "ci"), mean_ci(values)))}
        reach = [first_reach(r["val_steps"], r["val_loss"], target, r.get("val_seconds")) for r in runs]
        for i, key in enumerate(("steps_to_target", "seconds_to_target")):
            values = [x[i] for x in reach]
            got = [v for v in values if v is not None]
            row[key] = {"values": values, "reached": len(got),
                        **dict(zip(("mean", "ci"), mean_ci(got) if got else (None, None)))}
        row["state_mb"] = runs[0].get("memory", {}).get("state_mb")
        row["peak_mb"] = max((r.get("memory", {}).get("peak_mb") or 0 for r in runs), default=0) or None
        out["optimizers"][opt] = row
    return out


def study_summary(results: dict) -> dict:
    """Every cell's summary plus the paired verdicts the conclusion states."""
    cells = {c.name: summarize_cell(results, c.name) for c in STUDY_CELLS if c.name in results.get("cells", {})}
    verdicts = {}
    for name, cell in cells.items():
        a = cell["optimizers"]["torch_adamw"]
        for opt, row in cell["optimizers"].items():
            if opt != "torch_adamw":
                verdicts[(name, opt, "lowest")] = verdict(a["lowest"]["values"], row["lowest"]["values"])
                verdicts[(name, opt, "final")] = verdict(a["final"]["values"], row["final"]["values"])
    if "one_pass_constant" in cells and "one_pass_cosine" in cells:
        for opt in cells["one_pass_cosine"]["optimizers"]:
            verdicts[("schedule", opt, "lowest")] = verdict(
                cells["one_pass_constant"]["optimizers"][opt]["lowest"]["values"],
                cells["one_pass_cosine"]["optimizers"][opt]["lowest"]["values"])
    return {"cells": cells, "verdicts": verdicts}


# ----------------------------------------------------------------------------------------- words

_LABELS_KO = {"torch_adamw": "AdamW", "adamw": "AdamW", "muon": "Muon 하이브리드",
              "muon_all": "전체 Muon(original 규칙)", "muon_all_rms": "전체 Muon(match_rms_adamw 규칙)"}


def _word(word: str, lang: str) -> str:
    """A verdict word ("lower", "higher", "level") in ``lang``."""
    return {"lower": tr("lower", "더 낮음", lang), "higher": tr("higher", "더 높음", lang),
            "level": tr("level (within noise)", "비슷함(잡음 범위 안)", lang)}[word]


def _label(opt: str, lang: str) -> str:
    """An optimizer's name in ``lang`` (``LABELS``); a name without a label is returned as it is."""
    english = LABELS.get(opt, opt)
    return tr(english, _LABELS_KO.get(opt, english), lang)


def label(opt: str) -> str:
    """An optimizer's name for the reader, in the notebook's language."""
    return _label(opt, notebook_language())


def passes(results: dict, cell_name: str) -> float:
    """How many times a run of the cell went over the training split (steps x batch / sequences)."""
    steps = len(seed_runs(results, cell_name, "torch_adamw")[0]["train_loss"])
    return steps * results["config"]["batch_size"] / results["sequences"]["train"]


def cell_description(results: dict, cell_name: str, lang: str = "en") -> str:
    """A cell in words, its numbers read from the results: regime, steps, passes over the training
    split, schedule and how often the held-out loss was measured."""
    cell = next(c for c in STUDY_CELLS if c.name == cell_name)
    run = seed_runs(results, cell_name, "torch_adamw")[0]
    steps, every, n = len(run["train_loss"]), run["val_steps"][0], passes(results, cell_name)
    schedule = {"constant": tr("constant LR", "고정 학습률", lang),
                "warmup_cosine": tr("warmup + cosine", "워밍업 + 코사인", lang)}[cell.schedule]
    one_pass = cell.regime == "one_pass"
    return tr(f"{'one pass' if one_pass else 'several passes as in the original'} ({steps} steps, {n:.1f} passes "
              f"over the training split), {schedule}, held-out loss every {every} steps",
              f"{'한 번 통과' if one_pass else '원본처럼 여러 번 통과'}({steps}스텝, 학습 데이터 {n:.1f}번), "
              f"{schedule}, "
              f"검증은 {every}스텝마다", lang)


def _pm(mean, ci, digits=3) -> str:
    return f"{mean:.{digits}f}" if ci is None else f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _loss(stat: dict) -> str:
    """Mean ± 95 % half-width of a loss, with the perplexity of the mean."""
    return f"{_pm(stat['mean'], stat['ci'])} (ppl {math.exp(stat['mean']):,.0f})"


def _speedup(a_row, b_row, key="steps_to_target"):
    """AdamW's mean steps (or seconds) to the target over b's, over the seeds where both reached it
    (None if none)."""
    pairs = [(a, b) for a, b in zip(a_row[key]["values"], b_row[key]["values"]) if a is not None and b is not None]
    if not pairs:
        return None
    return statistics.fmean(a for a, _ in pairs) / statistics.fmean(b for _, b in pairs)


def _times(ratio: float, what: str, lang: str) -> str:
    """AdamW's amount over the other's, in words: 'x fewer steps' above 1, 'x more' below; ``what`` is
    "steps" or "training time"."""
    what_ko = {"steps": "스텝", "training time": "학습 시간"}[what]
    less = "fewer" if what == "steps" else "less"
    if ratio >= 1:
        return tr(f"{ratio:.2f}x {less} {what}", f"{what_ko} {ratio:.2f}배 적게 씀", lang)
    return tr(f"{1 / ratio:.2f}x more {what}", f"{what_ko} {1 / ratio:.2f}배 더 씀", lang)


def conclusion(results: dict, lang: str = "en") -> list[str]:
    """The capstone's conclusion as a list of sentences, every number and direction word computed from
    ``results`` (a finished ``run_capstone`` dict)."""
    if lang not in ("en", "ko"):
        raise ValueError(f"lang must be 'en' or 'ko', got {lang!r}")
    summary = study_summary(results)
    cells, verdicts = summary["cells"], summary["verdicts"]
    cfg = results["config"]
    n_seeds = cfg["seeds"]
    lines = []
    rep = results["replica"]
    a, m = rep["torch_adamw"]["summary"]["final_train_ma"], rep["muon_all"]["summary"]["final_train_ma"]
    lines.append(tr(
        f"Replica of the original (all tokens, train loss, one seed): Muon on every parameter ends at {m:.2f} (ppl "
        f"{math.exp(m):,.0f}; mean of the last {cfg['window']} steps), {_word('lower' if m < a else 'higher', lang)} "
        f"than AdamW's {a:.2f} (ppl {math.exp(a):,.0f}). Over several passes a train loss also measures memorising.",
        f"원본 재현(토큰 전체, 학습 손실, 시드 1개): 모든 매개변수에 Muon을 쓰면 마지막 {cfg['window']}스텝 평균 "
        "손실이 "
        f"{m:.2f}(ppl {math.exp(m):,.0f})로 AdamW의 {a:.2f}(ppl {math.exp(a):,.0f})보다 "
        f"{'낮습니다' if m < a else '높습니다'}. 같은 데이터를 여러 번 도는 동안의 학습 손실이라 외운 정도까지 함께 "
        "잽니다.",
        lang))
    for name, cell in cells.items():
        ad = cell["optimizers"]["torch_adamw"]
        desc = cell_description(results, name, lang)
        head = tr(f"{desc} ({n_seeds} seeds, each optimizer at its tuned learning rate; target = the median of "
                  f"AdamW's lowest held-out losses, {cell['target']:.3f}):",
                  f"{desc} (시드 {n_seeds}개, 각 옵티마이저는 따로 튜닝한 학습률, 목표 = AdamW 최저 검증 손실의 중앙값 "
                  f"{cell['target']:.3f}):", lang)
        parts = [f"AdamW (lr {ad['lr']:g}) {_loss(ad['lowest'])}"]
        for opt, row in cell["optimizers"].items():
            if opt == "torch_adamw":
                continue
            v = verdicts[(name, opt, "lowest")]
            steps, secs = _speedup(ad, row), _speedup(ad, row, "seconds_to_target")
            part = tr("AdamW part", "AdamW 부분", lang)
            lr_text = f"lr {row['lr']:g}" + (f", {part} {row['hybrid_adamw_lr']:g}" if row["hybrid_adamw_lr"] else "")
            reach, diff, word = row["steps_to_target"], _pm(v["diff"], v["ci"]), _word(v["word"], lang)
            text = tr(f"{LABELS[opt]} ({lr_text}) {_loss(row['lowest'])}, difference {diff}: {word}; reached the "
                      f"target on {reach['reached']} of {n_seeds} seeds",
                      f"{_label(opt, lang)} ({lr_text}) {_loss(row['lowest'])}, AdamW와의 차이 {diff} → {word}; "
                      f"목표 도달 시드 {reach['reached']}/{n_seeds}개", lang)
            if steps is not None:
                faster = f"{_times(steps, 'steps', lang)}{tr(' and ', ', ', lang)}{_times(secs, 'training time', lang)}"
                text += tr(f"; where both reached it, {faster} than AdamW",
                           f", 둘 다 도달한 시드에서 AdamW보다 {faster}", lang)
            parts.append(text)
        lowest = tr("lowest held-out loss (mean ± 95% interval): ", "최저 검증 손실(평균 ± 95% 구간): ", lang)
        lines.append(head + " " + lowest + "; ".join(parts) + ".")
    if ("schedule", "torch_adamw", "lowest") in verdicts:
        bits = []
        for opt in cells["one_pass_cosine"]["optimizers"]:
            v = verdicts[("schedule", opt, "lowest")]
            bits.append(f"{_label(opt, lang)} {_pm(v['diff'], v['ci'])} ({_word(v['word'], lang)})")
        lines.append(tr("Schedule: in the one-pass regime, warmup + cosine changes the lowest held-out loss relative "
                        "to a constant LR by: ",
                        "스케줄: 한 번 통과에서 워밍업 + 코사인으로 바꾸면 최저 검증 손실이 고정 학습률보다 이만큼 "
                        "달라집니다: ", lang) + "; ".join(bits) + ".")
    if "three_pass_constant" in cells and "one_pass_constant" in cells:
        bits = []
        for name in ("one_pass_constant", "three_pass_constant"):
            n = passes(results, name)
            for opt in ("torch_adamw", "muon"):
                row = cells[name]["optimizers"][opt]
                gap = row["final"]["mean"] - row["train"]["mean"]
                bits.append(f"{tr(f'{n:.1f} passes', f'{n:.1f}번 통과', lang)}, {_label(opt, lang)}: {gap:+.2f}")
        lines.append(tr("Learning vs memorising: final held-out minus final train loss (moving average), mean over "
                        "seeds; above 0 the model fits the data it has seen better than new text: ",
                        "학습과 암기: 마지막 검증 손실 − 마지막 학습 손실(이동 평균)의 시드 평균. 0보다 크면 본 "
                        "데이터를 "
                        "외운 만큼 검증 손실이 뒤처진 것입니다: ", lang) + "; ".join(bits) + ".")
    vocab, hidden_size = results["vocab_size"], cfg["hidden_size"]
    embed = muon_lr_scale((vocab, hidden_size))
    hidden = muon_lr_scale((hidden_size, hidden_size))
    lines.append(tr(
        f"Muon on every parameter (original rule) multiplies the learning rate of the {vocab:,} x {hidden_size} "
        f"embedding and LM head by sqrt({vocab:,}/{hidden_size}) = {embed:.1f} (the hidden matrices by {hidden:.1f}); "
        "the match_rms_adamw rule scales every matrix's update to AdamW's RMS instead.",
        f"모든 매개변수에 Muon을 쓰면(original 규칙) {vocab:,} × {hidden_size} 임베딩과 LM 헤드의 학습률에 "
        f"√({vocab:,}/{hidden_size}) ≈ {embed:.1f}배가 곱해집니다(은닉 행렬은 {hidden:.1f}배). match_rms_adamw 규칙은 "
        "모든 행렬의 업데이트 RMS를 AdamW 수준으로 맞춥니다.", lang))
    lines.append(tr(
        f"Rerun drift: the same command on another machine may move a held-out loss by up to {RERUN_DRIFT} (float "
        f"sums in another order). The words above say lower or higher only when the 95% interval over seeds "
        f"excludes zero and the difference exceeds {RERUN_DRIFT}.",
        f"재실행 차이: 다른 머신에서 같은 명령을 다시 돌리면 검증 손실이 최대 {RERUN_DRIFT}까지 달라질 수 "
        "있습니다(부동소수점 "
        f"합산 순서). 위의 판정은 시드 간 95% 구간이 0을 벗어나고 차이가 {RERUN_DRIFT}보다 클 때만 '더 낮음/더 "
        "높음'이라고 "
        "합니다.", lang))
    params = results["parameters"] / 1e6
    tokens = results["sequences"]["replica"] * cfg["seq_len"] / 1e3
    lines.append(tr(
        f"Scale: a {params:.1f}M-parameter model on {tokens:,.0f}k tokens shows how the optimizers differ early in the "
        "training of a small model; it cannot rank them at billions of tokens. Published comparisons (cited, not "
        "measured here): " + " ".join(PUBLISHED["en"]),
        f"규모: 매개변수 {results['parameters'] / 1e4:,.0f}만 개, 토큰 {tokens / 10:,.1f}만 개로는 작은 모델이 학습 "
        "초반에 "
        "옵티마이저에 따라 어떻게 다른지만 보일 수 있고, 수십억 토큰 규모에서의 순위는 말할 수 없습니다. 공개된 "
        "비교(인용이며 "
        "이 코스에서 측정하지 않음): " + " ".join(PUBLISHED["ko"]), lang))
    return lines


# ----------------------------------------------------------------------------------------- table


def results_table(results: dict) -> str:
    """A Markdown table: the replica's train loss, then every study cell and optimizer with its tuned
    learning rate, lowest and final held-out loss (mean ± 95 % interval, perplexity, every seed),
    steps and seconds to the cell's target, tokens/s and training-state memory."""
    window = results["config"]["window"]
    lines = [tr(f"| experiment | optimizer | lr | train loss, last {window} steps | perplexity |",
                f"| 실험 | 옵티마이저 | 학습률 | 학습 손실, 마지막 {window}스텝 | 퍼플렉서티 |"),
             "|---|---|---:|---:|---:|"]
    replica = tr("original replica (all tokens, 1 seed)", "원본 재현(토큰 전체, 시드 1개)")
    for opt, run in results["replica"].items():
        lr = results["config"]["adamw_lr"] if opt == "torch_adamw" else results["config"]["muon_lr"]
        s = run["summary"]
        lines.append(f"| {replica} | {label(opt)} | {lr:g} | {s['final_train_ma']:.3f} | "
                     f"{s['final_train_ppl']:,.0f} |")
    if not results.get("cells"):
        return "\n".join(lines)
    n = results["config"]["seeds"]
    lines += ["", tr(f"| cell | optimizer | tuned lr | lowest held-out (ppl) | every seed | final held-out (ppl) | "
                     f"steps to target (of {n}) | s to target | tokens/s | state MB |",
                     "| 셀 | 옵티마이저 | 튜닝한 학습률 | 최저 검증 손실(ppl) | 시드별 최저값 | 마지막 검증 "
                     "손실(ppl) | "
                     f"목표까지 스텝(도달 시드, {n}개 중) | 목표까지 초 | 초당 토큰 수 | 상태 MB |"),
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    edge = tr(" (edge)", " (격자 끝)")
    for name, cell in study_summary(results)["cells"].items():
        target = tr(f"{name} (target {cell['target']:.3f})", f"{name} (목표 {cell['target']:.3f})")
        for opt, row in cell["optimizers"].items():
            lr = f"{row['lr']:g}" + ("" if row["bracketed"] else edge)
            if row["hybrid_adamw_lr"]:
                lr += f" / {row['hybrid_adamw_lr']:g}"
            low, fin = row["lowest"], row["final"]
            st, sec = row["steps_to_target"], row["seconds_to_target"]
            steps = "—" if st["mean"] is None else f"{_pm(st['mean'], st['ci'], 0)} ({st['reached']})"
            secs = "—" if sec["mean"] is None else _pm(sec["mean"], sec["ci"], 1)
            lines.append(
                f"| {target} | {label(opt)} | {lr} | {_pm(low['mean'], low['ci'])} "
                f"({math.exp(low['mean']):,.0f}) | {' '.join(f'{v:.3f}' for v in low['values'])} | "
                f"{_pm(fin['mean'], fin['ci'])} ({math.exp(fin['mean']):,.0f}) | {steps} | {secs} | "
                f"{row['tokens_per_s']['mean']:,.0f} | {row['state_mb']:.1f} |")
    return "\n".join(lines)


def seed_table(results: dict) -> str:
    """A Markdown table with one row per study run (cell, optimizer, seed): lowest and final held-out
    loss, steps and training seconds to the cell's target ("—": never reached), tokens/s and peak
    memory (on a CPU the process's peak resident size so far, not this run's alone)."""
    lines = [tr("| cell | optimizer | seed | lowest held-out (ppl) | final held-out (ppl) | steps to target | "
                "s to target | tokens/s | peak MB |",
                "| 셀 | 옵티마이저 | 시드 | 최저 검증 손실(ppl) | 마지막 검증 손실(ppl) | 목표까지 스텝 | "
                "목표까지 초 | 초당 토큰 수 | 최대 MB |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, cell in study_summary(results)["cells"].items():
        for opt, row in cell["optimizers"].items():
            for seed, run in enumerate(seed_runs(results, name, opt)):
                low, fin = run["summary"]["best_val_loss"], run["summary"]["final_val_loss"]
                steps, secs = row["steps_to_target"]["values"][seed], row["seconds_to_target"]["values"][seed]
                peak = run.get("memory", {}).get("peak_mb")
                lines.append(
                    f"| {name} | {label(opt)} | {seed} | {low:.3f} ({math.exp(low):,.0f}) | {fin:.3f} "
                    f"({math.exp(fin):,.0f}) | {'—' if steps is None else steps} | "
                    f"{'—' if secs is None else f'{secs:.1f}'} | {run['summary']['tokens_per_s']:,.0f} | "
                    f"{'—' if peak is None else f'{peak:,.0f}'} |")
    return "\n".join(lines)


def report_markdown(results: dict) -> str:
    """The ``.md`` written next to the results JSON: both tables and the conclusion in both languages."""
    text = results_table(results)
    if results.get("cells"):
        text += "\n\n" + "\n".join(f"- {line}" for line in conclusion(results, "en"))
        text += "\n\n" + "\n".join(f"- {line}" for line in conclusion(results, "ko"))
        text += "\n\nEvery run of the study:\n\n" + seed_table(results)
    return text + "\n"
