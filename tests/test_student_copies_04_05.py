"""Student copies of notebooks 04 and 05 run up to the first exercise and stop there, with no solution left."""

from __future__ import annotations

import pytest

from tests.notebook_helpers import NOTEBOOKS, assert_student_copy_stops_at_first_todo


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", ["04_mixed_precision.ipynb", "05_fp8.ipynb"])
def test_student_copy_stops_at_first_todo(lang, name):
    assert_student_copy_stops_at_first_todo(NOTEBOOKS / lang / name)
