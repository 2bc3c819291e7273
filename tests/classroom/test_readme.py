"""classroom.readme refuses a results file it cannot use, naming it, and leaves README.md untouched."""

import pytest

from classroom import readme


@pytest.mark.parametrize("content,message", [
    ("{bad", "not a readable results file"),
    ("[1]", "not a finished study"),
    ('{"complete": false, "cells": {}}', "not a finished study"),
    (None, "missing"),
])
def test_update_readme_refuses_a_results_file_it_cannot_use(tmp_path, monkeypatch, capsys, content, message):
    (tmp_path / "README.md").write_text("# course\n", encoding="utf-8")
    results = tmp_path / "capstone_compact.json"
    if content is not None:
        results.write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        readme.main([str(results)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and str(results) in err
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "# course\n"  # untouched
