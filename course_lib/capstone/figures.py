"""The capstone's figures: the replica of the original, every study cell with 95 % bands over seeds, the
learning-rate searches and every seed's lowest held-out loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..i18n import tr
from ..plots import finish_figure, moving_average, plot_loss_curves, pyplot_for
from .experiment import STUDY_CELLS
from .report import label, mean_ci, seed_runs, study_summary

COLOURS = {"torch_adamw": "C0", "muon": "C1", "muon_all": "C2", "muon_all_rms": "C3"}  # the same in every panel


def band(ax, steps, curves, label, color=None):
    """Mean over seeds with its 95 % t interval as a shaded band; returns the line's colour."""
    values = np.asarray(curves, dtype=float)
    stats = [mean_ci(values[:, i]) for i in range(values.shape[1])]
    mean = np.array([m for m, _ in stats])
    half = np.array([0.0 if c is None else c for _, c in stats])
    (line,) = ax.plot(steps, mean, "-o", markersize=2.5, label=label, color=color)
    ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    return line.get_color()


def plot_capstone(results: dict, path: Path | None = None):
    """Replica, then each study cell (held-out loss, mean and 95 % band over seeds), the learning-rate
    searches of the main cell and every seed's lowest held-out loss."""
    plt = pyplot_for(path)
    window = results["config"]["window"]
    cells = [c for c in STUDY_CELLS if c.name in results.get("cells", {})]
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    axes = axes.ravel()
    plot_loss_curves({label(k): v["train_loss"] for k, v in results["replica"].items()}, window, ax=axes[0],
                     title=tr(f"Original replica: train loss, {window}-step moving average (1 seed)",
                              f"원본 재현: 학습 손실, {window}스텝 이동 평균(시드 1개)"))
    seeds = results["config"]["seeds"]
    for ax, cell in zip(axes[1:4], cells):
        for opt in cell.optimizers:
            runs = seed_runs(results, cell.name, opt)
            name = label(opt)
            color = band(ax, runs[0]["val_steps"], [r["val_loss"] for r in runs],
                         tr(f"{name} held-out", f"{name} 검증 손실"), COLOURS[opt])
            if cell.regime == "three_pass":
                train = np.mean([r["train_loss"] for r in runs], axis=0)
                smooth = moving_average(train, window)
                ax.plot(np.arange(window, len(train) + 1), smooth, ":", color=color,
                        label=tr(f"{name} train (MA)", f"{name} 학습 손실(이동 평균)"))
        ax.set_title(tr(f"{cell.name}: held-out loss, mean and 95% band over {seeds} seeds",
                        f"{cell.name}: 검증 손실, 시드 {seeds}개의 평균과 95% 구간"))
        ax.set_xlabel(tr("training step", "학습 스텝"))
        ax.set_ylabel(tr("loss", "손실"))
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    ax = axes[4]
    main = cells[0].name if cells else None
    if main is not None:
        for opt, entry in results["cells"][main].items():
            tried = {float(k): v["summary"]["best_val_loss"] if v["summary"] else math.nan
                     for k, v in entry["lr_search"].items()}
            lrs = sorted(tried)
            ax.plot(lrs, [tried[lr] for lr in lrs], "-o", label=label(opt), color=COLOURS[opt])
            ax.plot([entry["tuned"]["lr"]], [tried[entry["tuned"]["lr"]]], "k*", markersize=10)
        ax.set_xscale("log")
        ax.set_xlabel(tr("learning rate (Muon's for the hybrid)", "학습률(하이브리드는 Muon의 학습률)"))
        ax.set_ylabel(tr("lowest held-out loss (seed 0)", "최저 검증 손실(시드 0)"))
        ax.set_title(tr(f"{main}: learning-rate searches (* tuned)", f"{main}: 학습률 탐색(*: 튜닝된 값)"))
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    ax = axes[5]
    summary = study_summary(results)["cells"] if cells else {}
    ticks = []
    rows = [(name, opt, row) for name, cell in summary.items() for opt, row in cell["optimizers"].items()]
    for i, (name, opt, row) in enumerate(rows):
        values = row["lowest"]["values"]
        ax.plot([i] * len(values), values, "o", alpha=0.6, color=COLOURS[opt])
        ax.plot([i - 0.25, i + 0.25], [row["lowest"]["mean"]] * 2, "k-")
        ticks.append(f"{name}\n{label(opt)}")
    ax.set_xticks(range(len(ticks)), ticks, rotation=70, fontsize=7)
    ax.set_ylabel(tr("lowest held-out loss", "최저 검증 손실"))
    ax.set_title(tr("every seed (dots) and the mean (bar)", "시드별 값(점)과 평균(막대)"))
    ax.grid(True, alpha=0.25)
    tokens = results["sequences"]["replica"] * results["config"]["seq_len"]
    vocab, ids = results["config"]["vocab"], results["vocab_size"]
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
