"""Resumable training: a batch stream that can seek, RNG snapshots, and checkpoint files.

A checkpoint holds everything the next step depends on: the weights, the optimizer state (AdamW
moments, Muon momentum buffers), the scheduler's position, the data position (how many global
batches have been drawn), every random-number generator, and the history recorded so far. Loading
it and continuing gives the same numbers, bit for bit on a CPU, as a run that was never stopped
(tests/test_checkpoint.py).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_VERSION = 1


class SeekableBatchStream:
    """Endless batches, identical to ``data.batch_stream(dataset, batch_size, seed)``, that can start
    at any position in O(1).

    Epoch ``e`` is a permutation drawn the way ``make_loader(..., seed + e)`` draws it (a
    DataLoader first takes one number from its generator for worker seeds, then the RandomSampler
    draws ``randperm``); the incomplete last batch of each epoch is dropped. ``position`` counts the
    batches handed out so far: save it, and ``SeekableBatchStream(..., position=saved)`` carries on.
    """

    def __init__(self, dataset, batch_size: int, seed: int, position: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if len(dataset) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the dataset ({len(dataset)} sequences)")
        if position < 0:
            raise ValueError(f"position must be ≥ 0, got {position}")
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.batches_per_epoch = len(dataset) // self.batch_size
        self.position = int(position)
        self._epoch, self._perm = None, None

    @property
    def epoch(self) -> int:
        """The epoch the next batch comes from."""
        return self.position // self.batches_per_epoch

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # DataLoader's worker base seed
        return torch.randperm(len(self.dataset), generator=generator)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        epoch, index = divmod(self.position, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, self.epoch_permutation(epoch)
        rows = self._perm[index * self.batch_size : (index + 1) * self.batch_size].tolist()
        self.position += 1
        return torch.stack([self.dataset[i] for i in rows])

    def state_dict(self) -> dict:
        return {"position": self.position, "epoch": self.epoch, "batch_size": self.batch_size, "seed": self.seed,
                "batches_per_epoch": self.batches_per_epoch}


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


def save_checkpoint(path, *, model, optimizer, step: int, stream: SeekableBatchStream, result,
                    scheduler=None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), so a crash while writing never
    leaves a half-written file in place of the previous good one."""
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
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (``weights_only``: no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {ckpt.get('version')!r}, expected {CHECKPOINT_VERSION}")
    return ckpt
