"""What the README promises about Python versions: the course imports no standard-library module that Python
3.12 or 3.13 removed (PEP 594, PEP 632), in the library, the machinery, the tests or the notebooks' code."""

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Removed in 3.12 (distutils, imp, asynchat, asyncore, smtpd) and in 3.13 (PEP 594's "dead batteries", lib2to3).
REMOVED = {"distutils", "imp", "asynchat", "asyncore", "smtpd", "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt",
           "imghdr", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau",
           "telnetlib", "uu", "xdrlib", "lib2to3"}


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module ``source`` imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":  # IPython magics and shell lines are not Python
            lines += [ln for ln in "".join(cell["source"]).splitlines() if not ln.lstrip().startswith(("%", "!"))]
            lines.append("")
    return "\n".join(lines)


def test_no_module_that_newer_pythons_removed():
    sources = {p: p.read_text(encoding="utf-8") for d in ("course_lib", "classroom", "tests", "benchmarks", "resource")
               for p in (ROOT / d).rglob("*.py")}
    sources |= {p: notebook_code(p) for p in (ROOT / "notebooks").rglob("*.ipynb")}
    assert len(sources) > 100
    found = {str(p.relative_to(ROOT)): sorted(imported_modules(s) & REMOVED) for p, s in sources.items()}
    assert not {p: m for p, m in found.items() if m}


def test_the_scan_sees_a_removed_module():
    found = imported_modules("import distutils.core\nfrom imp import reload\nimport os") & REMOVED
    assert found == {"distutils", "imp"}
