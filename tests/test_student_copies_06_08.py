"""Student copies of notebooks 06–08 run up to their first exercise and stop there, with no solution left."""

from __future__ import annotations

import pytest

from .notebook_helpers import NOTEBOOKS, assert_student_copy_stops_at_first_todo


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", ["06_mup", "07_lr_schedules", "08_stability"])
def test_student_copy_stops_at_first_todo(lang, name):
    assert_student_copy_stops_at_first_todo(NOTEBOOKS / lang / f"{name}.ipynb")
