"""Shared helpers for tests that execute notebooks or their student copies."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from classroom.build import parse_source
from classroom.student_copies import BEGIN, END, student_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SRC = NOTEBOOKS / "src"


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def solution_lines(nb: dict) -> list[str]:
    """Non-blank lines strictly inside solution blocks."""
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        inside = False
        for line in "".join(cell["source"]).splitlines():
            if line.strip() == BEGIN:
                inside = True
            elif line.strip() == END:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def execute(nb: dict, cwd: Path, timeout: int = 600) -> tuple[int | None, BaseException | None]:
    """Run a notebook dict in ``cwd`` with COURSE_QUICK=1. Returns (index of the failing cell, error)."""
    os.environ["COURSE_QUICK"] = "1"
    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins list-of-lines sources
    client = NotebookClient(node, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as err:
        failing = next((i for i, c in enumerate(node.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        return failing, err
    return None, None


def assert_student_copy_stops_at_first_todo(path: Path) -> None:
    """The student copy runs until the first TODO and stops there with NotImplementedError;
    no line of any solution survives in it."""
    solution_nb = load(path)
    student = student_notebook(solution_nb)
    text = json.dumps(student)
    leaked = [line for line in solution_lines(solution_nb) if len(line) > 12 and json.dumps(line)[1:-1] in text]
    assert not leaked, f"solution lines left in the student copy of {path.name}: {leaked[:3]}"
    first_todo = next(i for i, c in enumerate(student["cells"]) if c["cell_type"] == "code"
                      and "raise NotImplementedError(" in "".join(c["source"]))
    failing, err = execute(student, path.parent)
    assert err is not None, f"the student copy of {path.name} ran to the end"
    assert "NotImplementedError" in str(err), f"{path.name}: stopped with {err!s:.300}"
    exercise = student["cells"][first_todo]["metadata"].get("course", {}).get("exercise")
    assert exercise and f"'{exercise}'" in str(err), f"{path.name}: the stub does not name its exercise: {err!s:.300}"
    assert failing == first_todo, f"{path.name}: stopped at cell {failing}, first TODO is cell {first_todo}"


HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Function words of English prose: a Korean printed line holding one of them is an untranslated sentence.
ENGLISH_PROSE = re.compile(r"(?<![\w.])(the|of|and|with|from|than|after|before|is|are|per|when|which|this)(?![\w.(])")
# Printed lines that are English on purpose in both languages: a quoted string (the FineWeb text itself,
# shown with repr), an exception printed as "SomeError: message" (course_lib's error messages are English)
# and a citation ("출처: Brown et al. 2020, arXiv:2005.14165, Table 2.1 and App. B").
NOT_PROSE = re.compile(r"^\s*(['\"]|\w*(Error|Exception|Warning):|(source|출처):)")


QUOTED = re.compile(r'"[^"]*"')  # a quoted title ("Muon is scalable for LLM training") is a citation


def english_sentences(text: str) -> list[str]:
    """The printed lines of ``text`` that read as English sentences (see ENGLISH_PROSE, NOT_PROSE, QUOTED)."""
    return [line for line in text.splitlines()
            if ENGLISH_PROSE.search(QUOTED.sub("", line)) and not NOT_PROSE.match(line)]


def text_outputs(nb):
    """(cell index, kind, text) of every text a reader sees under the code cells."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                yield i, out.name, out.text
            elif out.output_type == "error":
                yield i, "error", "\n".join(out.traceback)
            else:
                for mime in ("text/markdown", "text/plain"):
                    if mime in out.get("data", {}):
                        yield i, mime, out.data[mime]
                        break


def markdown(name: str, lang: str) -> list[str]:
    """The markdown cells of notebook source ``name`` (e.g. "08_stability") in language ``lang``."""
    cells = parse_source((SRC / f"{name}.txt").read_text(encoding="utf-8"), name)
    return [c[lang] for c in cells if c["kind"] == "markdown"]


def flat(text: str) -> str:
    """Markdown as one line: line breaks and blockquote markers become single spaces."""
    return re.sub(r"\s*\n>?\s*", " ", text)
