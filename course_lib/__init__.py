"""course_lib: the small shared package every notebook of the course imports.

Modules: ``paths`` (find resources), ``runtime`` (device, seeds, quick mode), ``i18n`` (the reader's
language, ``tr``, the Korean font), ``tokenizer``, ``data``, ``models``, ``optim``, ``train``, ``plots``,
``capstone``, and for maintainers ``nbtools``, ``render``, ``assignments``, ``grade``.
"""

__version__ = "0.1.0"

# The course's public repository: the one place its address is written. The Colab setup cell of
# every notebook must use exactly this URL (tests/test_notebooks.py checks it).
REPO_URL = "https://github.com/llm-optim-course/llm-optimization-course"


def _korean_figures() -> None:
    """Hangul in figure labels needs a font that has it (``course_lib.i18n.use_korean_font``). Without
    the font English notebooks still work; Korean ones are warned, with the fix."""
    import warnings

    from .i18n import notebook_language, use_korean_font

    try:
        use_korean_font()
    except ImportError:  # matplotlib is not installed: nothing draws figures
        pass
    except FileNotFoundError as missing:
        if notebook_language() == "ko":
            warnings.warn(str(missing), stacklevel=2)


_korean_figures()
