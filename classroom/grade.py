"""Grade a folder of submitted notebooks: one CSV row and one feedback file per submission.

    python -m classroom.grade submissions/ --out grades.csv
    python -m classroom.grade kim/01_adamw.ipynb lee/01_adamw.ipynb --out grades.csv --timeout 300

For each submission the grader:

1. finds which course notebook it is (notebook metadata ``course.notebook``, else the file name) and its
   language (``course.lang``, else Hangul in its markdown), and loads the *released* notebook of that
   name (``--release``, default: the course's ``notebooks/<lang>/``);
2. locks the checks: every check cell of the release (cell metadata ``course.role == "check"``) is run
   from the release's source, never the student's. A check cell the student edited or deleted is
   still run (for the feedback) but earns nothing, and is flagged. The checker modules are reloaded
   right before each check, so a student cell that monkeypatched a checker changes nothing;
3. runs the notebook headless in a fresh kernel (``COURSE_QUICK=1`` unless ``--full``; ``COURSE_LANG``
   set to its language, so the checkers answer in it), cell by cell, with errors allowed and one time
   limit for the whole notebook (``--timeout``). An infinite loop or a crashed kernel ends that
   submission only: the checks that did not run earn nothing and the row says why;
4. gives each exercise the points in the release's check-cell metadata (``course.points``; an
   instructor re-weights by editing it) when its check passed, and writes the CSV row and the
   feedback file (in the notebook's language, with each checker's hint) at once, so a crash of the
   grader itself never loses the rows already written.

CSV columns: ``submission`` (its path), one column per exercise (points earned; empty when that
exercise is not in the submission's notebook), ``total`` and ``flags``.

Why not nbgrader or otter-grader: see CONTRIBUTING.md ("Grading").
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.i18n import tr

from .exercises import EXERCISES
from .build import LANGS, NOTEBOOKS

HANGUL = re.compile(r"[\uac00-\ud7a3]")
DEFAULT_TIMEOUT = 600
# Reloaded before every check, dependencies first, so a checker a student replaced is restored.
CHECK_MODULES = ("classroom.exercises", "classroom.checks.i18n", "classroom.checks.report",
                 "classroom.checks.originality", "classroom.checks._common", "classroom.checks.adamw",
                 "classroom.checks.newton_schulz", "classroom.checks.muon", "classroom.checks.lion",
                 "classroom.checks.loss_scaler", "classroom.checks.blockwise_quant", "classroom.checks.mup",
                 "classroom.checks.wsd_schedule", "classroom.checks.grad_accumulation", "classroom.checks")
LOCK_PREFIX = ("import importlib as _grader_importlib, sys as _grader_sys\n"
               f"for _grader_name in {CHECK_MODULES!r}:\n"
               "    if _grader_name in _grader_sys.modules:\n"
               "        _grader_importlib.reload(_grader_sys.modules[_grader_name])\n")

STATUS_TEXT = {
    "passed": {"en": "passed", "ko": "통과"},
    "failed": {"en": "the check failed", "ko": "검사 실패"},
    "not attempted": {"en": "not attempted (the stub still raises NotImplementedError)",
                      "ko": "시도하지 않음(스텁이 아직 NotImplementedError를 냅니다)"},
    "copied answer": {"en": "refused: the answer is the reference implementation",
                      "ko": "거부됨: 답이 참조 구현입니다"},
    "error": {"en": "the check cell raised an error", "ko": "검사 셀에서 오류가 났습니다"},
    "not run": {"en": "not run (the notebook stopped before this check)",
                "ko": "실행되지 않음(이 검사 전에 노트북이 멈췄습니다)"},
}
FLAG_TEXT = {
    "edited": {"en": "check cell edited: {0} (the released check was run instead; it earns nothing)",
               "ko": "검사 셀 수정됨: {0} (배포한 검사를 대신 실행했고, 이 실습은 0점입니다)"},
    "deleted": {"en": "check cell deleted: {0} (the released check was run instead; it earns nothing)",
                "ko": "검사 셀 삭제됨: {0} (배포한 검사를 대신 실행했고, 이 실습은 0점입니다)"},
    "copied": {"en": "copied answer: {0}", "ko": "복사한 답: {0}"},
    "timeout": {"en": "time limit of {0} s reached at cell {1}", "ko": "제한 시간 {0}초 초과(셀 {1})"},
    "dead": {"en": "the kernel died at cell {0}", "ko": "셀 {0}에서 커널이 죽었습니다"},
}


@dataclass
class ExerciseResult:
    exercise: str
    points: float
    status: str = "not run"
    intact: bool = True  # the check cell was the released one
    message: str = ""  # the checker's error (with its hint), or its last printed lines

    @property
    def earned(self) -> float:
        return self.points if self.status == "passed" and self.intact else 0.0


@dataclass
class SubmissionResult:
    path: str
    notebook: str | None = None
    lang: str = "en"
    results: list[ExerciseResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.earned for r in self.results)


# ------------------------------------------------------------------------------ reading notebooks


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _course_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("course", {})
    return meta if isinstance(meta, dict) else {}


def identify(nb: dict, path: Path, release_root: Path = NOTEBOOKS) -> tuple[str | None, str]:
    """(notebook stem, language) of a submission; the stem is None if it is no course notebook."""
    meta = nb.get("metadata", {}).get("course", {}) if isinstance(nb.get("metadata"), dict) else {}
    lang = meta.get("lang") if meta.get("lang") in LANGS else None
    if lang is None:
        markdown = " ".join(_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "markdown")
        lang = "ko" if HANGUL.search(markdown) else "en"
    known = sorted(p.stem for p in (release_root / lang).glob("*.ipynb"))
    stem = meta.get("notebook") if meta.get("notebook") in known else None
    if stem is None:  # renamed or metadata stripped: the longest known name the file name contains
        matches = [k for k in known if k in path.stem or path.stem.startswith(k[:3])]
        stem = max(matches, key=len) if matches else None
    return stem, lang


def release_checks(release: dict) -> dict[str, dict]:
    """exercise id -> {"source", "points", "answer_source"} from a released notebook."""
    checks, answers = {}, {}
    for cell in release["cells"]:
        meta = _course_meta(cell)
        if meta.get("role") == "check":
            points = meta.get("points", EXERCISES[meta["exercise"]].points)
            if not isinstance(points, (int, float)) or points < 0:
                raise ValueError(f"release: exercise {meta['exercise']!r} has points {points!r} in its check cell's "
                                 "metadata; give a number ≥ 0")
            checks[meta["exercise"]] = {"source": _source(cell), "points": float(points)}
        elif meta.get("role") == "answer":
            answers[meta["exercise"]] = _source(cell)
    for exercise, check in checks.items():
        check["answer_source"] = answers.get(exercise, "")
    return checks


def locked_notebook(student: dict, checks: dict[str, dict]) -> tuple[list[dict], dict[str, int], list[tuple[str, str]]]:
    """The cells to run: the student's code cells with every check cell replaced by (or, if deleted,
    re-inserted as) the released one. Returns (cells, exercise -> cell index, flags as (kind, exercise))."""
    cells = [dict(cell_type="code", source=_source(c), metadata=c.get("metadata", {}), outputs=[],
                  execution_count=None) for c in student.get("cells", []) if c.get("cell_type") == "code"]
    flags, where = [], {}
    for exercise, check in checks.items():
        released = _normalized(check["source"])
        tagged = [i for i, c in enumerate(cells) if _course_meta(c).get("exercise") == exercise
                  and _course_meta(c).get("role") == "check"]
        same = [i for i, c in enumerate(cells) if _normalized(c["source"]) == released and i not in where.values()]
        if same:
            index = same[0]
        elif tagged:
            index = tagged[0]
            flags.append(("edited", exercise))
        else:  # deleted: put the released check back after the answer (or at the end)
            answer = [i for i, c in enumerate(cells) if _course_meta(c).get("exercise") == exercise
                      and _course_meta(c).get("role") == "answer"]
            index = answer[-1] + 1 if answer else len(cells)
            cells.insert(index, dict(cell_type="code", source="", metadata={}, outputs=[], execution_count=None))
            where = {k: (v + 1 if v >= index else v) for k, v in where.items()}
            flags.append(("deleted", exercise))
        cells[index]["source"] = LOCK_PREFIX + check["source"]
        cells[index]["metadata"] = {"course": {"exercise": exercise, "role": "check"}}
        where[exercise] = index
    return cells, where, flags


# ------------------------------------------------------------------------------ running one submission


def _status(cell) -> tuple[str, str]:
    """(status, message) of an executed check cell."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if cell.get("execution_count") is None and not errors:
        return "not run", ""
    if not errors:
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        return "passed", "\n".join(text.strip().splitlines()[-3:])
    ename, evalue = errors[0].get("ename", ""), errors[0].get("evalue", "")
    status = {"CopiedAnswerError": "copied answer", "NotImplementedError": "not attempted",
              "AssertionError": "failed"}.get(ename, "error")
    return status, f"{ename}: {evalue}"


def run_cells(cells: list[dict], lang: str, timeout: float, quick: bool = True):
    """Execute ``cells`` in a fresh kernel (errors allowed) with one time limit for all of them.
    Returns (executed cells, stop) where stop is None, ("timeout", index) or ("dead", index)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source=c["source"], metadata=c["metadata"]) for c in cells]
    env = dict(os.environ, COURSE_LANG=lang, COURSE_QUICK="1" if quick else "0", MPLBACKEND="Agg")
    stop = None
    with tempfile.TemporaryDirectory(prefix="course-grade-") as workdir:
        client = NotebookClient(nb, timeout=max(1, int(timeout)), kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": workdir}})
        deadline = time.monotonic() + timeout
        try:
            with client.setup_kernel(env=env, cwd=workdir):
                for index, cell in enumerate(nb.cells):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        stop = ("timeout", index)
                        break
                    client.timeout = max(1, int(left))
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        stop = ("timeout", index)
                        break
                    except DeadKernelError:
                        stop = ("dead", index)
                        break
        except DeadKernelError:
            stop = stop or ("dead", 0)
    return nb.cells, stop


def grade_submission(path: Path, release_root: Path = NOTEBOOKS, timeout: float = DEFAULT_TIMEOUT,
                     quick: bool = True) -> SubmissionResult:
    """Grade one notebook file (never raises for a bad submission: problems become flags)."""
    result = SubmissionResult(path=str(path))
    try:
        student = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(student, dict) or not isinstance(student.get("cells"), list):
            raise ValueError("no 'cells' list")
    except (OSError, ValueError) as err:
        result.flags.append(f"unreadable notebook: {err}")
        return result
    result.notebook, result.lang = identify(student, Path(path), release_root)
    if result.notebook is None:
        result.flags.append(tr("not a course notebook (no course metadata, unknown file name)",
                               "코스 노트북이 아닙니다(코스 메타데이터가 없고 파일 이름도 모릅니다)", result.lang))
        return result
    release = json.loads((release_root / result.lang / f"{result.notebook}.ipynb").read_text(encoding="utf-8"))
    checks = release_checks(release)
    result.results = [ExerciseResult(e, c["points"]) for e, c in checks.items()]
    if not checks:
        return result
    cells, where, lock_flags = locked_notebook(student, checks)
    by_id = {r.exercise: r for r in result.results}
    for kind, exercise in lock_flags:
        by_id[exercise].intact = False
        result.flags.append(tr(**FLAG_TEXT[kind], lang=result.lang).format(exercise))
    executed, stop = run_cells(cells, result.lang, timeout, quick)
    for exercise, index in where.items():
        by_id[exercise].status, by_id[exercise].message = _status(executed[index])
        if by_id[exercise].status == "copied answer":
            result.flags.append(tr(**FLAG_TEXT["copied"], lang=result.lang).format(exercise))
    if stop:
        kind, index = stop
        args = (int(timeout), index) if kind == "timeout" else (index,)
        result.flags.append(tr(**FLAG_TEXT[kind], lang=result.lang).format(*args))
    return result


# ------------------------------------------------------------------------------ reports


def feedback_text(result: SubmissionResult) -> str:
    """The feedback for one submission, in its notebook's language."""
    ko = result.lang == "ko"
    lines = [f"# {'채점 결과' if ko else 'Feedback'}: {result.path}", ""]
    if result.notebook:
        lines.append(f"{'노트북' if ko else 'Notebook'}: {result.notebook}")
    max_total = sum(r.points for r in result.results)
    lines += [f"{'총점' if ko else 'Total'}: {result.total:g} / {max_total:g}", ""]
    for r in result.results:
        status = tr(**STATUS_TEXT[r.status], lang=result.lang)
        if r.status == "passed" and not r.intact:
            status += ", 검사 셀이 바뀌어 0점" if ko else ", but the check cell was changed: no points"
        lines.append(f"## {r.exercise}: {r.earned:g} / {r.points:g} — {status}")
        if r.message:
            lines += ["", "```", r.message.strip(), "```"]
        lines.append("")
    if result.flags:
        lines.append("## " + ("확인할 점" if ko else "Flags"))
        lines += [f"- {flag}" for flag in result.flags]
    return "\n".join(lines).rstrip() + "\n"


def exercise_columns(notebooks) -> list[str]:
    """The exercise columns for these notebooks, in course order."""
    wanted = set(notebooks)
    return [e.id for e in EXERCISES.values() if e.notebook in wanted]


def feedback_name(path: Path, base: Path | None) -> str:
    try:
        rel = path.resolve().relative_to(base.resolve()) if base else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return "__".join(rel.with_suffix("").parts) + ".md"


def collect(paths) -> list[Path]:
    """The .ipynb files in ``paths`` (folders searched recursively, checkpoints skipped), sorted."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.exists():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such notebook or folder")
    return found


def grade_all(paths, out: Path, feedback_dir: Path | None = None, release_root: Path = NOTEBOOKS,
              timeout: float = DEFAULT_TIMEOUT, quick: bool = True, jobs: int = 1, log=print) -> list[SubmissionResult]:
    """Grade every submission under ``paths``; write ``out`` (CSV) and one feedback file each, row by row."""
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    release_root = Path(release_root)
    if not any(any((release_root / lang).glob("*.ipynb")) for lang in LANGS):
        raise FileNotFoundError(f"release folder {release_root}: no notebooks under {release_root / 'en'} or "
                                f"{release_root / 'ko'}; pass --release the folder holding en/ and ko/ of the "
                                "notebooks you handed out (default: the course's notebooks/)")
    files = collect(paths)
    if not files:
        raise FileNotFoundError(f"no .ipynb files under {', '.join(map(str, paths))}")
    feedback_dir = feedback_dir or out.with_name(out.stem + "_feedback")
    feedback_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    notebooks = []
    for f in files:
        try:
            notebooks.append(identify(json.loads(f.read_text(encoding="utf-8")), f, release_root)[0])
        except (OSError, ValueError):
            pass
    columns = exercise_columns(notebooks)
    base = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    results = []
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", *columns, "total", "flags"])
        handle.flush()
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(grade_submission, f, release_root, timeout, quick): f for f in files}
            for future in concurrent.futures.as_completed(futures):
                path = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - one broken submission must not stop the others
                    result = SubmissionResult(path=str(path), flags=[f"grader error: {type(err).__name__}: {err}"])
                earned = {r.exercise: f"{r.earned:g}" for r in result.results}
                writer.writerow([str(path), *(earned.get(c, "") for c in columns), f"{result.total:g}",
                                 "; ".join(result.flags)])
                handle.flush()
                (feedback_dir / feedback_name(path, base)).write_text(feedback_text(result), encoding="utf-8")
                log(f"{path}: {result.total:g} / {sum(r.points for r in result.results):g}"
                    + (f" | {'; '.join(result.flags)}" if result.flags else ""))
                results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade submitted course notebooks (CSV + feedback files).")
    parser.add_argument("paths", nargs="+", help="submitted notebooks, or folders searched for *.ipynb")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default grades.csv)")
    parser.add_argument("--feedback", type=Path, default=None,
                        help="folder for one feedback .md per submission (default: <out>_feedback/)")
    parser.add_argument("--release", type=Path, default=NOTEBOOKS,
                        help="folder with the released notebooks (en/, ko/) whose check cells and points count "
                             "(default: the course's notebooks/)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds one notebook may run in all (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--full", action="store_true", help="run in full mode (default: quick mode, same checks)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    args = parser.parse_args(argv)
    try:
        results = grade_all(args.paths, args.out, args.feedback, args.release, args.timeout, not args.full, args.jobs)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(f"graded {len(results)} submission(s): {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
