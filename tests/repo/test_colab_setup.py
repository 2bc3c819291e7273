"""The Colab setup cell installs the course next to what Colab already has: it must not replace Colab's
torch (a GPU build the course cannot reinstall) or any package Colab has already imported, whose upgrade
makes Colab ask for a runtime restart.

The test makes a fresh virtual environment that already "has" Colab's versions (installed-package records
only, no code), runs the setup cell's own pip command there with ``--dry-run --report``, and reads what
pip would install."""

import ast
import json
import subprocess
import venv
from pathlib import Path

import pytest

from classroom.build import SETUP_CODE

ROOT = Path(__file__).resolve().parents[2]
# Colab's versions of the packages the course depends on (its published package list, August 2026).
COLAB = {"torch": "2.11.0", "numpy": "2.1.3", "matplotlib": "3.10.0", "transformers": "5.15.0", "datasets": "4.0.0"}


def setup_cell_pip_args() -> list[str]:
    """The arguments the setup cell passes to pip (after ``-m pip``), read from its code."""
    for node in ast.walk(ast.parse(SETUP_CODE)):
        if isinstance(node, ast.List) and all(isinstance(e, (ast.Constant, ast.Attribute)) for e in node.elts):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if values[1:3] == ["-m", "pip"]:
                return values[3:]
    raise AssertionError("the setup cell runs no `python -m pip ...` command")


def fake_installed(site_packages: Path, name: str, version: str) -> None:
    """An installed-package record, as pip sees one: a .dist-info folder with METADATA (no code)."""
    info = site_packages / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


def test_the_setup_cell_keeps_colabs_torch_and_imported_packages(tmp_path):
    args = setup_cell_pip_args()
    assert args[:1] == ["install"] and "/content/course" in args and "--upgrade" not in args and "-U" not in args
    env_dir = tmp_path / "colab"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version in COLAB.items():
        fake_installed(site, name, version)
    report = tmp_path / "report.json"
    cmd = [python, "-m", "pip", *[str(ROOT) if a == "/content/course" else a for a in args],
           "--dry-run", "--report", str(report), "--disable-pip-version-check"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and any(s in done.stderr for s in ("NewConnectionError", "Network is unreachable",
                                                               "Temporary failure in name resolution")):
        pytest.skip("the package index is unreachable from this machine")
    assert done.returncode == 0, done.stderr[-3000:]
    installs = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert "course-lib" in installs, installs
    replaced = {name: installs[name] for name in COLAB if name in installs}
    assert not replaced, f"the setup cell would replace Colab's {replaced} (Colab has {COLAB})"
    # ... and the check can see a replacement: a requirement above Colab's numpy shows up as one.
    teeth = subprocess.run([python, "-m", "pip", "install", "-q", "numpy>2.1.3", "--dry-run", "--report",
                            str(report), "--disable-pip-version-check"], capture_output=True, text=True, timeout=600)
    assert teeth.returncode == 0, teeth.stderr[-2000:]
    assert "numpy" in {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
