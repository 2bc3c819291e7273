"""The grader, proven on a folder of synthetic submissions in both languages: the solution earns full
marks, the untouched student copy nothing, and each way a submission can go wrong (a typical mistake, an
edited or deleted check cell, a copied answer, a monkeypatched checker, a crash, an infinite loop) gets
the points and the flag it should."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from classroom.student_copies import student_notebook
from classroom.exercises import EXERCISES
from classroom.grade import feedback_name, grade_all, identify, locked_notebook, release_checks

from ..notebook_helpers import NOTEBOOKS

# One process builds this module's expensive module-scoped fixture once (make test uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("grade")

HANGUL = re.compile(r"[\uac00-\ud7a3]")
TIMEOUT = 45  # seconds per notebook: notebook 01 needs about 10 s in quick mode on 2 busy cores


def _load(lang: str, name: str = "01_adamw") -> dict:
    return json.loads((NOTEBOOKS / lang / f"{name}.ipynb").read_text(encoding="utf-8"))


def _cell_index(nb: dict, exercise: str, role: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("course", {}).get("exercise") == exercise
                and c["metadata"]["course"]["role"] == role)


def _code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}


def _replace_in_answer(nb: dict, old: str, new: str) -> dict:
    nb = json.loads(json.dumps(nb))
    cell = nb["cells"][_cell_index(nb, "adamw", "answer")]
    source = "".join(cell["source"])
    assert old in source
    cell["source"] = source.replace(old, new)
    return nb


def _submissions(lang: str) -> dict[str, dict]:
    """name -> notebook, for one language."""
    solution = _load(lang)
    check = _cell_index(solution, "adamw", "check")
    answer = _cell_index(solution, "adamw", "answer")
    subs = {"solution": solution, "student_copy": student_notebook(solution)}
    # a typical mistake: no bias correction
    subs["no_bias_correction"] = _replace_in_answer(
        solution, "step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)", "step_size = lr")
    edited = json.loads(json.dumps(solution))
    edited["cells"][check]["source"] = "print('all checks passed')\n"
    subs["edited_check"] = edited
    deleted = json.loads(json.dumps(solution))
    del deleted["cells"][check]
    subs["deleted_check"] = deleted
    copied = json.loads(json.dumps(solution))
    copied["cells"][answer] = _code("class AdamWFromScratch(torch.optim.AdamW):\n    pass\n")
    subs["subclass_answer"] = copied
    patched = student_notebook(solution)  # no badge cell: indices differ from the solution's
    monkeypatch = "import classroom.checks.adamw as _m\n_m.check_adamw = lambda *a, **k: None\n"
    patched["cells"].insert(_cell_index(patched, "adamw", "check"), _code(monkeypatch))
    subs["monkeypatched_checker"] = patched
    crash = json.loads(json.dumps(solution))
    crash["cells"].insert(3, _code("import os\nos._exit(1)\n"))
    subs["crash"] = crash
    loop = json.loads(json.dumps(solution))
    loop["cells"].insert(3, _code("while True:\n    pass\n"))
    subs["infinite_loop"] = loop
    return subs


# (adamw points, total, flag fragment or None) for each submission
EXPECTED = {
    "solution": ("4", "4", None),
    "student_copy": ("0", "0", None),
    "no_bias_correction": ("0", "0", None),
    "edited_check": ("0", "0", {"en": "check cell edited: adamw", "ko": "검사 셀 수정됨: adamw"}),
    "deleted_check": ("0", "0", {"en": "check cell deleted: adamw", "ko": "검사 셀 삭제됨: adamw"}),
    "subclass_answer": ("0", "0", {"en": "copied answer: adamw", "ko": "복사한 답: adamw"}),
    "monkeypatched_checker": ("0", "0", None),
    "crash": ("0", "0", {"en": "the kernel died at cell", "ko": "커널이 죽었습니다"}),
    "infinite_loop": ("0", "0", {"en": f"time limit of {TIMEOUT} s", "ko": f"제한 시간 {TIMEOUT}초 초과"}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("submissions")
    for lang in ("en", "ko"):
        for name, nb in _submissions(lang).items():
            path = root / lang / f"01_adamw_{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    # notebook 02, two exercises: Newton–Schulz solved, Muon left as the stub
    nb02 = _load("en", "02_muon")
    half = student_notebook(nb02)
    solved = nb02["cells"][_cell_index(nb02, "newton_schulz", "answer")]
    half["cells"][_cell_index(half, "newton_schulz", "answer")] = json.loads(json.dumps(solved))
    (root / "en" / "02_muon_half.ipynb").write_text(json.dumps(half), encoding="utf-8")
    (root / "en" / "essay.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}), encoding="utf-8")
    (root / "en" / "broken.ipynb").write_text("{not json", encoding="utf-8")
    out = root / "grades.csv"
    results = grade_all([root], out, timeout=TIMEOUT, jobs=2, log=lambda *_: None)
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {Path(r["submission"]).relative_to(root).as_posix(): r for r in csv.DictReader(handle)}
    return root, out, rows, {Path(r.path).relative_to(root).as_posix(): r for r in results}


def test_csv_columns(graded):
    _, out, rows, _ = graded
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == ["submission", "adamw", "newton_schulz", "muon", "total", "flags"]
    assert len(rows) == 2 * len(EXPECTED) + 3
    assert rows["en/essay.ipynb"]["total"] == "0" and "not a course notebook" in rows["en/essay.ipynb"]["flags"]
    assert rows["en/broken.ipynb"]["total"] == "0" and "unreadable notebook" in rows["en/broken.ipynb"]["flags"]


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_submission_gets_its_points_and_flags(graded, lang, name):
    _, _, rows, _ = graded
    row = rows[f"{lang}/01_adamw_{name}.ipynb"]
    points, total, flag = EXPECTED[name]
    assert (row["adamw"], row["total"], row["newton_schulz"], row["muon"]) == (points, total, "", ""), row
    if flag is None:
        assert row["flags"] == "", row
    else:
        assert flag[lang] in row["flags"], row


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_statuses_and_feedback_language(graded, lang):
    root, out, _, results = graded
    status = {name: results[f"{lang}/01_adamw_{name}.ipynb"].results[0].status for name in EXPECTED}
    assert status["solution"] == "passed" and status["deleted_check"] == "passed"  # run, but earns nothing
    assert status["student_copy"] == status["monkeypatched_checker"] == "not attempted"
    assert status["no_bias_correction"] == "failed" and status["subclass_answer"] == "copied answer"
    assert status["crash"] == status["infinite_loop"] == "not run"
    feedback_dir = out.with_name("grades_feedback")
    for name in EXPECTED:
        text = (feedback_dir / f"{lang}__01_adamw_{name}.md").read_text(encoding="utf-8")
        assert bool(HANGUL.search(text)) == (lang == "ko"), (name, text[:300])
    mistake = results[f"{lang}/01_adamw_no_bias_correction.ipynb"].results[0].message
    assert ("편향 보정" if lang == "ko" else "bias correction") in mistake, mistake


def test_two_exercises_in_one_notebook(graded):
    _, _, rows, results = graded
    row = rows["en/02_muon_half.ipynb"]
    assert (row["newton_schulz"], row["muon"], row["adamw"], row["total"]) == ("2", "0", "", "2"), row
    assert [r.status for r in results["en/02_muon_half.ipynb"].results] == ["passed", "not attempted"]


# ------------------------------------------------------------------------------ without a kernel


def test_every_exercise_has_one_answer_and_one_check_cell_per_language():
    for exercise in EXERCISES.values():
        for lang in ("en", "ko"):
            nb = _load(lang, exercise.notebook)
            roles = [c["metadata"]["course"]["role"] for c in nb["cells"]
                     if c["metadata"].get("course", {}).get("exercise") == exercise.id]
            assert roles == ["answer", "check"], (exercise.id, lang, roles)
            assert release_checks(nb)[exercise.id]["points"] == exercise.points
            assert nb["metadata"]["course"] == {"notebook": exercise.notebook, "lang": lang}
    assert [e.id for e in EXERCISES.values() if e.notebook == "02_muon"] == ["newton_schulz", "muon"]


def test_points_come_from_the_release_metadata():
    nb = _load("en")
    nb["cells"][_cell_index(nb, "adamw", "check")]["metadata"]["course"]["points"] = 10
    assert release_checks(nb)["adamw"]["points"] == 10.0
    nb["cells"][_cell_index(nb, "adamw", "check")]["metadata"]["course"]["points"] = "ten"
    with pytest.raises(ValueError, match="'ten'"):
        release_checks(nb)


def test_locked_notebook_restores_the_released_check():
    release = _load("en")
    checks = release_checks(release)
    edited = json.loads(json.dumps(release))
    edited["cells"][_cell_index(release, "adamw", "check")]["source"] = "pass\n"
    cells, where, flags = locked_notebook(edited, checks)
    assert flags == [("edited", "adamw")]
    assert cells[where["adamw"]]["source"].endswith(checks["adamw"]["source"])
    untouched, _, flags = locked_notebook(release, checks)
    assert flags == []


def test_identify_by_metadata_then_name(tmp_path):
    nb = _load("ko")
    assert identify(nb, tmp_path / "anything.ipynb") == ("01_adamw", "ko")
    del nb["metadata"]["course"]
    assert identify(nb, tmp_path / "01_adamw (1).ipynb") == ("01_adamw", "ko")
    assert identify({"cells": [], "metadata": {}}, tmp_path / "essay.ipynb") == (None, "en")
    assert feedback_name(tmp_path / "a" / "b.ipynb", tmp_path) == "a__b.md"


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such"):
        grade_all([tmp_path / "no-such"], tmp_path / "g.csv")
    (tmp_path / "x.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="timeout"):
        grade_all([tmp_path], tmp_path / "g.csv", timeout=0)
    with pytest.raises(ValueError, match="jobs"):
        grade_all([tmp_path], tmp_path / "g.csv", jobs=0)
    with pytest.raises(FileNotFoundError, match="release folder .*no-release"):
        grade_all([tmp_path], tmp_path / "g.csv", release_root=tmp_path / "no-release")
