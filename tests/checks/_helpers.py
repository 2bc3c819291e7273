"""Helpers shared by the checker tests (tests/checks/test_<exercise id>.py): running a notebook's answer
cell, reading its prose, a student-style Newton–Schulz (used by the Newton–Schulz and Muon tests), the
language check of failure messages, and the reporting of measured tolerances."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import course_lib.stability as st
from classroom.build import NOTEBOOKS, parse_source
from course_lib.i18n import tr
from course_lib.optim import NS_COEFFICIENTS

HANGUL = re.compile("[\uac00-\ud7a3]")
SRC = Path(__file__).resolve().parents[2] / "notebooks" / "src"


def notebook_answer(stem: str, exercise: str, namespace: dict) -> dict:
    """Run the notebook's ``#%% code answer=<exercise>`` cell (the reference solution) in ``namespace``."""
    text = (SRC / f"{stem}.txt").read_text(encoding="utf-8")
    cells = re.split(r"^(#%% .*)$", text, flags=re.M)
    code = next(body for header, body in zip(cells[1::2], cells[2::2])
                if header.strip() == f"#%% code answer={exercise}")
    namespace.setdefault("torch", torch)
    namespace.setdefault("math", math)
    namespace.setdefault("tr", tr)
    exec(compile(code, f"{stem}:{exercise}", "exec"), namespace)  # noqa: S102 - our own notebook source
    return namespace


def notebook_definitions(stem: str, exercise: str) -> dict:
    """The definitions (imports, functions, classes) of a notebook's answer cell for ``exercise``, run in
    a namespace that has what the notebook imported before it (torch, math, F, st); the cell's demo
    lines, which use the notebook's earlier variables, are left out."""
    cells = parse_source((NOTEBOOKS / "src" / f"{stem}.txt").read_text(encoding="utf-8"))
    source = next(c["en"] for c in cells if c.get("exercise") == ("answer", exercise))
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
    namespace = dict(torch=torch, math=math, F=F, st=st, tr=tr)
    exec(compile(tree, f"<notebook {stem}, answer {exercise}>", "exec"), namespace)  # noqa: S102
    return namespace


def notebook_prose(stem: str) -> dict:
    """The markdown of a notebook source per language ({"en": ..., "ko": ...}), whitespace collapsed so
    that re-wrapping the prose does not matter."""
    cells = parse_source((SRC / f"{stem}.txt").read_text(encoding="utf-8"), stem)
    markdown = [c for c in cells if c["kind"] == "markdown"]
    return {lang: " ".join(" ".join(c[lang] or "" for c in markdown).split()) for lang in ("en", "ko")}


def assert_messages_in_both_languages(monkeypatch, check):
    """``check()`` fails with a Korean message under COURSE_LANG=ko and a message without Hangul in English."""
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as ko:
        check()
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as en:
        check()
    assert HANGUL.search(str(ko.value)), str(ko.value)
    assert not HANGUL.search(str(en.value)), str(en.value)
    return en.value, ko.value


def stub(*args, **kwargs):
    raise NotImplementedError()


def make_ns(bug=None, coefficients=NS_COEFFICIENTS, compute=torch.float32, order="grouped"):
    """A student-style Newton–Schulz; ``order``: "grouped" (X ← aX + (bA + cA²)X), "addmm" (torch's fused
    order) or "expanded" (aX + b(AX) + c(A(AX))); ``bug`` names one typical mistake."""

    def ns(G, steps=5):
        a, b, c = coefficients
        if bug == "cubic":
            a, b, c = 1.5, -0.5, 0.0
        X = G.to(compute)
        if bug == "identity":
            return G
        tall = X.shape[0] > X.shape[1]
        if tall:
            X = X.T
        if bug == "max_norm":
            X = X / X.abs().max()
        elif bug == "spectral_norm":
            X = X / torch.linalg.matrix_norm(X.float(), ord=2).to(compute)
        elif bug != "no_norm":
            X = X / (X.norm() + 1e-7)
        n = {"steps_plus_one": steps + 1, "fixed_5": 5, "steps_minus_one": steps - 1}.get(bug, steps)
        for _ in range(n):
            A = X @ X.T
            if order == "addmm":
                X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)
            elif order == "expanded":
                AX = A @ X
                X = a * X + b * AX + c * (A @ AX)
            else:
                X = a * X + (b * A + c * A @ A) @ X
        if tall and bug != "no_transpose_back":
            X = X.T
        return X

    return ns


# ---- measured tolerances

SEEDS = range(20)  # correct variants: the largest value matters, so many seeds
MISTAKE_SEEDS = range(5)  # mistakes are systematic: their smallest value hardly moves with the seed


def report(name, correct, mistake, tol):
    print(f"{name}: correct variants at most {correct:.3g}, closest mistake {mistake:.3g}, tolerance {tol:.3g}")
    assert correct < tol < mistake


def _show(title, correct: dict, mistakes: dict, tol: float):
    print(f"\n{title}: tolerance {tol:g}")
    for label, values in (("correct", correct), ("mistake", mistakes)):
        for name, value in sorted(values.items(), key=lambda kv: kv[1]):
            print(f"  {label:8s} {name:32s} {value:.3e}")


def _assert_between(title, correct: dict, mistakes: dict, tol: float):
    _show(title, correct, mistakes, tol)
    worst = max(correct, key=correct.get)
    closest = min(mistakes, key=mistakes.get)
    assert correct[worst] < tol, f"{title}: correct variant {worst!r} reaches {correct[worst]:.3e} ≥ {tol:g}"
    assert mistakes[closest] > tol, f"{title}: mistake {closest!r} reaches only {mistakes[closest]:.3e} ≤ {tol:g}"
