"""The capstone's figures: the replica of the original, every study condition with 95 % bands over seeds and
the count-table baselines, the learning-rate searches, where the gain comes from, and every seed's lowest
held-out loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..i18n import tr
from ..plots import finish_figure, moving_average, plot_loss_curves, pyplot_for
from .experiment import STUDY_CONDITIONS
from .report import label, mean_ci, seed_runs, study_summary

COLOURS = {"torch_adamw": "C0", "muon": "C1", "muon_all": "C2", "muon_adamw_searched": "C4", "muon_vocab": "C3",
           "muon_no_ns": "C5"}  # the same in every panel


def band(ax, steps, curves, label, color=None):
    """Mean over seeds with its 95 % t interval as a shaded band; returns the line's colour."""
    values = np.asarray(curves, dtype=float)
    stats = [mean_ci(values[:, i]) for i in range(values.shape[1])]
    mean = np.array([m for m, _ in stats])
    half = np.array([0.0 if c is None else c for _, c in stats])
    (line,) = ax.plot(steps, mean, "-o", markersize=2.5, label=label, color=color)
    ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    return line.get_color()


def baseline_lines(ax, baselines: dict | None, vertical: bool = False) -> None:
    """The unigram and bigram tables' held-out losses as reference lines (the bigram with its 95 % band)."""
    if not baselines:
        return
    for key, style, name in (("unigram", ":", tr("unigram table", "유니그램 표")),
                             ("bigram", "--", tr("bigram table", "바이그램 표"))):
        value, ci = baselines[key], baselines[f"{key}_ci95"]
        line, span = (ax.axvline, ax.axvspan) if vertical else (ax.axhline, ax.axhspan)
        line(value, color="0.3", linestyle=style, linewidth=1, label=f"{name} {value:.3f}")
        if key == "bigram":
            span(value - ci, value + ci, color="0.5", alpha=0.12, linewidth=0)


def _pass_boundaries(ax, steps_per_pass: float, last_step: int) -> None:
    k = 1
    while k * steps_per_pass < last_step:
        ax.axvline(k * steps_per_pass, color="0.6", linewidth=0.8)
        ax.text(k * steps_per_pass, 1.0, tr(f" pass {k + 1}", f" {k + 1}번째 통과"), transform=ax.get_xaxis_transform(),
                va="top", fontsize=7, color="0.4")
        k += 1


def plot_capstone(results: dict, path: Path | None = None):
    """Replica (with its pass boundaries), each study condition (held-out loss, mean and 95 % band over
    seeds, with the baselines), the learning-rate searches of the main condition, where Muon everywhere's
    gain comes from, and every seed's lowest held-out loss."""
    plt = pyplot_for(path)
    cfg = results["config"]
    window, batch = cfg["window"], cfg["batch_size"]
    baselines = results.get("baselines")
    conds = [c for c in STUDY_CONDITIONS if c.name in results.get("cells", {})]
    n_panels = 4 + len(conds)  # replica, one per condition, searches, parameter groups, every seed
    n_rows = math.ceil(n_panels / 3)
    fig, axes = plt.subplots(n_rows, 3, figsize=(18, 5 * n_rows))
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    ax_search, ax_groups, ax_seeds = axes[1 + len(conds):n_panels]
    ax = axes[0]
    plot_loss_curves({label(k): v["train_loss"] for k, v in results["replica"].items()}, window, ax=ax,
                     title=tr(f"Replica: train loss, {window}-step moving average (1 seed)",
                              f"원본 재현: 학습 손실, {window}스텝 이동 평균(시드 1개)"))
    for line, opt in zip(ax.get_lines(), results["replica"]):  # the study's colour for each optimizer
        line.set_color(COLOURS.get(opt, line.get_color()))
    ax.legend()
    _pass_boundaries(ax, results["sequences"]["replica"] / batch, len(results["replica"]["torch_adamw"]["train_loss"]))
    ax.set_xlabel(tr("training step (grey lines: a new pass over the same text begins)",
                     "학습 스텝(회색 선: 같은 글을 다시 도는 통과가 시작되는 곳)"))
    seeds = cfg["seeds"]
    for ax, cond in zip(axes[1:1 + len(conds)], conds):
        for opt in cond.optimizers:
            runs = seed_runs(results, cond.name, opt)
            name = label(opt)
            color = band(ax, runs[0]["val_steps"], [r["val_loss"] for r in runs], name, COLOURS.get(opt))
            if cond.passes > 1 and opt in ("torch_adamw", "muon_all"):
                train = np.mean([r["train_loss"] for r in runs], axis=0)
                ax.plot(np.arange(window, len(train) + 1), moving_average(train, window), ":", color=color,
                        label=tr(f"{name} train (MA)", f"{name} 학습 손실(이동 평균)"))
        if cond.passes > 1:
            _pass_boundaries(ax, results["sequences"]["train"] / batch, len(runs[0]["train_loss"]))
        baseline_lines(ax, baselines)
        ax.set_title(tr(f"{cond.name}: held-out loss, mean and 95% band ({seeds} seeds)",
                        f"{cond.name}: 검증 손실, 시드 {seeds}개의 평균과 95% 구간"), fontsize=10)
        ax.set_xlabel(tr("training step", "학습 스텝"))
        ax.set_ylabel(tr("held-out loss", "검증 손실"))
        low = min(min(min(r["val_loss"]) for r in seed_runs(results, cond.name, o)) for o in cond.optimizers)
        ax.set_ylim(low - 0.15, (baselines["unigram"] + 0.6) if baselines else None)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    ax = ax_search
    main = conds[0].name if conds else None
    if main is not None:
        for opt, entry in results["cells"][main].items():
            tried = {float(k): v["summary"]["best_val_loss"] if v["summary"] else math.nan
                     for k, v in entry["lr_search"].items()}
            lrs = sorted(tried)
            ax.plot(lrs, [tried[lr] for lr in lrs], "-o", label=label(opt), color=COLOURS.get(opt))
            ax.plot([entry["tuned"]["lr"]], [tried[entry["tuned"]["lr"]]], "k*", markersize=10)
        tuning = cfg.get("tuning_seed", 0)
        ax.set_xscale("log")
        ax.set_xlabel(tr("learning rate searched\n(AdamW part's for 'AdamW part searched', else Muon's)",
                         "탐색한 학습률\n('AdamW 부분 따로 탐색'은 AdamW 부분, 나머지 Muon 변형은 Muon의 학습률)"))
        ax.set_ylabel(tr(f"lowest held-out loss (tuning seed {tuning})", f"최저 검증 손실(튜닝 시드 {tuning})"))
        ax.set_title(tr(f"{main}: learning-rate searches (* chosen)", f"{main}: 학습률 탐색(*: 고른 값)"), fontsize=10)
        ax.grid(True, alpha=0.25)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.3 * (high - low))  # room above the curves for the legend
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    ax = ax_groups
    summary = study_summary(results) if conds else {"cells": {}, "attribution": {}}
    att = summary["attribution"].get(main) if main else None
    if att:
        keys = ("total", "vocabulary", "hidden", "rest")
        names = [tr("Muon everywhere", "전체 Muon"), tr("vocabulary matrices only", "어휘 행렬에만"),
                 tr("hidden matrices only (hybrid)", "은닉층 행렬에만(하이브리드)"),
                 tr("total - the two parts", "전체 - 두 부분")]
        gains = [att[k]["gain"] for k in keys]
        errs = [att[k]["ci"] or 0.0 for k in keys]
        ax.barh(range(len(keys)), gains, xerr=errs, color=["C2", "C3", "C1", "0.6"], capsize=4)
        ax.set_yticks(range(len(keys)), names)
        ax.invert_yaxis()
        ax.axvline(0, color="k", linewidth=0.8)
        ax.set_xlabel(tr("held-out loss below AdamW's (paired by seed, 95% interval)",
                         "AdamW보다 낮아진 검증 손실(시드별 짝, 95% 구간)"))
        ax.set_title(tr(f"{main}: Muon by parameter group (separate runs)",
                        f"{main}: 매개변수 묶음별 Muon(별개 실행)"), fontsize=10)
        ax.grid(True, axis="x", alpha=0.25)
    ax = ax_seeds
    rows = [(name, opt, row) for name, c in summary["cells"].items() for opt, row in c["optimizers"].items()]
    for i, (name, opt, row) in enumerate(rows):
        values = row["lowest"]["values"]
        ax.plot(values, [i] * len(values), "o", alpha=0.6, color=COLOURS.get(opt))
        ax.plot([row["lowest"]["mean"]] * 2, [i - 0.3, i + 0.3], "k-")
    one = len(summary["cells"]) == 1  # the condition is in the title then
    ax.set_yticks(range(len(rows)), [label(opt) if one else f"{name}: {label(opt)}" for name, opt, _ in rows],
                  fontsize=7)
    ax.invert_yaxis()
    baseline_lines(ax, baselines, vertical=True)
    ax.set_xlabel(tr("lowest held-out loss", "최저 검증 손실"))
    where = f"{next(iter(summary['cells']))}: " if one and summary["cells"] else ""
    ax.set_title(where + tr("each seed (dots), mean (bar), baselines (lines)",
                            "시드별 값(점), 평균(막대), 기준선(선)"), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.25)
    tokens = results["sequences"]["replica"] * cfg["seq_len"]
    vocab, ids = cfg["vocab"], results["vocab_size"]
    vocab_ko = {"compact": "압축", "full": "전체"}.get(vocab, vocab)
    fig.suptitle(tr(f"AdamW vs Muon on {tokens / 1e3:,.0f}k FineWeb tokens ({vocab} vocabulary, {ids:,} ids)",
                    f"FineWeb 토큰 {tokens / 1e3:,.0f}k개로 비교한 AdamW와 Muon({vocab_ko} 어휘, id {ids:,}개)"))
    fig.tight_layout()
    return finish_figure(fig, path)


def plot_runs(results: dict, path: Path | None = None):
    """Train loss (moving average) and held-out loss of each run of ``run_pair`` (notebook 10)."""
    plt = pyplot_for(path)
    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cfg, world = results["config"], results["world_size"]
    plot_loss_curves({label(k): v["train_loss"] for k, v in runs.items()}, cfg["window"], ax=ax,
                     val_curves={label(k): (v["val_steps"], v["val_loss"]) for k, v in runs.items()},
                     title=tr(f"{cfg['preset'] or 'capstone'}: {world} process(es), "
                              f"batch {cfg['batch_size']} x {cfg['seq_len']}",
                              f"{cfg['preset'] or '캡스톤'}: 프로세스 {world}개, "
                              f"배치 {cfg['batch_size']} x {cfg['seq_len']}"))
    return finish_figure(fig, path)
