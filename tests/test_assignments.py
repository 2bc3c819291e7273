"""Student copies: solution blocks become stubs and nothing of them survives."""

import pytest

from course_lib.assignments import build_student_copies, strip_solutions

from .notebook_helpers import NOTEBOOKS, load, solution_lines


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
