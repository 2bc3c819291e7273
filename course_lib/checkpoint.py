"""Resumable training: RNG snapshots and checkpoint files.

A checkpoint holds everything the next step depends on: the weights, the optimizer state (AdamW
moments, Muon momentum buffers), the scheduler's position, the data position (how many global
batches a ``data.SeekableBatchStream`` has handed out), every random-number generator, and the
history recorded so far. Loading it and continuing gives the same numbers, bit for bit on a CPU, as a
run that was never stopped.

Each checkpoint carries a SHA-256 of its content, checked on load, so a damaged file is refused with
one clear ``CheckpointError`` instead of resuming on silently changed weights (see ``payload_digest``).
"""

from __future__ import annotations

import hashlib
import os
import random
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .data import SeekableBatchStream

CHECKPOINT_VERSION = 2  # 2: adds the "sha256" checksum; version 1 had none
PAYLOAD_KEYS = ("version", "step", "model", "optimizer", "scheduler", "data", "rng", "result", "extra")
WHAT_TO_DO = ("Restore the file from a copy if you made one (each save overwrites it: no older checkpoint is "
              "kept), or start the run again without --resume.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed: empty, unreadable, not a course checkpoint, from another
    checkpoint version, or changed after it was written (checksum mismatch). The message names the file."""


def rng_state() -> dict:
    """Every generator a training step can draw from: Python, NumPy, torch CPU and each CUDA device."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def payload_digest(payload: dict) -> str:
    """SHA-256 of a checkpoint's content (every key except ``"sha256"``), as a hex string.

    It covers the *content*, not the file's bytes: a walk over the payload in order feeds each
    container's kind and length, each scalar's type and repr (keys included), and each tensor's
    dtype, shape and raw bytes (viewed as uint8, so bf16 hashes like any dtype). ``save_checkpoint``
    stores it under ``"sha256"`` and ``load_checkpoint`` recomputes it on what ``torch.load``
    returned, so a flipped byte in the weights, the optimizer moments, the RNG or the history is caught
    (torch.load does not check the zip's CRCs). Hashing the file's bytes instead would mean reading
    it twice or wrapping torch's format in a second container. Cost: one pass over every tensor byte,
    about as long as torch.save itself on a CPU; a GPU tensor is copied to the CPU one at a time.
    """
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != "sha256"})
    return digest.hexdigest()


def _feed(digest, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        digest.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        digest.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(f"dict {len(obj)};".encode())
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__} {len(obj)};".encode())
        for value in obj:
            _feed(digest, value)
    else:  # None, bool, int, float, str, torch.dtype...: the type and a length-prefixed repr
        text = f"{type(obj).__name__} {obj!r}".encode("utf-8", "backslashreplace")
        digest.update(f"{len(text)}:".encode() + text)


def save_checkpoint(path, *, model, optimizer, step: int, stream: SeekableBatchStream, result,
                    scheduler=None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), so a crash while writing never
    leaves a half-written file in place of the previous good one. It carries a SHA-256 of its content
    (``payload_digest``), checked by ``load_checkpoint``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "data": stream.state_dict(),
        "rng": rng_state(),
        "result": result.to_dict(),
        "extra": extra or {},
    }
    payload["sha256"] = payload_digest(payload)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` and verify its checksum.

    Always ``weights_only=True``: only tensors and plain data are unpickled, never code from the file.
    A missing file raises ``FileNotFoundError``; any other problem raises one ``CheckpointError``
    that names the file, says what is wrong and what to do (torch's own error text is left out: it
    suggests ``weights_only=False``, which would run whatever code the file holds).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint. {WHAT_TO_DO}")
    with open(path, "rb") as f:  # an unreadable file (permissions) raises its own OSError here
        zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a file refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as e:  # noqa: BLE001 (every way a file can be unreadable gives the same clear message)
        raise CheckpointError(f"{path} is not a readable checkpoint ({_reason(e, zipped)}). {WHAT_TO_DO}") from None
    if not isinstance(ckpt, dict) or type(ckpt.get("version")) is not int:
        raise CheckpointError(f"{path} is not a course checkpoint (a torch file holding {_describe(ckpt)}, not "
                              f"one written by save_checkpoint). {WHAT_TO_DO}")
    version = ckpt["version"]
    if version == 1:
        raise CheckpointError(f"{path} was written by an older version of the course (checkpoint version 1, "
                              f"without a checksum) and cannot be resumed by this one. Start the run again "
                              f"without --resume.")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; this version of the course reads "
                              f"version {CHECKPOINT_VERSION}. Resume it with the course version that wrote it, "
                              f"or start the run again without --resume.")
    missing = [k for k in (*PAYLOAD_KEYS, "sha256") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a course checkpoint (no {', '.join(map(repr, missing))}). "
                              f"{WHAT_TO_DO}")
    if payload_digest(ckpt) != ckpt["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch: the file changed after it was written (damaged on "
                              f"disk or in a copy). {WHAT_TO_DO}")
    del ckpt["sha256"]
    return ckpt


def _reason(error: Exception, zipped: bool) -> str:
    """A few words on why torch.load failed, never torch's advice to retry with weights_only=False."""
    text = str(error)
    if "weights_only" in text or "eights only" in text:
        return "not only tensors and plain data; it is not loaded further, as that could run code from the file"
    what = "a torch zip file, but truncated or damaged" if zipped else "not a file written by torch.save"
    said = text.strip().splitlines()[0].split(". ")[0] if isinstance(error, RuntimeError) and text.strip() else ""
    return f"{what}; torch.load said: {said}" if said and len(said) <= 120 else what  # torch's own words, if short


def _describe(obj) -> str:
    if isinstance(obj, dict):
        keys = list(obj)
        shown = ", ".join(repr(k) for k in keys[:4]) + (", ..." if len(keys) > 4 else "")
        return f"a dict with keys {shown}" if keys else "an empty dict"
    return f"a {type(obj).__name__}"
