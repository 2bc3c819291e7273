"""Refusing copied answers.

An exercise answered by re-exporting the reference (``from course_lib.optim import AdamW as
AdamWFromScratch``), by subclassing it (``class AdamWFromScratch(torch.optim.AdamW): pass``) or by
calling it from a thin wrapper passes every numeric comparison, because it *is* the reference. Each
checker therefore looks twice before it compares numbers:

- ``refuse_reference(answer, exercise)``: the answer itself, every class it inherits from, and the
  function behind a ``functools.partial`` or a decorator, must not come from the exercise's references
  (``classroom.exercises.EXERCISES[...].references``);
- ``call_student(exercise, what, fn, ...)``: every checker runs the student's code through it. While
  the code runs, a profile hook (``sys.setprofile``) watches which Python functions it enters; entering
  a reference raises ``CopiedAnswerError`` naming the function. ``NotImplementedError`` (an unfinished
  exercise) passes through; any other crash becomes ``StudentCodeError`` naming ``what``.

Code that calls torch's primitives (``torch.sign``, ``addcdiv_``, ``torch.linalg``…) is the student's own:
those are C functions and are never refused; only the listed reference modules and functions are.
``CopiedAnswerError`` is an ``AssertionError``, so a notebook's check cell fails with it, and the
grader flags it by name.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys

from ..exercises import get_exercise
from .i18n import tr


class CopiedAnswerError(AssertionError):
    """The answer is (or calls) the reference implementation instead of the student's own code."""


class StudentCodeError(AssertionError):
    """The student's code crashed (anything but NotImplementedError); a failed check, not an error."""


def _module_location(name: str):
    """(file, folder) of a module: a package gives its folder, a plain module its file."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None, None
    path = getattr(module, "__file__", None)
    if path is None:
        return None, None
    if os.path.basename(path) == "__init__.py":
        return None, os.path.dirname(path) + os.sep
    return path, None


def _code_objects(obj) -> set:
    """The code objects of a function, or of every method of a class (decorators unwrapped)."""
    codes = set()
    members = vars(obj).values() if inspect.isclass(obj) else [obj]
    for member in members:
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        member = inspect.unwrap(member) if callable(member) else member
        code = getattr(member, "__code__", None)
        if code is not None:
            codes.add(code)
    return codes


@functools.cache
def _references(exercise: str):
    """(files, folders, objects, code objects) that count as the reference for ``exercise``."""
    files, folders, objects, codes = set(), set(), [], set()
    for entry in get_exercise(exercise).references:
        module_name, _, attr = entry.partition(":")
        if not attr:
            file, folder = _module_location(module_name)
            if file:
                files.add(file)
            if folder:
                folders.add(folder)
            continue
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        objects.append(obj)
        codes |= _code_objects(obj)
    return frozenset(files), tuple(sorted(folders)), tuple(objects), frozenset(codes)


def _is_reference_code(code, exercise: str) -> bool:
    files, folders, _, codes = _references(exercise)
    return code in codes or code.co_filename in files or code.co_filename.startswith(folders)


def _describe(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


def _refusal(exercise: str, what: str) -> CopiedAnswerError:
    return CopiedAnswerError(tr(
        f"copied answer ({exercise}): {what}. The exercise asks for your own code; re-exporting, subclassing "
        "or calling the reference implementation earns nothing. Calling torch's primitives (torch.sign, "
        "addcdiv_, @, …) is fine.",
        f"복사한 답 ({exercise}): {what}. 이 실습은 여러분이 직접 쓴 코드를 요구합니다. 참조 구현을 다시 "
        "내보내거나, 상속하거나, 호출하면 점수가 없습니다. torch의 기본 연산(torch.sign, addcdiv_, @ 등)을 "
        "쓰는 것은 괜찮습니다."))


def _reference_origin(obj, exercise: str):
    """The reference that ``obj`` is or wraps, or None."""
    _, _, objects, _ = _references(exercise)
    seen = []
    while isinstance(obj, functools.partial):
        obj = obj.func
    if isinstance(obj, (staticmethod, classmethod)) or inspect.ismethod(obj):
        obj = obj.__func__
    candidates = list(inspect.getmro(obj)) if inspect.isclass(obj) else [obj, inspect.unwrap(obj)]
    for candidate in candidates:
        if candidate in seen or candidate is object:
            continue
        seen.append(candidate)
        if any(candidate is ref for ref in objects):
            return candidate
        code = getattr(candidate, "__code__", None)
        if code is not None and _is_reference_code(code, exercise):
            return candidate
        if inspect.isclass(candidate):
            module = sys.modules.get(candidate.__module__)
            path = getattr(module, "__file__", None) or ""
            files, folders, _, _ = _references(exercise)
            if path in files or path.startswith(folders):
                return candidate
    return None


def refuse_reference(answer, exercise: str) -> None:
    """Raise ``CopiedAnswerError`` if ``answer`` (a class or function, or a tuple of them) is, subclasses
    or wraps one of the exercise's references."""
    for item in answer if isinstance(answer, (tuple, list)) else (answer,):
        origin = _reference_origin(item, exercise)
        if origin is None:
            continue
        if origin is item or origin is inspect.unwrap(item):
            what = tr(f"{getattr(item, '__name__', item)!s} is {_describe(origin)} itself",
                      f"{getattr(item, '__name__', item)!s}은(는) {_describe(origin)} 그 자체입니다")
        else:
            what = tr(f"{getattr(item, '__name__', item)!s} is built on {_describe(origin)}",
                      f"{getattr(item, '__name__', item)!s}은(는) {_describe(origin)}을(를) 바탕으로 합니다")
        raise _refusal(exercise, what)


def call_student(exercise: str, what: str, fn, *args, crash_hint: str = "", **kwargs):
    """``fn(*args, **kwargs)``, the way every checker calls student code.

    - entering one of the exercise's references raises ``CopiedAnswerError`` (also when the code then
      crashes: entering a reference and failing is still a copied answer);
    - ``NotImplementedError`` (an unfinished exercise) and ``CopiedAnswerError`` pass through unchanged;
    - any other crash becomes ``StudentCodeError`` naming ``what`` (already in the notebook's language),
      followed by ``crash_hint`` if one is given.
    """
    hits = []

    def profile(frame, event, arg):
        if event == "call" and not hits and _is_reference_code(frame.f_code, exercise):
            hits.append(f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)}, "
                        f"module {frame.f_globals.get('__name__', '?')})")

    _references(exercise)  # resolve (and import) before tracing
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    except BaseException as err:
        sys.setprofile(previous)
        if hits:
            raise _copied_call(exercise, hits[0]) from err
        if isinstance(err, (NotImplementedError, CopiedAnswerError)) or not isinstance(err, Exception):
            raise
        message = tr(f"{what} raised {type(err).__name__}: {err}",
                     f"{what}에서 {type(err).__name__} 예외가 났습니다: {err}")
        raise StudentCodeError(f"{message}. {crash_hint}" if crash_hint else message) from err
    sys.setprofile(previous)
    if hits:
        raise _copied_call(exercise, hits[0])
    return result


def _copied_call(exercise: str, where: str) -> CopiedAnswerError:
    return _refusal(exercise, tr(f"your code calls the reference {where}",
                                 f"여러분의 코드가 참조 구현 {where}을(를) 호출합니다"))
