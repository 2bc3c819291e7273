"""The capstone's results files: one that never loses a finished run, and the committed ones in ``results/``.

An experiment of many runs (the capstone trains a dozen models) writes its JSON after *every* finished
run, atomically (a temporary file, then a rename), so a crash, a Ctrl-C or a full disk later on keeps
everything finished so far. Run the same command again and it continues: runs already in the file
are taken from it, not trained again, as long as the file was written with the same settings.
``results_file`` finds a committed result of the full run (``results/<name>``) for notebooks 02 and 09.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..paths import search_bases


class ResultsMismatchError(ValueError):
    """The results file to continue was written with other settings."""


def jsonable(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(value))


def validate_output_folder(folder: Path) -> Path:
    """Make ``folder`` (and its parents) and prove it is writable, before any training starts; raise
    ValueError naming the path and the fix otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output folder {folder} is an existing file, not a folder; pass another --out "
                         "(a folder, made if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write into the output folder {folder} ({err.strerror or err}); "
                         "pass a folder you can write to with --out") from None
    return folder


class ResultsFile:
    """The experiment's JSON, rewritten after every finished run.

    ``header`` holds the settings (``header["config"]`` must match to continue a file). Runs are stored
    under key paths such as ``("cells", "one_pass_constant", "muon", "seeds", "seed_0")``.
    ``restart=True`` ignores an existing file. With ``path=None`` nothing is written (results stay in memory).
    """

    def __init__(self, path: Path | None, header: dict, *, restart: bool = False, log=print):
        self.path = Path(path) if path is not None else None
        self.data = {**jsonable(header), "complete": False, "finished_runs": 0, "wall_seconds": 0.0}
        self._started = time.perf_counter()
        if self.path is not None and self.path.exists() and not restart:
            previous = self._read_previous()
            if previous["config"] != self.data["config"]:
                changed = sorted(k for k in set(previous["config"]) | set(self.data["config"])
                                 if previous["config"].get(k) != self.data["config"].get(k))
                details = ", ".join(f"{k}: {previous['config'].get(k)!r} in the file, "
                                    f"now {self.data['config'].get(k)!r}" for k in changed[:4])
                raise ResultsMismatchError(
                    f"{self.path} holds results of other settings ({details}); pass --restart to overwrite it, "
                    "or another --out to keep it")
            self.data = {**previous, **{k: v for k, v in self.data.items() if k not in previous}}
            self.data["complete"] = False
            log(f"continuing from {self.path}: {self.data.get('finished_runs', 0)} finished run(s) kept, "
                "only the missing ones are trained")
        self._wall_before = float(self.data.get("wall_seconds", 0.0))

    def _read_previous(self) -> dict:
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ResultsMismatchError(f"{self.path} is not a readable results file ({err}); pass --restart to "
                                       "overwrite it, or another --out") from None
        if not isinstance(previous, dict) or "config" not in previous:
            raise ResultsMismatchError(f"{self.path} is not a results file of this command (no 'config'); pass "
                                       "--restart to overwrite it, or another --out")
        return previous

    def get(self, *keys):
        """The stored run at ``keys`` (a JSON dict), or None if it has not finished yet."""
        node = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def put(self, keys: tuple, record: dict, new_run: bool = True) -> None:
        """Store one finished run and write the file now (``new_run=False``: a run already counted,
        listed under a second key)."""
        node = self.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        counted = new_run and keys[-1] not in node
        node[keys[-1]] = jsonable(record)
        self.data["finished_runs"] = self.data.get("finished_runs", 0) + int(counted)
        self.write()

    def finish(self, **extra) -> dict:
        """Mark the experiment complete (with any summary keys) and write it; returns the data."""
        self.data.update(jsonable(extra))
        self.data["complete"] = True
        self.write()
        return self.data

    def write(self) -> None:
        self.data["wall_seconds"] = self._wall_before + time.perf_counter() - self._started
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


def results_file(name: str) -> Path:
    """A committed result of the course, ``results/<name>``, found like the resources (the current
    folder or a parent of it, then next to the installed package); FileNotFoundError says how to
    make it otherwise."""
    for base in search_bases():
        if (base / "results" / name).is_file():
            return base / "results" / name
    raise FileNotFoundError(f"results/{name} is not in this folder or any parent of it. It ships with the course "
                            "repository (clone it whole), or recompute it from the repository root with "
                            "`make compare` and copy outputs/capstone/ to results/.")
