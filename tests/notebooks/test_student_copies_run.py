"""The student copy of every notebook with an exercise, in English and in Korean, runs up to the notebook's
first exercise and stops there (for instance AdamW in 01, Muon's Newton–Schulz in 02, the Lion exercise in 03),
with NotImplementedError naming that exercise and no line of any solution left in the copy."""

import pytest

from classroom.exercises import EXERCISES

from ..notebook_helpers import NOTEBOOKS, assert_student_copy_stops_at_first_todo

#: file stems of the notebooks that hold at least one exercise (today 01–08)
WITH_EXERCISES = sorted({exercise.notebook for exercise in EXERCISES.values()})


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_student_copy_stops_at_first_todo(lang, name):
    assert_student_copy_stops_at_first_todo(NOTEBOOKS / lang / f"{name}.ipynb")
