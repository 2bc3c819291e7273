"""Notebook structure: generated from their sources, ko/en parity, no outputs, Colab cells."""

import json

import pytest

from classroom import build as nbtools
from course_lib import REPO_URL

from ..notebook_helpers import NOTEBOOKS

PAIRS = sorted(p.name for p in (NOTEBOOKS / "en").glob("*.ipynb"))


def test_notebooks_are_built_from_their_sources():
    expected = nbtools.expected_notebooks()
    assert expected, "no notebook sources found"
    stale = [str(p.relative_to(NOTEBOOKS)) for p, text in expected.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python -m classroom.build`; out of date: {stale}"
    on_disk = {p for lang in nbtools.LANGS for p in (NOTEBOOKS / lang).glob("*.ipynb")}
    assert on_disk == set(expected), "a notebook exists without a source in notebooks/src"


@pytest.mark.parametrize("name", PAIRS)
def test_korean_and_english_have_the_same_cells_and_code(name):
    en = json.loads((NOTEBOOKS / "en" / name).read_text(encoding="utf-8"))
    ko = json.loads((NOTEBOOKS / "ko" / name).read_text(encoding="utf-8"))
    assert [c["cell_type"] for c in en["cells"]] == [c["cell_type"] for c in ko["cells"]]
    for i, (a, b) in enumerate(zip(en["cells"], ko["cells"])):
        if a["cell_type"] == "code":
            assert nbtools.code_without_comments("".join(a["source"])) == \
                nbtools.code_without_comments("".join(b["source"])), f"{name}: code cell {i} differs"
        else:
            assert "".join(a["source"]).strip() and "".join(b["source"]).strip()
    assert en["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("lang", nbtools.LANGS)
@pytest.mark.parametrize("name", PAIRS)
def test_stored_without_outputs_and_opens_on_colab(lang, name):
    nb = json.loads((NOTEBOOKS / lang / name).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    badge, setup = nb["cells"][0], nb["cells"][1]
    assert "colab-badge.svg" in "".join(badge["source"]) and f"notebooks/{lang}/{name}" in "".join(badge["source"])
    setup_src = "".join(setup["source"])
    assert f'REPO_URL = "{REPO_URL}"' in setup_src and '"google.colab" in sys.modules' in setup_src


def test_parity_check_catches_a_code_difference():
    src = "#%% md\nhi\n#%% md-ko\n안녕\n#%% code\nx = 1  # one\n#%% code-ko\nx = 2  # 하나\n"
    with pytest.raises(ValueError, match="changes code"):
        nbtools.parse_source(src)
    ok = nbtools.parse_source(src.replace("x = 2", "x = 1"))
    assert ok[1]["en"] != ok[1]["ko"]  # comments differ, code does not


def test_missing_translation_is_an_error():
    with pytest.raises(ValueError, match="no '#%% md-ko'"):
        nbtools.parse_source("#%% md\nonly english\n#%% code\nx = 1\n")
