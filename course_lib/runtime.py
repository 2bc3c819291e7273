"""Device choice, seeding and the quick mode used by the test suite."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .i18n import LANG_ENV_VAR, notebook_language, tr  # noqa: F401  (notebook_language: re-exported)

QUICK_ENV_VAR = "COURSE_QUICK"


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: notebooks shorten their runs (tests set it; people don't)."""
    return os.environ.get(QUICK_ENV_VAR, "0").strip().lower() not in ("", "0", "false", "no")


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, else Apple MPS, else CPU. ``prefer`` (or ``COURSE_DEVICE``) forces one,
    checked by ``validate_device``."""
    if prefer:
        return validate_device(prefer)
    if os.environ.get("COURSE_DEVICE"):
        return validate_device(os.environ["COURSE_DEVICE"], source="the environment variable COURSE_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return tr(f"cpu ({n} threads)", f"cpu (스레드 {n}개)")
    return device.type


def available_devices() -> list[str]:
    """The devices this machine and this torch build can train on, best first."""
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def validate_device(name, source: str = "the device") -> torch.device:
    """``torch.device(name)`` if this machine has it; otherwise one ValueError saying what was asked,
    what this machine has, and what to pass instead."""
    has = available_devices()
    instead = f"this machine has {', '.join(has)}: pass {' or '.join(has)} instead, or leave it unset to get {has[0]}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{source} {name!r} is not a device name; {instead}") from None
    if device.type == "cuda":
        if torch.version.cuda is None:
            why = f"this torch {torch.__version__} is a CPU-only build (no CUDA support compiled in)"
        elif not torch.cuda.is_available():
            why = "no CUDA GPU is visible to this process"
        elif device.index is not None and device.index >= torch.cuda.device_count():
            why = f"only {torch.cuda.device_count()} GPU(s) are visible"
        else:
            return device
        raise ValueError(f"{source} {name!r} was asked for, but {why}; {instead}")
    if device.type == "mps" and "mps" not in has:
        raise ValueError(f"{source} {name!r} was asked for, but Apple's MPS is not available here; {instead}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{source} {name!r} is a device type the course does not train on; {instead}")
    return device


