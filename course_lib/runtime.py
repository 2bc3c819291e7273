"""Device choice, seeding and the quick mode used by the test suite."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

QUICK_ENV_VAR = "COURSE_QUICK"


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: notebooks shorten their runs (tests set it; people don't)."""
    return os.environ.get(QUICK_ENV_VAR, "0").strip().lower() not in ("", "0", "false", "no")


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, else Apple MPS, else CPU. ``prefer`` (or ``COURSE_DEVICE``) forces one."""
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
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
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
