"""The rendered copies under rendered/ (make render): one per notebook and language, fresh (the same cells
as the source notebook), run in full mode without errors, Korean in ko and English in en, small."""

from __future__ import annotations

import nbformat
import pytest

from classroom.build import LANGS, NOTEBOOKS, ROOT
from classroom.render import MAX_TOTAL_MB, RENDERED, rendered_path, source_notebooks, total_mb

from ..notebook_helpers import ENGLISH_PROSE, HANGUL, english_sentences, text_outputs

SOURCES = [path for lang in LANGS for path in source_notebooks(lang)]


@pytest.fixture(scope="module", params=SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem[:2]}")
def pair(request):
    source = request.param
    rendered = rendered_path(source)
    assert rendered.exists(), (f"{rendered.relative_to(ROOT)} is missing: run `make render` "
                               f"(or python -m classroom.render {source.stem[:2]} --lang {source.parent.name})")
    return source, nbformat.read(source, as_version=4), nbformat.read(rendered, as_version=4)


def test_rendered_copy_has_the_cells_of_its_source(pair):
    source, src, out = pair
    stale = (f"rendered/{source.parent.name}/{source.name} is stale: re-render it with "
             f"`python -m classroom.render {source.stem[:2]} --lang {source.parent.name}`")
    assert [c.cell_type for c in out.cells] == [c.cell_type for c in src.cells], stale
    for i, (a, b) in enumerate(zip(src.cells, out.cells)):
        assert a.source == b.source, f"{stale} (cell {i} differs)"


def test_rendered_copy_ran_in_full_mode_without_errors(pair):
    source, _, out = pair
    assert out.metadata["course"]["rendered"]["mode"] == "full"
    code = [c for c in out.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a code cell did not run"
    errors = [(i, t[:300]) for i, kind, t in text_outputs(out) if kind == "error"]
    assert not errors, errors
    printed = "\n".join(t for _, kind, t in text_outputs(out) if kind == "stdout")
    assert "quick mode: True" not in printed and "빠른 모드: True" not in printed


def test_rendered_outputs_speak_the_notebooks_language(pair):
    source, _, out = pair
    texts = list(text_outputs(out))
    glyphs = [(i, t[:200]) for i, _, t in texts if "missing from font" in t]
    assert not glyphs, f"{source.name}: figures drew tofu boxes: {glyphs}"
    assert not [t for _, _, t in texts if str(ROOT) in t], "an output names the folder it was rendered in"
    bars = [i for i, kind, t in texts if kind == "text/plain" and "%|" in t]
    assert not bars, f"{source.name}: progress bars stored as text in cells {bars}"
    if source.parent.name == "en":
        hangul = [(i, t[:120]) for i, _, t in texts if HANGUL.search(t)]
        assert not hangul, f"{source.name}: Korean in the English notebook's output: {hangul[:3]}"
    else:
        printed = [(i, line) for i, kind, t in texts if kind == "stdout" for line in t.splitlines()]
        assert any(HANGUL.search(line) for _, line in printed), f"{source.name}: nothing printed in Korean"
        english = [(i, line[:120]) for i, line in printed if english_sentences(line)]
        assert not english, f"{source.name}: English sentences printed in the Korean notebook: {english[:5]}"


def test_rendered_folder_is_small_and_holds_only_rendered_notebooks():
    assert total_mb() <= MAX_TOTAL_MB, f"rendered/ holds {total_mb():.1f} MB, more than {MAX_TOTAL_MB} MB"
    expected = {rendered_path(p) for p in SOURCES}
    extra = [p for p in RENDERED.rglob("*.ipynb") if p not in expected]
    assert not extra, f"rendered copies without a source notebook: {extra}"


def test_pytest_nbmake_notebooks_does_not_collect_the_rendered_copies():
    """Instructors run `pytest --nbmake notebooks`: the rendered copies live outside notebooks/."""
    assert not RENDERED.resolve().is_relative_to(NOTEBOOKS.resolve())


def test_the_prose_check_catches_english_and_passes_korean():
    assert ENGLISH_PROSE.search("loss 3.2 after 10 steps")
    assert ENGLISH_PROSE.search("the LM head holds 98% of the weights")
    assert not ENGLISH_PROSE.search("10스텝 뒤 손실 3.2 | torch.optim.AdamW | lr 1e-3 | state_dict")
    assert english_sentences("손실 3.2\nthe loss went up") == ["the loss went up"]
    assert not english_sentences('Liu 외 2025, "Muon is scalable for LLM training": 약 2배')
    assert not english_sentences("'When the first tornado...'\nValueError: seq_len=9 is longer than the data")


def test_readme_syllabus_links_every_rendered_copy():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for source in SOURCES:
        link = f"(rendered/{source.parent.name}/{source.name})"
        assert link in readme, f"README's syllabus table does not link {link}"


def test_render_refuses_an_unknown_notebook_prefix():
    with pytest.raises(ValueError, match=r"no notebook in notebooks/ko starts with \['99'\]; they are \[.*'01_adamw'"):
        source_notebooks("ko", ["99"])
    assert [p.name for p in source_notebooks("en", ["01"])] == ["01_adamw.ipynb"]
