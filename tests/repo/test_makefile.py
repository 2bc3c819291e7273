"""The Makefile's front door: it refuses a Python older than 3.10 with a message that names the fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def fake_python(tmp_path: Path, version: str) -> Path:
    """An executable that answers the Makefile's version question like Python ``version`` would."""
    path = tmp_path / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def check(python: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "check-python", f"PYTHON={python}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", ["3.9", "3.8", "2.7"])
def test_make_refuses_python_older_than_310(tmp_path, version):
    out = check(str(fake_python(tmp_path, version)))
    assert out.returncode != 0
    assert f"is Python {version}, the course needs 3.10 or newer" in out.stderr and "PYTHON=" in out.stderr


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.13"])
def test_make_accepts_python_310_and_newer(tmp_path, version):
    out = check(str(fake_python(tmp_path, version)))
    assert out.returncode == 0, out.stderr


def test_make_names_a_missing_interpreter(tmp_path):
    out = check(str(tmp_path / "no-such-python"))
    assert out.returncode != 0 and "cannot run" in out.stderr and "PYTHON=" in out.stderr


def test_make_accepts_the_python_running_the_tests():
    assert check(sys.executable).returncode == 0


def test_conda_users_get_what_make_setup_installs():
    """environment.yml installs requirements.txt; everything else `make setup` installs is in the README's
    conda instructions (mup, which must go in with --no-deps)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(STAMP): requirements.txt pyproject.toml")[1].split("\n\n")[0]
    installs = [line.split("pip install", 1)[1].strip() for line in recipe.splitlines() if "pip install" in line]
    assert "-r requirements.txt" in installs and "--no-deps mup" in installs, installs
    assert "- -r requirements.txt" in (ROOT / "environment.yml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    conda_block = readme.split("conda env create -f environment.yml", 1)[1].split("```", 1)[0]
    for extra in installs:
        if extra not in ("-r requirements.txt", "--quiet --upgrade pip"):
            assert f"pip install {extra}" in conda_block, f"README's conda instructions lack `pip install {extra}`"


def test_students_do_not_install_llama_models():
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "llama-models" not in requirements
    assert "llama-models" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert 'resources = ["llama-models"]' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
