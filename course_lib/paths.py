"""Locate the course's offline resources from any working directory.

nbmake runs each notebook inside its own folder, Colab runs from ``/content``, and scripts run from
the repository root, so nothing here relies on the current directory alone. Search order:

1. the ``COURSE_RESOURCE_DIR`` environment variable (a folder holding the resources);
2. ``resource/`` in the current directory or any parent of it;
3. ``resource/`` next to the installed ``course_lib`` package (an editable install of the repo).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "COURSE_RESOURCE_DIR"
TOKENS_NAME = "fineweb_llama32_128k_tokens"
TOKENIZER_NAME = "llama32_tokenizer"

HOW_TO_GET = (
    "The resources ship inside the course repository under resource/. Clone the whole repository "
    "(git clone <course repository>), or rebuild them with `python resource/build_resources.py`, "
    f"or point the environment variable {ENV_VAR} at a folder that holds {TOKENS_NAME}/ and "
    f"{TOKENIZER_NAME}/."
)


class ResourceNotFoundError(FileNotFoundError):
    """A course resource is missing; the message says how to get it."""


def _candidates() -> list[Path]:
    found = []
    env = os.environ.get(ENV_VAR)
    if env:
        found.append(Path(env).expanduser())
    cwd = Path.cwd().resolve()
    found += [base / "resource" for base in (cwd, *cwd.parents)]
    found.append(Path(__file__).resolve().parent.parent / "resource")
    return found


def resource_dir() -> Path:
    """The first folder in the search order that holds the token resource."""
    env = os.environ.get(ENV_VAR)
    if env and not (Path(env).expanduser() / TOKENS_NAME).is_dir():
        raise ResourceNotFoundError(
            f"{ENV_VAR}={env} does not contain {TOKENS_NAME}/. {HOW_TO_GET}"
        )
    for candidate in _candidates():
        if (candidate / TOKENS_NAME).is_dir():
            return candidate
    raise ResourceNotFoundError(f"Could not find the course resources ({TOKENS_NAME}/). {HOW_TO_GET}")


def resource_path(name: str) -> Path:
    """Path of one resource (``TOKENS_NAME`` or ``TOKENIZER_NAME``), checked to exist."""
    path = resource_dir() / name
    if not path.exists():
        raise ResourceNotFoundError(f"Resource {name}/ is missing from {path.parent}. {HOW_TO_GET}")
    return path
