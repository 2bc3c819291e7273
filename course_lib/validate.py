"""Checks for values given by a person: a value that cannot be right fails where it is given.

Every message quotes the value, says what is allowed and, where there is one, the fix. Used by the
optimizers, the model config, the schedules, the training loop and the capstone command.
"""

from __future__ import annotations

import difflib
import math
import numbers


def require_number(name: str, value, *, at_least=None, above=None, below=None, at_most=None,
                   integer: bool = False, hint: str = "") -> float | int:
    """Return ``value`` if it is a finite real number (an integer if ``integer``) in the range given
    by the bounds; otherwise raise TypeError (not a number) or ValueError (out of range).

    >>> require_number("lr", 1e-3, at_least=0)
    0.001
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        message = f"{name} must be a number, got {value!r} of type {type(value).__name__}"
        if isinstance(value, str):
            message += f"; write it without quotes (e.g. {name}={value.strip()})" if _parses(value) else ""
        raise TypeError(message)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}{_tail(hint)}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}{_tail(hint)}")
    allowed = _range_text(at_least, above, below, at_most)
    bad = ((at_least is not None and value < at_least) or (above is not None and value <= above)
           or (below is not None and value >= below) or (at_most is not None and value > at_most))
    if bad:
        raise ValueError(f"{name} must be {allowed}, got {value!r}{_tail(hint)}")
    return int(value) if integer else value


def require_bool(name: str, value) -> bool:
    """Return ``value`` if it is True or False (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")
    return value


def reject_unknown(what: str, given, accepted) -> None:
    """Raise TypeError naming every keyword in ``given`` that is not in ``accepted`` (with a guess)."""
    accepted = sorted(set(accepted))
    unknown = [key for key in given if key not in accepted]
    if not unknown:
        return
    guesses = [difflib.get_close_matches(key, accepted, n=1) for key in unknown]
    parts = [f"{key!r}" + (f" (did you mean {g[0]!r}?)" if g else "") for key, g in zip(unknown, guesses)]
    raise TypeError(f"{what} got unknown keyword argument(s) {', '.join(parts)}; accepted: {', '.join(accepted)}")


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tail(hint: str) -> str:
    return f"; {hint}" if hint else ""


def _range_text(at_least, above, below, at_most) -> str:
    low = f"≥ {at_least}" if at_least is not None else (f"> {above}" if above is not None else None)
    high = f"< {below}" if below is not None else (f"≤ {at_most}" if at_most is not None else None)
    if low and high:
        left = "[" if at_least is not None else "("
        right = ")" if below is not None else "]"
        lo = at_least if at_least is not None else above
        hi = below if below is not None else at_most
        return f"in {left}{lo}, {hi}{right}"
    return low or high or "a finite number"
