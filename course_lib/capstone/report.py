"""What the capstone's results say, computed from the results file: per-seed statistics, the table,
and the conclusion in words (English or Korean). Nothing here is typed in from a run: change the
results and every number and every direction word follows.
"""

from __future__ import annotations

import math
import statistics

from ..i18n import notebook_language, tr
from ..optim import muon_lr_scale
from .experiment import ABLATIONS, LABELS, STUDY_CONDITIONS

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
        "modded-nanogpt's optimization track (github.com/KellerJordan/modded-nanogpt, "
        "records/track_3_optimization, README as of August 2026: a fixed 124M-parameter model, data and batch; "
        "the score is the number of steps to 3.28 validation loss): AdamW 5,625 steps (marked there as most "
        "likely undertuned), Muon 3,600 (one run), a tuned Muon + AdamW baseline 3,250 (10 runs), the record "
        "2,690. The table changes as entries arrive.",
        "Wen et al. 2025, \"Fantastic pretraining optimizers and where to find them\": against well-tuned AdamW, "
        "speed-ups of about 1.4x at 0.1B parameters shrinking to about 1.1x at 1.2B.",
        "Liu et al. 2025, \"Muon is scalable for LLM training\" (Moonlight): about 2x compute efficiency over AdamW "
        "in scaling-law fits.",
    ],
    "ko": [
        "modded-nanogpt의 최적화 트랙(github.com/KellerJordan/modded-nanogpt, records/track_3_optimization, "
        "2026년 8월 기준 README: 매개변수 1.24억 개 모델, 데이터, 배치를 고정하고 검증 손실 3.28까지 걸린 스텝 수로 "
        "겨룸): AdamW 5,625스텝(그곳에 '튜닝이 덜 되었을 가능성이 크다'고 적혀 있음), Muon 3,600스텝(실행 1회), "
        "튜닝한 Muon + AdamW 기준선 3,250스텝(실행 10회), 기록 2,690스텝. 새 기록이 올라올 때마다 표가 바뀝니다.",
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


# ---------------------------------------------------------------------------- condition summaries


def seed_runs(results: dict, cell: str, opt: str) -> list[dict]:
    """The evaluated seeds' runs of one optimizer in one condition, in seed order."""
    seeds = results["cells"][cell][opt]["seeds"]
    return [seeds[k] for k in sorted(seeds, key=lambda k: int(k.split("_")[1]))]


def summarize_condition(results: dict, cell: str) -> dict:
    """Per optimizer: tuned LR, every seed's lowest and final held-out loss, the step of the first
    evaluation at or below the target (the median over seeds of AdamW's lowest held-out loss), and their
    means with 95 % intervals; also how many seeds were still improving at their last evaluation."""
    cell_results = results["cells"][cell]
    adamw_lows = [r["summary"]["best_val_loss"] for r in seed_runs(results, cell, "torch_adamw")]
    target = statistics.median(adamw_lows)
    out = {"target": target, "optimizers": {}}
    for opt in cell_results:
        runs = seed_runs(results, cell, opt)
        tuned = cell_results[opt]["tuned"]
        row = {"lr": tuned["lr"], "bracketed": tuned["bracketed"], "hybrid_adamw_lr": tuned.get("hybrid_adamw_lr"),
               "muon_lr": tuned.get("muon_lr"), "steps": len(runs[0]["train_loss"]),
               "eval_every": runs[0]["val_steps"][0],
               "lowest_at_end": sum(r["summary"]["best_val_step"] == r["val_steps"][-1] for r in runs)}
        for key, field in (("lowest", "best_val_loss"), ("final", "final_val_loss"), ("train", "final_train_ma"),
                           ("tokens_per_s", "tokens_per_s"), ("best_step", "best_val_step")):
            values = [r["summary"][field] for r in runs]
            row[key] = {"values": values, **dict(zip(("mean", "ci"), mean_ci(values)))}
        reach = [first_reach(r["val_steps"], r["val_loss"], target, r.get("val_seconds")) for r in runs]
        for i, key in enumerate(("steps_to_target", "seconds_to_target")):
            values = [x[i] for x in reach]
            got = [v for v in values if v is not None]
            row[key] = {"values": values, "reached": len(got),
                        "median": statistics.median(got) if got else None,
                        **dict(zip(("mean", "ci"), mean_ci(got) if got else (None, None)))}
        row["state_mib"] = runs[0].get("memory", {}).get("state_mb")
        row["peak_mib"] = max((r.get("memory", {}).get("peak_mb") or 0 for r in runs), default=0) or None
        out["optimizers"][opt] = row
    return out


def _paired_gain(a_row: dict, b_row: dict) -> dict:
    """How much lower b's lowest held-out loss is than a's, paired by seed (positive: b is better)."""
    gains = [a - b for a, b in zip(a_row["lowest"]["values"], b_row["lowest"]["values"])]
    mean, ci = mean_ci(gains)
    return {"gain": mean, "ci": ci}


def attribution(rows: dict) -> dict | None:
    """Where Muon everywhere's gain over AdamW comes from, from one condition's rows (None without them):
    ``total`` = AdamW - Muon everywhere; ``vocabulary`` = AdamW - Muon on the vocabulary matrices only;
    ``hidden`` = AdamW - the hybrid (Muon on the hidden matrices only); ``rest`` = total - vocabulary -
    hidden (the norm gains, which only Muon everywhere gives to Muon, and how the two parts interact).
    Each with its paired 95 % interval; ``vocabulary_share`` = vocabulary / total."""
    needed = ("torch_adamw", "muon", "muon_vocab", "muon_all")
    if not all(k in rows for k in needed):
        return None
    a = rows["torch_adamw"]
    total, vocab, hidden = (_paired_gain(a, rows[k]) for k in ("muon_all", "muon_vocab", "muon"))
    rest = [t - v - h for t, v, h in zip(*(
        [x - y for x, y in zip(a["lowest"]["values"], rows[k]["lowest"]["values"])]
        for k in ("muon_all", "muon_vocab", "muon")))]
    rest_mean, rest_ci = mean_ci(rest)
    share = vocab["gain"] / total["gain"] if total["gain"] else None
    return {"total": total, "vocabulary": vocab, "hidden": hidden, "rest": {"gain": rest_mean, "ci": rest_ci},
            "vocabulary_share": share}


def study_summary(results: dict) -> dict:
    """Every condition's summary, the paired verdicts against AdamW (and of each ablation against the
    hybrid) that the conclusion states, and the attribution of Muon everywhere's gain."""
    cells = {c.name: summarize_condition(results, c.name) for c in STUDY_CONDITIONS
             if c.name in results.get("cells", {})}
    verdicts = {}
    for name, cell in cells.items():
        rows = cell["optimizers"]
        for opt, row in rows.items():
            if opt != "torch_adamw":
                verdicts[(name, opt, "lowest")] = verdict(rows["torch_adamw"]["lowest"]["values"],
                                                          row["lowest"]["values"])
                verdicts[(name, opt, "final")] = verdict(rows["torch_adamw"]["final"]["values"],
                                                         row["final"]["values"])
            if opt == "muon_adamw_searched" and "muon_all" in rows:
                verdicts[(name, opt, "vs_muon_all")] = verdict(rows["muon_all"]["lowest"]["values"],
                                                               row["lowest"]["values"])
            if opt in ABLATIONS and "muon" in rows:
                verdicts[(name, opt, "vs_hybrid")] = verdict(rows["muon"]["lowest"]["values"],
                                                             row["lowest"]["values"])
    return {"cells": cells, "verdicts": verdicts,
            "attribution": {name: attribution(cell["optimizers"]) for name, cell in cells.items()}}


def below_baseline(stat: dict, baselines: dict, name: str = "bigram") -> str:
    """'below' when the mean is below the baseline by more than the baseline's 95 % interval, 'above'
    when above it by more, 'within' otherwise."""
    value, ci = baselines[name], baselines[f"{name}_ci95"]
    return "below" if stat["mean"] < value - ci else "above" if stat["mean"] > value + ci else "within"


# ----------------------------------------------------------------------------------------- words

_LABELS_KO = {"torch_adamw": "AdamW", "adamw": "AdamW", "muon": "Muon 하이브리드",
              "muon_adamw_searched": "Muon 하이브리드(AdamW 부분 따로 탐색)",
              "muon_vocab": "어휘 행렬에만 Muon", "muon_no_ns": "Newton–Schulz 없는 Muon 하이브리드",
              "muon_all": "전체 Muon"}
_KO_COUNT = {1: "한", 2: "두", 3: "세", 4: "네"}
_CONDITIONS_KO = {"one_pass_constant": "한 번 통과", "two_pass_constant": "두 번 통과"}


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
    """How many times a run of the condition went over the training split (steps x batch / sequences)."""
    steps = len(seed_runs(results, cell_name, "torch_adamw")[0]["train_loss"])
    return steps * results["config"]["batch_size"] / results["sequences"]["train"]


def condition_description(results: dict, cell_name: str, lang: str = "en") -> str:
    """A condition in words, its numbers read from the results: passes, steps, schedule, evaluations."""
    cond = next(c for c in STUDY_CONDITIONS if c.name == cell_name)
    run = seed_runs(results, cell_name, "torch_adamw")[0]
    steps, every, n = len(run["train_loss"]), run["val_steps"][0], passes(results, cell_name)
    schedule = {"constant": tr("constant LR", "고정 학습률", lang),
                "warmup_cosine": tr("warmup + cosine", "워밍업 + 코사인", lang)}[cond.schedule]
    stop = tr(", early-stopped on held-out loss", ", 검증 손실로 조기 종료", lang) if cond.passes > 1 else ""
    return tr(f"{cell_name} ({steps} steps, {n:.1f} passes over the training split{stop}), {schedule}, held-out "
              f"loss every {every} steps",
              f"{_CONDITIONS_KO.get(cell_name, cell_name)}({steps}스텝, 학습 데이터 {n:.1f}회 통과{stop}), {schedule}, "
              f"검증은 {every}스텝마다", lang)


def _pm(mean, ci, digits=3) -> str:
    return f"{mean:.{digits}f}" if ci is None else f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _loss(stat: dict) -> str:
    """Mean ± 95 % half-width of a loss, with the perplexity of the mean."""
    return f"{_pm(stat['mean'], stat['ci'])} (ppl {math.exp(stat['mean']):,.0f})"


def _reach(row: dict, n: int, lang: str) -> str:
    """Steps to the target as the evaluation grid allows: 'by step <= k on r of n seeds' (k: the median)."""
    st = row["steps_to_target"]
    if not st["reached"]:
        return tr(f"never reached the target on {n} seeds", f"시드 {n}개 모두 목표에 못 미침", lang)
    return tr(f"reached the target by step ≤ {st['median']:.0f} (median) on {st['reached']} of {n} seeds",
              f"목표 도달: 시드 {n}개 중 {st['reached']}개, 중앙값 ≤ {st['median']:.0f}스텝", lang)


def _lr_text(row: dict, lang: str) -> str:
    part = tr("AdamW part", "AdamW 부분", lang)
    if row.get("muon_lr"):
        return f"Muon lr {row['muon_lr']:g}, {part} {row['lr']:g}"
    return f"lr {row['lr']:g}" + (f", {part} {row['hybrid_adamw_lr']:g}" if row["hybrid_adamw_lr"] else "")


def _baseline_lines(results: dict, cells: dict, lang: str) -> list[str]:
    """The count-table baselines, and which optimizers are below the bigram table's sequence interval."""
    b = results["baselines"]
    docs = results["sequences"].get("held_out_documents")
    from_docs = tr(f" from {docs} documents", f"(문서 {docs}개에서 나옴)", lang) if docs else ""
    lines = [tr(
        f"Baselines (count tables fit on the training split, scored on the same held-out targets): unigram "
        f"{_pm(b['unigram'], b['unigram_ci95'])} (ppl {math.exp(b['unigram']):,.0f}), bigram "
        f"{_pm(b['bigram'], b['bigram_ci95'])} (ppl {math.exp(b['bigram']):,.0f}). The ± is 1.96 standard errors "
        f"over the {b['held_out_sequences']} held-out sequences{from_docs}, treated as independent; sequences of one "
        "document are not, so another held-out sample would move the numbers by more: the interval is probably too "
        "narrow. The lines below compare each optimizer with that interval of the table alone, a conservative test "
        "(a paired comparison, sequence by sequence on the same text, would be sharper; the study does not store "
        "per-sequence losses). "
        "A model whose held-out loss is not below the bigram table's has not shown that it predicts this text "
        "better than counts of adjacent pairs; getting below it shows better prediction, not by itself the use of "
        "longer context (a network that sees one previous token can beat the table by sharing statistics between "
        "similar tokens).",
        f"기준선(학습 데이터로만 센 빈도표, 같은 검증 토큰으로 채점): 유니그램 {_pm(b['unigram'], b['unigram_ci95'])}"
        f"(ppl {math.exp(b['unigram']):,.0f}), 바이그램 {_pm(b['bigram'], b['bigram_ci95'])}"
        f"(ppl {math.exp(b['bigram']):,.0f}). ±는 검증 시퀀스 {b['held_out_sequences']}개{from_docs}를 서로 독립으로 "
        "보고 구한 1.96 표준오차입니다. 한 문서에서 나온 시퀀스들은 독립이 아니므로 다른 검증 표본에서는 숫자가 이보다 "
        "더 크게 움직일 수 있습니다. 이 구간은 실제보다 좁을 가능성이 큽니다. 아래 줄은 옵티마이저마다 빈도표 자체의 "
        "이 구간과 비교하는 보수적인 판정입니다(같은 글에서 시퀀스마다 짝지어 비교하면 더 예리하겠지만, 이 연구는 "
        "시퀀스별 손실을 저장하지 않습니다). 검증 손실이 바이그램 표보다 낮지 않은 모델은 인접한 토큰 쌍의 "
        "빈도보다 이 글을 더 잘 예측한다는 것을 아직 보여 주지 못한 것입니다. 반대로 바이그램 표보다 낮다고 해서 더 긴 "
        "문맥을 쓴다는 뜻은 아닙니다. 바로 앞 토큰 하나만 보는 신경망도 비슷한 토큰끼리 통계를 나눠 "
        "써서 이 표를 이길 수 "
        "있습니다.", lang)]
    for name, cell in cells.items():
        groups = {"below": [], "within": [], "above": []}
        for opt, row in cell["optimizers"].items():
            groups[below_baseline(row["lowest"], b)].append(f"{_label(opt, lang)} {row['lowest']['mean']:.3f}")
        words = {"below": tr("below the bigram's sequence interval", "바이그램 시퀀스 구간 아래", lang),
                 "within": tr("within that interval", "그 구간 안", lang),
                 "above": tr("above that interval", "그 구간 위", lang)}
        parts = [f"{words[k]}: {', '.join(v)}" for k, v in groups.items() if v]
        cname = tr(name, _CONDITIONS_KO.get(name, name), lang)
        lines.append(tr(f"{cname}, lowest held-out loss against the bigram table ({b['bigram']:.3f}): ",
                        f"{cname}, 최저 검증 손실을 바이그램 표({b['bigram']:.3f})와 비교하면: ", lang)
                     + "; ".join(parts) + ".")
    return lines


def _attribution_line(name: str, att: dict, lang: str) -> str:
    t, v, h, r = (att[k] for k in ("total", "vocabulary", "hidden", "rest"))
    cname = tr(name, _CONDITIONS_KO.get(name, name), lang)
    return tr(
        f"Muon by parameter group ({cname}; lowest held-out loss, AdamW's minus each run's, paired by seed; "
        "positive: lower than AdamW). Each is a separate run at its own tuned learning rate, so the parts need not "
        f"add up: Muon everywhere {_pm(t['gain'], t['ci'])}; the vocabulary matrices only (embedding and LM head, "
        f"AdamW on the rest) {_pm(v['gain'], v['ci'])}; the hidden matrices only (the hybrid) "
        f"{_pm(h['gain'], h['ci'])}. The total minus the two parts, {_pm(r['gain'], r['ci'])}, mixes Muon on the "
        "norm gains, interaction between the groups and the different learning rates the searches chose; no run "
        "here separates them.",
        f"매개변수 묶음별 Muon({cname}, AdamW의 최저 검증 손실에서 각 실행의 값을 시드별로 짝지어 뺀 값, 양수면 "
        "AdamW보다 낮음). 각각 학습률을 따로 탐색한 별개의 실행이므로 부분의 합이 전체와 같을 이유는 없습니다. 전체 "
        f"Muon {_pm(t['gain'], t['ci'])}, 어휘 행렬(임베딩과 LM 헤드)에만 {_pm(v['gain'], v['ci'])}, 은닉층 행렬에만"
        f"(하이브리드) {_pm(h['gain'], h['ci'])}. 전체에서 두 부분을 뺀 값 {_pm(r['gain'], r['ci'])}에는 RMSNorm "
        "가중치에 쓴 Muon, 묶음 사이의 상호작용, 탐색마다 다르게 고른 학습률의 효과가 섞여 있고, 이 연구의 실행으로는 "
        "이들을 가를 수 없습니다.", lang)


def _ablation_line(name: str, rows: dict, verdicts: dict, lang: str) -> str | None:
    bits = []
    for opt in ABLATIONS:
        if opt in rows and (name, opt, "vs_hybrid") in verdicts:
            v = verdicts[(name, opt, "vs_hybrid")]
            bits.append(f"{_label(opt, lang)} ({_lr_text(rows[opt], lang)}) {_pm(v['diff'], v['ci'])}: "
                        f"{_word(v['word'], lang)}")
    if not bits:
        return None
    cname = tr(name, _CONDITIONS_KO.get(name, name), lang)
    line = tr(f"Ablations against the hybrid ({cname}; lowest held-out loss, each minus the hybrid's, paired by "
              "seed; negative: lower than the hybrid): ",
              f"하이브리드와 비교한 절제 실험({cname}, 최저 검증 손실에서 하이브리드 값을 시드별로 "
              "짝지어 뺀 값, 음수면 "
              "하이브리드보다 낮음): ", lang) + "; ".join(bits) + "."
    v = verdicts.get((name, "muon_adamw_searched", "vs_muon_all"))
    if v is not None:
        diff = _pm(v["diff"], v["ci"])
        if v["word"] == "higher":
            line += " " + tr(
                f"The hybrid with its AdamW part's learning rate searched stays above Muon everywhere ({diff}): "
                "Muon's update of the vocabulary matrices does something here that one AdamW learning rate does not.",
                f"AdamW 부분의 학습률을 따로 탐색한 하이브리드도 전체 Muon보다 높습니다({diff}). 여기서는 어휘 행렬에 "
                "대한 Muon의 업데이트가 AdamW 학습률 하나로는 못 하는 일을 합니다.", lang)
        else:
            word = {"lower": tr("below", "전체 Muon보다 더 낮은 곳까지", lang),
                    "level": tr("level with", "전체 Muon과 비슷한 곳까지", lang)}
            line += " " + tr(
                f"The hybrid with its AdamW part's learning rate searched ends {word[v['word']]} Muon everywhere "
                f"({diff} against it): in this condition Muon everywhere's lead over the hybrid came from how far "
                "the vocabulary matrices move, which a larger AdamW learning rate on them also provides.",
                f"AdamW 부분의 학습률을 따로 탐색한 하이브리드는 {word[v['word']]} 내려갑니다(전체 Muon과의 차이 "
                f"{diff}). 이 조건에서 전체 Muon이 하이브리드보다 앞선 이유는 어휘 행렬이 얼마나 멀리 움직이느냐였고, "
                "이는 그 행렬들의 AdamW 학습률을 키워도 얻을 수 있습니다.", lang)
    return line


def _gap_line(results: dict, cells: dict, lang: str) -> str:
    """Held-out minus train loss per condition, with the lag of the train moving average computed."""
    w = results["config"]["window"]
    bits = []
    for name, cell in cells.items():
        n = passes(results, name)
        for opt in ("torch_adamw", "muon_all"):
            if opt not in cell["optimizers"]:
                continue
            row = cell["optimizers"][opt]
            gap = row["final"]["mean"] - row["train"]["mean"]
            runs = seed_runs(results, name, opt)
            # how fast the train loss was still falling at the end: last window vs the window before
            slope = statistics.fmean((statistics.fmean(r["train_loss"][-2 * w:-w]) - statistics.fmean(
                r["train_loss"][-w:])) / w for r in runs)
            lag = slope * (w + 1) / 2
            count = tr("one pass" if round(n) == 1 else f"{n:.0f} passes",
                       f"{_KO_COUNT.get(round(n), round(n))} 번 통과", lang)
            bits.append(tr(f"{count}, {_label(opt, lang)}: {gap:+.2f} (train loss still falling "
                           f"{slope:.3f} per step, so the moving average lags the final weights by about {lag:.2f})",
                           f"{count}, {_label(opt, lang)}: {gap:+.2f}(학습 손실이 끝까지 스텝당 {slope:.3f}씩 "
                           f"떨어지므로 이동 평균은 마지막 가중치보다 약 {lag:.2f} 뒤처짐)", lang))
    several = any(round(passes(results, name)) > 1 for name in cells)
    later = tr(" From the second pass on, the train batches have been seen before, and the growth of the gap over "
               "the first pass's is memorising.",
               " 두 번째 통과부터는 학습 배치를 이미 본 적이 있으므로, 첫 번째 통과 때보다 늘어난 차이가 암기입니다.",
               lang) if several else ""
    return tr(
        f"Learning vs memorising: final held-out loss minus the train loss's last-{w}-step moving average, mean "
        "over seeds. In the first pass every batch is new text when its loss is measured, so the train loss is "
        "itself a held-out estimate, only taken on earlier weights: it lags the final weights by about the amount "
        "computed below, and a gap of that size says nothing about memorising; the first pass's gap also holds how "
        "much harder the held-out documents are than the training text.",
        f"학습과 암기: 마지막 검증 손실에서 학습 손실의 마지막 {w}스텝 이동 평균을 뺀 값(시드 평균). 첫 번째 "
        "통과에서는 손실을 잴 때 모든 배치가 처음 보는 글이므로 학습 손실도 검증 손실의 한 추정치입니다. 다만 더 이른 "
        "가중치로 잰 값이라 마지막 가중치보다 아래에 계산한 만큼 뒤처지고, 그 정도 크기의 차이는 암기와 상관이 "
        "없습니다. 첫 번째 통과의 차이에는 검증 문서가 학습 글보다 얼마나 어려운지도 들어 있습니다.",
        lang) + later + " " + "; ".join(bits) + "."


def _shape_rule_line(results: dict, lang: str) -> str:
    """What torch.optim.Muon's two shape rules differ by, for this model's matrices (computed)."""
    groups = results.get("parameter_groups") or {}
    vocab, width = results["vocab_size"], results["config"]["hidden_size"]
    shapes = [tuple(s) for s in groups.get("hidden_shapes", [])] + [(vocab, width)]
    ratio = {s: muon_lr_scale(s, "match_rms_adamw") / muon_lr_scale(s, "original") for s in shapes}
    common = min(ratio.values())
    wide = sorted({(s[1], r) for s, r in ratio.items() if r > common * 1.01})
    extra = "".join(tr(f", and {r:.2f} for the matrices with {c} columns ({r / common:.2f}x the others)",
                       f", 열이 {c}개인 행렬에서는 {r:.2f}배(나머지의 {r / common:.2f}배)", lang) for c, r in wide)
    embed = muon_lr_scale((vocab, width))
    return tr(
        f"Shape rules: torch.optim.Muon's match_rms_adamw rule is the original rule times 0.2·sqrt(columns); for "
        f"this model that is {common:.2f} for the matrices with {width} columns{extra}: nearly one global factor, so "
        "comparing the two rules here would mostly compare learning rates, and the study runs the original rule "
        f"only. That rule multiplies the {vocab:,} x {width} vocabulary matrices' step by sqrt({vocab:,}/{width}) = "
        f"{embed:.1f}.",
        f"모양 규칙: torch.optim.Muon의 match_rms_adamw 규칙은 original 규칙에 0.2·√(열 수)를 곱한 것입니다. 이 "
        f"모델에서는 열이 {width}개인 행렬에서 {common:.2f}배{extra}로, 거의 전역 상수 하나라서 "
        "여기서 두 규칙을 비교하면 "
        "대부분 학습률을 비교하는 셈이 됩니다. 그래서 이 연구는 original 규칙만 씁니다. 이 규칙은 "
        f"{vocab:,} × {width} 어휘 행렬의 보폭에 √({vocab:,}/{width}) ≈ {embed:.1f}배를 곱합니다.", lang)


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
        f"손실이 {m:.2f}(ppl {math.exp(m):,.0f})로 AdamW의 {a:.2f}(ppl {math.exp(a):,.0f})보다 "
        f"{'낮습니다' if m < a else '높습니다'}. 같은 데이터를 여러 번 도는 동안의 학습 손실이라 외운 정도까지 함께 "
        "잽니다.", lang))
    groups = results.get("parameter_groups")
    if groups:
        total = groups["vocabulary"] + groups["hidden"] + groups["norms"]
        share = {k: 100 * groups[k] / total for k in ("vocabulary", "hidden", "norms")}
        lines.append(tr(
            f"Where the parameters are: {total:,} in all; the vocabulary matrices (embedding and LM head) hold "
            f"{groups['vocabulary']:,} ({share['vocabulary']:.1f}%), the hidden matrices of the blocks "
            f"{groups['hidden']:,} ({share['hidden']:.1f}%), the norm gains {groups['norms']:,}. The hybrid gives Muon "
            "only the hidden matrices; Muon everywhere gives it all three.",
            f"매개변수 분포: 모두 {total:,}개 중 어휘 행렬(임베딩과 LM 헤드)이 {groups['vocabulary']:,}개"
            f"({share['vocabulary']:.1f}%), 블록의 은닉층 행렬이 {groups['hidden']:,}개({share['hidden']:.1f}%), "
            f"RMSNorm 가중치가 {groups['norms']:,}개입니다. 하이브리드는 은닉층 행렬에만 Muon을 쓰고, 전체 Muon은 셋 "
            "모두에 씁니다.", lang))
    if "baselines" in results:
        lines += _baseline_lines(results, cells, lang)
    tuning = cfg.get("tuning_seed", 0)
    for name, cell in cells.items():
        ad = cell["optimizers"]["torch_adamw"]
        desc = condition_description(results, name, lang)
        head = tr(f"{desc} ({n_seeds} seeds; each optimizer at the learning rate its own search found on seed "
                  f"{tuning}, which is not among them; target = the median of AdamW's lowest held-out losses, "
                  f"{cell['target']:.3f}):",
                  f"{desc} (시드 {n_seeds}개. 각 옵티마이저는 이 시드들에 들어 있지 않은 시드 {tuning}에서 따로 탐색한 "
                  f"학습률을 씀. 목표 = AdamW 최저 검증 손실의 중앙값 {cell['target']:.3f}):", lang)
        parts = [f"AdamW (lr {ad['lr']:g}) {_loss(ad['lowest'])}, {_reach(ad, n_seeds, lang)}"]
        for opt, row in cell["optimizers"].items():
            if opt == "torch_adamw" or opt in ABLATIONS:
                continue
            v = verdicts[(name, opt, "lowest")]
            diff, word = _pm(v["diff"], v["ci"]), _word(v["word"], lang)
            parts.append(tr(f"{LABELS[opt]} ({_lr_text(row, lang)}) {_loss(row['lowest'])}, difference {diff}: "
                            f"{word}; {_reach(row, n_seeds, lang)}",
                            f"{_label(opt, lang)} ({_lr_text(row, lang)}) {_loss(row['lowest'])}, AdamW와의 차이 "
                            f"{diff} → {word}; {_reach(row, n_seeds, lang)}", lang))
        lowest = tr("lowest held-out loss (mean ± 95% interval): ", "최저 검증 손실(평균 ± 95% 구간): ", lang)
        lines.append(head + " " + lowest + "; ".join(parts) + ".")
        still = ad["lowest_at_end"]
        every = ad["eval_every"]
        lines.append(tr(
            f"Steps to target are read on a grid of {every} steps: 'by step ≤ k' means the held-out loss was measured "
            f"at or below the target at step k and above it at step k - {every}; the median is over the seeds that "
            "got there (the others are left out). AdamW's target is its own median, so by construction only the "
            "AdamW seeds at or below it reach it, near their lowest point. On "
            f"{still} of {n_seeds} seeds AdamW's lowest held-out loss was its last evaluation: it was still improving "
            "when the run stopped, and a longer run would lower AdamW's target and so change every step count.",
            f"목표까지 스텝은 {every}스텝 간격의 격자에서 읽습니다. '≤ k스텝'은 k스텝에서 잰 검증 손실이 목표 이하였고 "
            f"k - {every}스텝에서는 목표보다 높았다는 뜻입니다. 중앙값은 목표에 도달한 시드들만으로 구합니다(나머지는 "
            "빠집니다). AdamW의 목표는 자기 중앙값이라, 정의상 중앙값 이하인 AdamW 시드만 그것도 최저점 근처에서 "
            f"도달합니다. 시드 {n_seeds}개 중 {still}개에서 AdamW의 최저 검증 손실이 마지막 평가 때 나왔습니다. "
            "즉 학습을 멈출 때도 아직 좋아지는 중이었으므로, 더 길게 돌리면 AdamW의 목표가 낮아져 스텝 수가 모두 "
            "달라집니다.", lang))
        line = _ablation_line(name, cell["optimizers"], verdicts, lang)
        if line:
            lines.append(line)
        if summary["attribution"].get(name):
            lines.append(_attribution_line(name, summary["attribution"][name], lang))
    lines.append(_gap_line(results, cells, lang))
    lines.append(_shape_rule_line(results, lang))
    lines.append(tr(
        f"Rerun drift: the same command on another machine may move a held-out loss by up to {RERUN_DRIFT} (float "
        f"sums in another order). The words above say lower or higher only when the 95% interval over seeds "
        f"excludes zero and the difference exceeds {RERUN_DRIFT}.",
        f"재실행 차이: 다른 머신에서 같은 명령을 다시 돌리면 검증 손실이 최대 {RERUN_DRIFT}까지 달라질 수 "
        "있습니다(부동소수점 합산 순서). 위의 판정은 시드 간 95% 구간이 0을 벗어나고 차이가 "
        f"{RERUN_DRIFT}보다 클 때만 '더 낮음/더 높음'이라고 합니다.", lang))
    params = results["parameters"] / 1e6
    tokens = results["sequences"]["replica"] * cfg["seq_len"] / 1e3
    docs = results["sequences"].get("held_out_documents")
    held = results["sequences"]["held_out"]
    lines.append(tr(
        f"Scale: a {params:.1f}M-parameter model on {tokens:,.0f}k tokens, scored on {held} held-out sequences"
        + (f" from {docs} documents" if docs else "") + ", shows how the optimizers differ early in the training of "
        "a small model; the seed intervals do not include how much another held-out sample would move the numbers "
        "(the baselines' intervals give a lower bound on that), and none of this ranks optimizers at billions of "
        "tokens. "
        "Published comparisons (cited, not measured here): " + " ".join(PUBLISHED["en"]),
        f"규모: 매개변수 {results['parameters'] / 1e4:,.0f}만 개, 토큰 {tokens / 10:,.1f}만 개, 검증 시퀀스 {held}개"
        + (f"(문서 {docs}개)" if docs else "") + "로는 작은 모델이 학습 초반에 옵티마이저에 따라 어떻게 다른지만 보일 "
        "수 있습니다. 시드 간 구간은 검증 표본이 바뀔 때 생기는 변동을 반영하지 않으며(기준선의 "
        "구간이 그 크기의 하한을 "
        "보여 줍니다), 수십억 토큰 규모에서의 순위는 말할 수 없습니다. 공개된 비교(인용이며 이 코스에서 측정하지 "
        "않음): " + " ".join(PUBLISHED["ko"]), lang))
    return lines


# ----------------------------------------------------------------------------------------- table


def results_table(results: dict) -> str:
    """A Markdown table: the replica's train loss, then every study condition and optimizer with its tuned
    learning rate, lowest and final held-out loss (mean ± 95 % interval, perplexity, every seed), steps to
    the condition's target, tokens/s and training-state memory; then the baselines."""
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
    lines += ["", tr("| condition | optimizer | tuned lr | lowest held-out (ppl) | every seed | final held-out "
                     f"(ppl) | steps to target: median ≤ (seeds of {n}) | tokens/s | state MiB |",
                     "| 조건 | 옵티마이저 | 튜닝한 학습률 | 최저 검증 손실(ppl) | 시드별 최저값 | 마지막 검증 "
                     f"손실(ppl) | 목표까지 스텝: 중앙값 ≤ (도달 시드, {n}개 중) | 초당 토큰 수 | 상태 MiB |"),
              "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    edge = tr(" (edge)", " (격자 끝)")
    for name, cell in study_summary(results)["cells"].items():
        target = tr(f"{name} (target {cell['target']:.3f})", f"{name} (목표 {cell['target']:.3f})")
        for opt, row in cell["optimizers"].items():
            lr = (f"{row['muon_lr']:g} / " if row.get("muon_lr") else "") + f"{row['lr']:g}"
            lr += "" if row["bracketed"] else edge
            if row["hybrid_adamw_lr"] and not row.get("muon_lr"):
                lr += f" / {row['hybrid_adamw_lr']:g}"
            low, fin, st = row["lowest"], row["final"], row["steps_to_target"]
            steps = "—" if st["median"] is None else f"≤ {st['median']:.0f} ({st['reached']})"
            lines.append(
                f"| {target} | {label(opt)} | {lr} | {_pm(low['mean'], low['ci'])} "
                f"({math.exp(low['mean']):,.0f}) | {' '.join(f'{v:.3f}' for v in low['values'])} | "
                f"{_pm(fin['mean'], fin['ci'])} ({math.exp(fin['mean']):,.0f}) | {steps} | "
                f"{row['tokens_per_s']['mean']:,.0f} | {row['state_mib']:.1f} |")
    if "baselines" in results:
        b = results["baselines"]
        lines += ["", tr("| baseline (fit on the training split) | held-out loss ± 95% (ppl) |",
                         "| 기준선(학습 데이터로 적합) | 검증 손실 ± 95%(ppl) |"), "|---|---:|"]
        for key, en, ko in (("unigram", "unigram, add-one", "유니그램, add-one"),
                            ("bigram", "bigram, interpolated absolute discounting",
                             "바이그램, 보간형 절대 할인")):
            lines.append(f"| {tr(en, ko)} | {_pm(b[key], b[key + '_ci95'])} ({math.exp(b[key]):,.0f}) |")
    return "\n".join(lines)


def seed_table(results: dict) -> str:
    """A Markdown table with one row per study run (condition, optimizer, seed): lowest and final held-out
    loss, the step of its first evaluation at or below the target ("—": never), tokens/s and peak memory
    (on a CPU the process's peak resident size so far, not this run's alone)."""
    lines = [tr("| condition | optimizer | seed | lowest held-out (ppl) | final held-out (ppl) | step reaching "
                "target | tokens/s | peak MiB |",
                "| 조건 | 옵티마이저 | 시드 | 최저 검증 손실(ppl) | 마지막 검증 손실(ppl) | 목표에 도달한 스텝 | "
                "초당 토큰 수 | 최대 MiB |"), "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, cell in study_summary(results)["cells"].items():
        for opt, row in cell["optimizers"].items():
            seeds = sorted(results["cells"][name][opt]["seeds"], key=lambda k: int(k.split("_")[1]))
            for i, (key, run) in enumerate(zip(seeds, seed_runs(results, name, opt))):
                low, fin = run["summary"]["best_val_loss"], run["summary"]["final_val_loss"]
                steps = row["steps_to_target"]["values"][i]
                peak = run.get("memory", {}).get("peak_mb")
                lines.append(
                    f"| {name} | {label(opt)} | {key.split('_')[1]} | {low:.3f} ({math.exp(low):,.0f}) | {fin:.3f} "
                    f"({math.exp(fin):,.0f}) | {'—' if steps is None else steps} | "
                    f"{run['summary']['tokens_per_s']:,.0f} | {'—' if peak is None else f'{peak:,.0f}'} |")
    return "\n".join(lines)


def report_markdown(results: dict) -> str:
    """The ``.md`` written next to the results JSON: both tables and the conclusion in both languages."""
    text = results_table(results)
    if results.get("cells"):
        text += "\n\n" + "\n".join(f"- {line}" for line in conclusion(results, "en"))
        text += "\n\n" + "\n".join(f"- {line}" for line in conclusion(results, "ko"))
        text += "\n\nEvery run of the study:\n\n" + seed_table(results)
    return text + "\n"
