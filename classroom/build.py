"""Build the Korean and English notebooks from one bilingual source file each.

A source ``notebooks/src/NN_topic.txt`` is a list of cells, each opened by a marker line:

    #%% md          English markdown
    #%% md-ko       Korean markdown for the English cell just before it (required)
    #%% code        code, shared by both languages
    #%% code-ko     optional Korean-commented version of the code cell just before it: it must be
                    the same code apart from comments (checked)
    #%% code answer=ID    the code cell holding exercise ID's solution (``classroom.exercises``)
    #%% code check=ID     the cell that checks exercise ID (it carries the exercise's points)

The build writes ``notebooks/en/NN_topic.ipynb`` and ``notebooks/ko/NN_topic.ipynb`` with the same
cells in the same order, no outputs, the ``python3`` kernel, cell metadata ``course`` on every exercise
cell ({"exercise": ID, "role": "answer" | "check", "points": N on the check cell}) and notebook metadata
``course`` ({"notebook": stem, "lang": "en" | "ko"}), and two cells in front: an "Open in
Colab" badge and a setup cell that installs the course on Colab only. So the two languages cannot
drift apart, and the Colab cells always use ``course_lib.REPO_URL``.

    python -m classroom.build            # rebuild every notebook from notebooks/src
    python -m classroom.build 01 02      # rebuild only notebooks 01 and 02
    python -m classroom.build --check    # fail if a notebook differs from its source
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tokenize
from pathlib import Path

from course_lib import REPO_URL
from course_lib.i18n import tr
from .exercises import get_exercise

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
LANGS = ("en", "ko")
MARKER = re.compile(r"^#%% (md|md-ko|code|code-ko)(?: (answer|check)=(\w+))?\s*$")

SETUP_CODE = f'''# On Colab: fetch the course (code and data) and install it. Everywhere: check that course_lib imports.
import os
import subprocess
import sys
REPO_URL = "{REPO_URL}"
if "google.colab" in sys.modules and not os.path.isdir("/content/course"):
    subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/course"], check=True)
if "google.colab" in sys.modules:
    sys.path.insert(0, "/content/course")
    os.environ.setdefault("COURSE_RESOURCE_DIR", "/content/course/resource")
try:
    import course_lib  # noqa: F401  (is the course installed in this kernel?)
except ModuleNotFoundError as err:
    if err.name != "course_lib":
        raise
    raise ModuleNotFoundError(
        f"course_lib is not installed in this kernel's Python ({{sys.executable}}). From the course folder run "
        "`make lab` (it sets up .venv and opens JupyterLab in it), or run `python -m pip install -e .` there "
        "with this Python, then restart the kernel. | 이 커널의 파이썬에는 course_lib가 설치되어 있지 않습니다. "
        "코스 폴더에서 `make lab`을 실행하거나(.venv를 만들고 그 환경에서 JupyterLab을 엽니다), 이 파이썬으로 "
        "`python -m pip install -e .`을 실행한 뒤 커널을 다시 시작하세요.") from None'''

BADGE_TEXT = {
    "en": "Run it in the cloud: the next cell installs the course when the notebook runs on Colab.",
    "ko": "클라우드에서 실행하려면 배지를 누르세요. Colab에서 열면 다음 셀이 코스를 설치합니다.",
}


def colab_url(lang: str, filename: str) -> str:
    path = REPO_URL.replace("https://github.com/", "")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{lang}/{filename}"


def parse_source(text: str, name: str = "<source>") -> list[dict]:
    """Split a source file into cells: dicts with kind, en, ko (ko is None for shared code)."""
    cells: list[dict] = []
    kind, lines, role = None, [], None

    def flush():
        if kind is None:
            if any(line.strip() for line in lines):
                raise ValueError(f"{name}: text before the first '#%%' marker")
            return
        body = "\n".join(lines).strip("\n")
        if kind == "md":
            cells.append({"kind": "markdown", "en": body, "ko": None})
        elif kind == "code":
            cells.append({"kind": "code", "en": body, "ko": body, "exercise": role})
        else:
            expect = "markdown" if kind == "md-ko" else "code"
            if not cells or cells[-1]["kind"] != expect:
                raise ValueError(f"{name}: '#%% {kind}' must follow a '#%% {kind[:-3]}' cell")
            if kind == "md-ko" and cells[-1]["ko"] is not None:
                raise ValueError(f"{name}: two Korean cells for one English cell")
            cells[-1]["ko"] = body

    for line in text.splitlines():
        match = MARKER.match(line)
        if match:
            flush()
            kind, lines = match.group(1), []
            role = (match.group(2), get_exercise(match.group(3)).id) if match.group(2) else None
            if role and kind != "code":
                raise ValueError(f"{name}: only '#%% code' cells take answer=/check=, not {line!r}")
        else:
            lines.append(line)
    flush()
    for i, cell in enumerate(cells):
        if cell["kind"] == "markdown" and cell["ko"] is None:
            raise ValueError(f"{name}: markdown cell {i} has no '#%% md-ko' translation")
        if cell["kind"] == "code" and code_without_comments(cell["en"]) != code_without_comments(cell["ko"]):
            raise ValueError(f"{name}: the Korean version of code cell {i} changes code, not only comments")
    return cells


def code_without_comments(source: str) -> str:
    """The code with comments and blank lines removed (for comparing the two languages)."""
    lines = source.splitlines()
    if any(line.lstrip().startswith(("%", "!")) for line in lines):  # IPython magics: compare as text
        return "\n".join(re.sub(r"\s+#.*$", "", line).rstrip() for line in lines if line.strip()
                         and not line.lstrip().startswith("#"))
    out = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        out.append((tok.type, tok.string))
    return repr(out)


def _cell(kind: str, text: str, exercise=None) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
    if exercise:
        role, exercise_id = exercise
        cell["metadata"]["course"] = {"exercise": exercise_id, "role": role}
        if role == "check":
            cell["metadata"]["course"]["points"] = get_exercise(exercise_id).points
    if kind == "code":
        cell["execution_count"] = None
        cell["outputs"] = []
    return cell


def build_notebook(cells: list[dict], lang: str, filename: str) -> dict:
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(lang, filename)})\n\n"
        f"{tr(**BADGE_TEXT, lang=lang)}"
    )
    nb_cells = [_cell("markdown", badge), _cell("code", SETUP_CODE)]
    for cell in cells:
        nb_cells.append(_cell(cell["kind"], cell[lang], cell.get("exercise")))
    for i, cell in enumerate(nb_cells):
        cell["id"] = f"{lang}-{i:03d}"
    return {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
            "course": {"notebook": Path(filename).stem, "lang": lang},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def expected_notebooks(root: Path = NOTEBOOKS, only: tuple[str, ...] = ()) -> dict[Path, str]:
    """Every notebook file the sources produce, with its exact text (``only``: name prefixes, e.g. "01")."""
    out = {}
    for src in sorted((root / "src").glob("*.txt")):
        if only and not src.name.startswith(tuple(only)):
            continue
        cells = parse_source(src.read_text(encoding="utf-8"), src.name)
        filename = src.stem + ".ipynb"
        for lang in LANGS:
            out[root / lang / filename] = dumps(build_notebook(cells, lang, filename))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build notebooks/en and notebooks/ko from notebooks/src.")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    parser.add_argument("only", nargs="*", help="build only the sources whose names start with these (e.g. 01 02)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_notebooks(only=tuple(args.only)).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
