"""Student copies of notebooks 01 (AdamW) and 02 (Muon) stop at their first exercise, leaking nothing."""

import pytest

from .notebook_helpers import NOTEBOOKS, assert_student_copy_stops_at_first_todo


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", ["01_adamw.ipynb", "02_muon.ipynb"])
def test_student_copy_stops_at_first_todo(lang, name):
    assert_student_copy_stops_at_first_todo(NOTEBOOKS / lang / name)
