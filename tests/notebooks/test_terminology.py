"""Korean terminology: the rejected variants listed in notebooks/TERMINOLOGY.md never appear in a Korean
cell, and no notebook (or the README) points readers at the source documents they do not have."""

import json
import re

import pytest

from ..notebook_helpers import NOTEBOOKS, ROOT

TERMINOLOGY = NOTEBOOKS / "TERMINOLOGY.md"
SOURCE_DOCUMENT = re.compile(r"\bseeds? ?-?00\d|시드 ?00\d|시드 노트|seed notes", re.IGNORECASE)


def rejected_variants() -> dict[str, str]:
    """{rejected string: what to write instead}, from the 'Rejected variants' table."""
    text = TERMINOLOGY.read_text(encoding="utf-8").split("## Rejected variants", 1)[1]
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): cells[1].strip() for cells in rows[1:] if len(cells) >= 2}


def korean_cells() -> list[tuple[str, int, str]]:
    """(notebook, cell index, text) of every Korean markdown cell and every code cell's comments."""
    out = []
    for path in sorted((NOTEBOOKS / "ko").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            text = "".join(cell["source"])
            if cell["cell_type"] == "code":
                text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
            out.append((path.name, i, text))
    return out


def find_rejected(cells, variants) -> list[str]:
    found = []
    for name, i, text in cells:
        for bad, fix in variants.items():
            at = text.find(bad)
            if at >= 0:
                found.append(f"{name} cell {i}: '{bad}' -> {fix}: …{text[max(0, at - 30):at + 30]}…")
    return found


def test_the_table_lists_the_review_findings():
    variants = rejected_variants()
    for bad in ("퀵 모드", "숨은 층", "정규화 가중치", "맞교환", "스텝을 밟", "체커", "연습 문제", "뉴턴–슐츠",
                "시드 노트"):
        assert bad in variants, f"TERMINOLOGY.md's rejected table lost {bad!r}"


def test_korean_cells_use_the_chosen_terms():
    found = find_rejected(korean_cells(), rejected_variants())
    assert not found, "rejected Korean variants (see notebooks/TERMINOLOGY.md):\n" + "\n".join(found)


def test_the_check_flags_a_rejected_variant():
    cells = [("x.ipynb", 3, "빠른 모드에서는 괜찮고, 퀵 모드에서는 스텝을 밟습니다.")]
    found = find_rejected(cells, rejected_variants())
    assert len(found) == 2 and "빠른 모드" in found[0] and "x.ipynb cell 3" in found[0]
    assert not find_rejected([("x.ipynb", 0, "빠른 모드에서 한 번 업데이트하면")], rejected_variants())


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_no_notebook_points_at_the_source_documents(lang):
    hits = []
    for path in sorted((NOTEBOOKS / lang).glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            m = SOURCE_DOCUMENT.search("".join(cell["source"]))
            if m:
                hits.append(f"{path.name} cell {i}: {m.group(0)!r}")
    assert not hits, "readers do not have the source documents; cite the paper or repository:\n" + "\n".join(hits)


def test_readme_and_library_do_not_point_at_the_source_documents():
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "course_lib").rglob("*.py")),
             *sorted((ROOT / "benchmarks").glob("*.md"))]
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in files
            for m in [SOURCE_DOCUMENT.search(p.read_text(encoding="utf-8"))] if m]
    assert not hits, hits
    assert SOURCE_DOCUMENT.search("as in seed 002's run") and SOURCE_DOCUMENT.search("시드 000")
    assert not SOURCE_DOCUMENT.search("random seed 1234, seeds 0-4")
