"""Student copies: solution blocks become stubs and nothing of them survives."""

import ast
import json
import re

import pytest

from classroom.student_copies import (COLAB_ENV_VAR, TODO_COMMENT, build_student_copies, main, strip_solutions,
                                    student_notebook)
from classroom.exercises import EXERCISES

from ..notebook_helpers import NOTEBOOKS, load, solution_lines


def test_strip_keeps_indentation_and_surroundings():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION\nprint(f)\n"
    assert strip_solutions(src) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(f)\n"
    )


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx\n", "x\n### END SOLUTION\n",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        strip_solutions(bad)


def test_student_copies_of_every_notebook(tmp_path):
    written = build_student_copies(tmp_path)
    sources = sorted((NOTEBOOKS / "en").glob("*.ipynb")) + sorted((NOTEBOOKS / "ko").glob("*.ipynb"))
    assert len(written) == len(sources)
    for src in sources:
        student = (tmp_path / src.parent.name / src.name).read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
        for line in solution_lines(load(src)):
            if len(line) > 12:
                assert line not in student, f"{src.name}: solution line survived: {line}"


HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_stub_names_its_exercise_in_the_notebooks_language(lang):
    seen = set()
    for path in sorted((NOTEBOOKS / lang).glob("*.ipynb")):
        student = student_notebook(load(path))
        for cell in (c for c in student["cells"] if c["cell_type"] == "code"):
            source = "".join(cell["source"])
            stubs = re.findall(r'raise NotImplementedError\((.*)\)', source)
            if not stubs:
                continue
            exercise = cell["metadata"]["course"]["exercise"]
            seen.add(exercise)
            for stub in stubs:
                message = ast.literal_eval(stub)
                assert f"'{exercise}'" in message and EXERCISES[exercise].notebook in message, message
                assert bool(HANGUL.search(message)) == (lang == "ko"), message
            assert TODO_COMMENT[lang] in source
    assert seen == set(EXERCISES)


def test_student_copies_have_no_badge_unless_told_where_they_are_published(tmp_path):
    for path in build_student_copies(tmp_path / "plain"):
        text = path.read_text(encoding="utf-8")
        assert "colab-badge.svg" not in text and "/notebooks/" not in text, path
    base = "https://github.com/example-org/llm-course-2026/blob/main/handout"
    for path in build_student_copies(tmp_path / "badged", colab_base=base):
        nb = json.loads(path.read_text(encoding="utf-8"))
        badge = "".join(nb["cells"][0]["source"])
        lang = path.parent.name
        expected = (f"https://colab.research.google.com/github/example-org/llm-course-2026/blob/main/handout/"
                    f"{lang}/{path.name}")
        assert f"]({expected})" in badge, badge
        assert "/notebooks/" not in json.dumps(nb)


@pytest.mark.parametrize("bad", ["handout/", "http://example.com/x", "https://gitlab.com/a/b/-/tree/main"])
def test_bad_colab_base_is_refused_before_writing(tmp_path, bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad.rstrip("/")))):
        build_student_copies(tmp_path, colab_base=bad)
    assert not any(tmp_path.iterdir())


def test_colab_base_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(COLAB_ENV_VAR, "https://colab.research.google.com/github/o/r/blob/main/student")
    assert main(["--out", str(tmp_path)]) == 0
    nb = json.loads((tmp_path / "ko" / "01_adamw.ipynb").read_text(encoding="utf-8"))
    assert "github/o/r/blob/main/student/ko/01_adamw.ipynb" in "".join(nb["cells"][0]["source"])
    assert "badges open" in capsys.readouterr().out
