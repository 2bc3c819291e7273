"""Student copies: every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block becomes a TODO.

    python -m course_lib.assignments                 # writes student/en/*.ipynb and student/ko/*.ipynb
    python -m course_lib.assignments --out handout   # somewhere else

The block (markers included) is replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError()``
at the marker's indentation; outputs and execution counts are cleared. Nothing between the markers
survives in the student file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .nbtools import LANGS, NOTEBOOKS, ROOT, dumps

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"


def strip_solutions(source: str) -> str:
    """Replace each solution block of one code cell with the student stub."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: '{BEGIN}' inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n")
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return "".join(out)


def student_notebook(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["source"] = strip_solutions("".join(cell["source"])).splitlines(keepends=True)
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def has_solutions(nb: dict) -> bool:
    return any(BEGIN in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def build_student_copies(out_root: Path, src_root: Path = NOTEBOOKS) -> list[Path]:
    """Write a student copy of every notebook (those without exercises are copied, outputs cleared)."""
    written = []
    for lang in LANGS:
        for path in sorted((src_root / lang).glob("*.ipynb")):
            nb = student_notebook(json.loads(path.read_text(encoding="utf-8")))
            target = out_root / lang / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dumps(nb), encoding="utf-8")
            written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write student copies of the course notebooks.")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="output folder (default: student/)")
    args = parser.parse_args(argv)
    written = build_student_copies(args.out)
    print(f"wrote {len(written)} student notebooks under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
