"""One-way arrow: ``classroom`` (checkers, builder, grader, renderer) imports ``course_lib``; ``course_lib``, which
students read, never imports ``classroom``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "course_lib"
MACHINERY = "classroom"


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` statement names (absolute names; relative ones as '.x')."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def machinery_imports(source: str) -> list[str]:
    return sorted(n for n in imported_modules(source) if n == MACHINERY or n.startswith(MACHINERY + "."))


def test_the_scan_sees_every_form_of_import():
    source = ("import classroom\nfrom classroom.checks import check_adamw\n"
              "def f():\n    import classroom.grade as g\n    importlib.import_module('classroom.build')\n")
    assert machinery_imports(source) == ["classroom", "classroom.build", "classroom.checks", "classroom.grade"]
    assert machinery_imports("import course_lib\nfrom .optim import AdamW\nimport classroomish\n") == []


def test_course_lib_never_imports_the_course_machinery():
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(ROOT)): machinery_imports(f.read_text(encoding="utf-8")) for f in files}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_relative_imports_stay_inside_course_lib():
    """``from ..x import`` in course_lib/capstone may reach course_lib, never above it."""
    for path in LIBRARY.rglob("*.py"):
        depth = len(path.relative_to(LIBRARY).parts) - 1  # 0 for course_lib/x.py, 1 for course_lib/capstone/x.py
        for name in imported_modules(path.read_text(encoding="utf-8")):
            level = len(name) - len(name.lstrip("."))
            assert level <= depth + 1, f"{path.relative_to(ROOT)} imports {name!r}, outside course_lib"


LIBRARY_LINES = 4200  # "about 4,000": the library students read, outside the capstone harness


def test_course_lib_stays_small():
    files = [f for f in LIBRARY.rglob("*.py") if "capstone" not in f.relative_to(LIBRARY).parts]
    lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
    assert lines <= LIBRARY_LINES, (f"course_lib outside capstone/ has {lines} lines (limit {LIBRARY_LINES}): "
                                    "move course machinery to classroom/, or split what is not a lesson")
