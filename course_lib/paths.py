"""Locate the course's offline resources from any working directory.

nbmake runs each notebook inside its own folder, Colab runs from ``/content``, and scripts run from
the repository root, so nothing here relies on the current directory alone. Search order:

1. the ``COURSE_RESOURCE_DIR`` environment variable (a folder holding the resources);
2. ``resource/`` in the current directory or any parent of it;
3. ``resource/`` next to the installed ``course_lib`` package (an editable install of the repo).

Each resource folder holds ``SHA256SUMS.json`` (file name -> SHA-256, written by
``resource/build_resources.py``); ``verify_resource`` checks the files against it before loading, so
damaged bytes raise ``ResourceIntegrityError`` instead of silently giving wrong tokens.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

ENV_VAR = "COURSE_RESOURCE_DIR"
TOKENS_NAME = "fineweb_llama32_128k_tokens"
TOKENIZER_NAME = "llama32_tokenizer"
MANIFEST_NAME = "SHA256SUMS.json"

HOW_TO_GET = (
    "The resources ship inside the course repository under resource/. Clone the whole repository "
    "(git clone <course repository>), or rebuild them with `python resource/build_resources.py`, "
    f"or point the environment variable {ENV_VAR} at a folder that holds {TOKENS_NAME}/ and "
    f"{TOKENIZER_NAME}/."
)


class ResourceNotFoundError(FileNotFoundError):
    """A course resource is missing; the message says how to get it."""


class ResourceIntegrityError(ValueError):
    """A course resource's bytes are damaged or cannot be checked; the message says how to restore them."""


def search_bases() -> list[Path]:
    """Where the course looks for its folders: the current folder, each parent of it, then the folder
    that holds the installed package."""
    cwd = Path.cwd().resolve()
    return [cwd, *cwd.parents, Path(__file__).resolve().parent.parent]


def _candidates() -> list[Path]:
    found = []
    env = os.environ.get(ENV_VAR)
    if env:
        found.append(Path(env).expanduser())
    return found + [base / "resource" for base in search_bases()]


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


def how_to_restore(path: Path) -> str:
    """How to get back a resource file or folder: ``git checkout`` inside the course repository, else a rebuild."""
    path = Path(path).resolve()
    folder = path if path.is_dir() else path.parent
    repo = folder.parent.parent
    relative = path.relative_to(repo).as_posix() if folder.parent.name == "resource" else None
    if relative and (repo / ".git").exists():
        return (
            f"Restore it from the repository root with `git checkout -- {relative}`, "
            "or rebuild the resources with `python resource/build_resources.py`."
        )
    return (
        f"Replace {folder.name}/ with a fresh copy from the course repository (resource/{folder.name}/), "
        f"or rebuild it with `python resource/build_resources.py --out {folder.parent}`."
    )


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file. Size and mtime are part of the cache key, so an edited file is hashed again."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of ``path``, computed once per process for each (path, size, mtime)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def read_manifest(folder: Path) -> dict[str, str]:
    """The ``SHA256SUMS.json`` of a resource folder: file name -> expected SHA-256."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ResourceIntegrityError(
            f"{folder} has no {MANIFEST_NAME}, so its files cannot be checked (it was probably built by an "
            f"older resource/build_resources.py). {how_to_restore(folder)}"
        )
    try:
        return dict(json.loads(manifest.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:
        raise ResourceIntegrityError(f"{manifest} is not valid JSON ({err}). {how_to_restore(manifest)}") from err


def verify_resource(folder: Path) -> list[str]:
    """Check every file listed in ``folder/SHA256SUMS.json``; return their names or raise ``ResourceIntegrityError``."""
    folder = Path(folder)
    expected = read_manifest(folder)
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise ResourceIntegrityError(
                f"{path} is missing (it is listed in {MANIFEST_NAME}). {how_to_restore(path)}"
            )
        found = file_sha256(path)
        if found != digest:
            raise ResourceIntegrityError(
                f"{path} is damaged: its SHA-256 starts with {found[:12]} but {MANIFEST_NAME} expects one "
                f"starting with {digest[:12]}. {how_to_restore(path)}"
            )
    return sorted(expected)
