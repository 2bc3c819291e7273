"""Notebook 03's student copies (en and ko) run up to the Lion exercise and stop there."""

import pytest

from .notebook_helpers import NOTEBOOKS, assert_student_copy_stops_at_first_todo


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_student_copy_stops_at_the_lion_todo(lang):
    assert_student_copy_stops_at_first_todo(NOTEBOOKS / lang / "03_lion_and_zoo.ipynb")
