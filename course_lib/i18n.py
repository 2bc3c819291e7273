"""The reader's language: ``tr("English", "한국어")`` and a Korean font for matplotlib.

The Korean and English notebooks run the same code. Every line a notebook prints and every figure
label it draws is written twice, ``tr(en, ko)``, and the language of the notebook in front of the
reader picks one (``course_lib.runtime.notebook_language``: ``COURSE_LANG``, else the folder
``notebooks/ko``, else the notebook's own metadata on Colab).

Matplotlib's own font, DejaVu Sans, has no Hangul: a Korean label would come out as empty boxes
("tofu") with a "Glyph ... missing from font(s)" warning on any machine without a Korean font, such
as CI or a fresh Colab. ``use_korean_font`` registers NanumGothic (SIL Open Font License), which the
``koreanize-matplotlib`` package ships, as a fallback behind DejaVu Sans: Latin, Greek and math
symbols keep their usual look, Hangul comes from NanumGothic. Importing ``course_lib`` changes no
matplotlib setting: ``course_lib.plots.use_course_fonts()`` calls it where figures are drawn.
"""

from __future__ import annotations

import importlib.util
import json
import os
import unicodedata
from functools import lru_cache
from pathlib import Path

LANG_ENV_VAR = "COURSE_LANG"

KOREAN_FONT = "NanumGothic"
KOREAN_FONT_PACKAGE = "koreanize-matplotlib"


def notebook_language() -> str:
    """"ko" or "en": the ``COURSE_LANG`` environment variable if set; else "ko" when the current folder is
    ``ko`` (Jupyter, VS Code and nbmake run a notebook in its own folder, ``notebooks/ko``); else, on
    Colab, the language written in the open notebook's metadata; else "en"."""
    lang = os.environ.get(LANG_ENV_VAR, "").strip().lower()
    if lang:
        if lang not in ("en", "ko"):
            raise ValueError(f"{LANG_ENV_VAR} must be 'en' or 'ko', got {lang!r}")
        return lang
    if Path.cwd().name == "ko":
        return "ko"
    return _colab_notebook_language() or "en"


@lru_cache(maxsize=1)
def _colab_notebook_language() -> str | None:
    """The ``course.lang`` metadata of the notebook open in Colab (None outside Colab). Colab runs every
    notebook in /content, so the folder cannot tell; the notebook itself can."""
    try:
        from google.colab import _message  # only exists on Colab
    except ImportError:
        return None
    try:
        nb = _message.blocking_request("get_ipynb", timeout_sec=10)["ipynb"]
    except Exception:  # noqa: BLE001  (an old Colab frontend; the language then falls back to English)
        return None
    if isinstance(nb, str):
        nb = json.loads(nb)
    lang = nb.get("metadata", {}).get("course", {}).get("lang")
    return lang if lang in ("en", "ko") else None


def tr(en: str, ko: str, lang: str | None = None) -> str:
    """``ko`` in a Korean notebook, ``en`` everywhere else (see ``notebook_language``); ``lang`` ("en" or
    "ko") picks one explicitly, for text written in both languages at once (a README, a grade report)."""
    if lang is None:
        lang = notebook_language()
    elif lang not in ("en", "ko"):
        raise ValueError(f"lang must be 'en' or 'ko', got {lang!r}")
    return ko if lang == "ko" else en


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` columns of a terminal, where a Hangul syllable (any East Asian
    wide character) takes two: ``f"{text:<{width}s}"`` for tables whose labels may be Korean."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


def korean_font_file() -> Path:
    """NanumGothic.ttf from the ``koreanize-matplotlib`` package, found without importing the package
    (its import runs code that needs ``distutils``, which Python 3.12 removed)."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / f"{KOREAN_FONT}.ttf"
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"no Korean font for the figures: {KOREAN_FONT}.ttf of the package {KOREAN_FONT_PACKAGE} is not "
            f"installed (looked in {path}). Install it with `pip install {KOREAN_FONT_PACKAGE}` "
            "(requirements.txt lists it).")
    return path


def use_korean_font() -> None:
    """Register NanumGothic with matplotlib and make the font family DejaVu Sans, then NanumGothic:
    matplotlib (3.6 or newer) falls back glyph by glyph, so Hangul comes from NanumGothic. Safe to call twice."""
    from matplotlib import font_manager, rcParams

    path = korean_font_file()
    if KOREAN_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    rcParams["font.family"] = ["DejaVu Sans", KOREAN_FONT]
