"""Plots: moving averages and loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .i18n import notebook_language, tr, use_korean_font


def moving_average(values: Sequence[float], window: int = 5) -> np.ndarray:
    """Mean of each run of ``window`` consecutive values (numpy's 'valid' convolution), as the capstone's figures
    smooth a loss curve.

    The result has ``len(values) - window + 1`` entries; element i averages values[i : i + window].
    Shorter inputs are returned unchanged.
    """
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {array.shape}")
    if len(array) < window:
        return array
    return np.convolve(array, np.ones(window) / window, mode="valid")


def use_course_fonts() -> None:
    """Let figures draw Hangul: NanumGothic (``course_lib.i18n.use_korean_font``) becomes the fallback behind
    matplotlib's DejaVu Sans, so Latin text looks as usual. Notebooks call it once before drawing; the
    course's own drawing functions call it too. Without the font, English figures still draw and a Korean
    notebook is warned, with the fix."""
    import warnings

    try:
        use_korean_font()
    except FileNotFoundError as missing:
        if notebook_language() == "ko":
            warnings.warn(str(missing), stacklevel=2)


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]],
    window: int = 5,
    ax=None,
    title: str | None = None,
    val_curves: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
    ylabel: str | None = None,
):
    """Plot the ``window``-step moving average of each train-loss curve against the step number.

    The average over steps s-window+1..s is drawn at step s (steps count from 1). Optional
    ``val_curves`` map a name to (steps, losses) drawn as dashed lines with markers. ``ylabel``
    defaults to "loss (moving average)" in the notebook's language.
    """
    import matplotlib.pyplot as plt

    use_course_fonts()
    if ylabel is None:
        ylabel = tr("loss (moving average)", "손실(이동 평균)")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    colors = {}
    for name, losses in curves.items():
        smooth = moving_average(losses, window)
        first = len(losses) - len(smooth) + 1
        (line,) = ax.plot(np.arange(first, len(losses) + 1), smooth, label=name)
        colors[name] = line.get_color()
    for name, (steps, losses) in (val_curves or {}).items():
        ax.plot(steps, losses, "--o", markersize=3, color=colors.get(name),
                label=tr(f"{name} (held-out)", f"{name}(검증)"))
    ax.set_xlabel(tr("training step", "학습 스텝"))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.25)
    ax.legend()
    return ax


def pyplot_for(path=None):
    """``matplotlib.pyplot``, switched to the file-only Agg backend when the figure goes to ``path``
    (headless runs: the capstone command, CI)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_course_fonts()
    return plt


def finish_figure(fig, path=None, dpi: int = 120):
    """Tight layout; if ``path`` is given, write the figure there and close it. Returns ``fig``."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
        pyplot_for(path).close(fig)
    return fig

