"""The language a checker speaks: the notebook's own (``course_lib.runtime.notebook_language``).

Checkers write every message twice, ``tr("English", "한국어")``, so the Korean and the English
notebooks call the same code and each reader gets hints in the language of the notebook in front of them.
"""

from __future__ import annotations

from ..runtime import notebook_language


def tr(en: str, ko: str) -> str:
    """``ko`` in a Korean notebook (``notebooks/ko`` or ``COURSE_LANG=ko``), ``en`` everywhere else."""
    return ko if notebook_language() == "ko" else en
