"""Student copies: every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block becomes a TODO.

    python -m classroom.student_copies                 # writes student/en/*.ipynb and student/ko/*.ipynb
    python -m classroom.student_copies --out handout   # somewhere else
    python -m classroom.student_copies --colab-base https://github.com/ORG/REPO/blob/main/student

The block (markers included) is replaced by ``# YOUR CODE HERE`` (Korean in ``ko``) and a
``raise NotImplementedError(...)`` that names the exercise and what to write, in the notebook's
language, at the marker's indentation; outputs and execution counts are cleared. Nothing between the
markers survives in the student file.

The "Open in Colab" badge of the instructor's notebooks opens the notebook *with* the solutions, so a
student copy carries a badge only when the instructor says where the student copies are published
(``--colab-base URL`` or the ``COURSE_COLAB_BASE`` environment variable): it then opens
``URL/<lang>/<notebook>.ipynb``. Without that setting the badge cell is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from course_lib.i18n import tr

from .exercises import EXERCISES
from .build import BADGE_TEXT, LANGS, NOTEBOOKS, ROOT, dumps

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
COLAB_ENV_VAR = "COURSE_COLAB_BASE"
STUB_INTRO = {"en": "Exercise", "ko": "실습"}
TODO_COMMENT = {"en": "# YOUR CODE HERE", "ko": "# 여기에 코드를 작성하세요 (YOUR CODE HERE)"}


def stub_message(exercise_id: str | None, lang: str = "en") -> str:
    """What the stub's NotImplementedError says: the exercise, its notebook and what to write."""
    if exercise_id is None:
        return tr("this exercise is not written yet: replace this line with your code",
                  "아직 작성하지 않은 실습입니다: 이 줄을 여러분의 코드로 바꾸세요", lang)
    exercise = EXERCISES[exercise_id]
    where = tr(f"notebook {exercise.notebook}", f"노트북 {exercise.notebook}", lang)
    return f"{tr(**STUB_INTRO, lang=lang)} '{exercise_id}' ({where}): {tr(**exercise.todo, lang=lang)}"


def strip_solutions(source: str, message: str | None = None, comment: str = TODO_COMMENT["en"]) -> str:
    """Replace each solution block of one code cell with ``comment`` and a stub raising ``message``."""
    out, inside, indent = [], False, ""
    raise_line = f"raise NotImplementedError({message!r})" if message else "raise NotImplementedError()"
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: '{BEGIN}' inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{comment}\n{indent}{raise_line}\n")
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return "".join(out)


def colab_base_url(base: str) -> str:
    """A Colab URL prefix from ``base``: a Colab URL is kept, a github.com folder URL is converted."""
    base = base.strip().rstrip("/")
    github = re.match(r"^https://github\.com/([^/]+)/([^/]+)/(?:tree|blob)/(.+)$", base)
    if github:
        owner, repo, rest = github.groups()
        return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{rest}"
    if base.startswith("https://colab.research.google.com/"):
        return base
    raise ValueError(f"--colab-base {base!r}: give the URL of the folder holding the published student copies, "
                     "either https://github.com/ORG/REPO/blob/BRANCH/FOLDER or "
                     "https://colab.research.google.com/github/ORG/REPO/blob/BRANCH/FOLDER")


def _is_badge_cell(cell: dict) -> bool:
    return cell["cell_type"] == "markdown" and "colab-badge.svg" in "".join(cell["source"])


def student_notebook(nb: dict, colab_base: str | None = None, filename: str | None = None) -> dict:
    """The student copy of one notebook (see the module docstring)."""
    nb = json.loads(json.dumps(nb))
    lang = nb.get("metadata", {}).get("course", {}).get("lang", "en")
    cells = []
    for cell in nb["cells"]:
        if _is_badge_cell(cell):
            if not colab_base:
                continue
            if filename is None:
                raise ValueError("a Colab badge needs the notebook's file name")
            url = f"{colab_base_url(colab_base)}/{lang}/{filename}"
            badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})\n\n"
            cell["source"] = (badge + tr(**BADGE_TEXT, lang=lang)).splitlines(keepends=True)
        if cell["cell_type"] == "code":
            exercise = cell.get("metadata", {}).get("course", {}).get("exercise")
            message = stub_message(exercise, lang)
            cell["source"] = strip_solutions("".join(cell["source"]), message,
                                             tr(**TODO_COMMENT, lang=lang)).splitlines(keepends=True)
            cell["outputs"] = []
            cell["execution_count"] = None
        cells.append(cell)
    nb["cells"] = cells
    return nb


def build_student_copies(out_root: Path, src_root: Path = NOTEBOOKS, colab_base: str | None = None) -> list[Path]:
    """Write a student copy of every notebook (those without exercises are copied, outputs cleared)."""
    if colab_base:
        colab_base_url(colab_base)  # a bad URL fails before anything is written
    written = []
    for lang in LANGS:
        for path in sorted((src_root / lang).glob("*.ipynb")):
            nb = student_notebook(json.loads(path.read_text(encoding="utf-8")), colab_base, path.name)
            target = out_root / lang / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dumps(nb), encoding="utf-8")
            written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write student copies of the course notebooks.")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="output folder (default: student/)")
    parser.add_argument("--colab-base", default=os.environ.get(COLAB_ENV_VAR) or None,
                        help="URL of the folder where you publish the student copies (its en/ and ko/ subfolders); "
                             f"the badge opens them in Colab. Default: ${COLAB_ENV_VAR}, else no badge.")
    args = parser.parse_args(argv)
    try:
        written = build_student_copies(args.out, colab_base=args.colab_base)
    except ValueError as err:
        parser.error(str(err))
    badge = f"badges open {colab_base_url(args.colab_base)}/<lang>/…" if args.colab_base else "no Colab badge"
    print(f"wrote {len(written)} student notebooks under {args.out} ({badge})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
