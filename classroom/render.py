"""Rendered copies: every notebook, executed in full mode and stored with its outputs under ``rendered/``,
so a reader browsing the repository sees every figure, table and number without running anything.

    python -m classroom.render                 # every notebook, both languages (make render)
    python -m classroom.render 01 07 --lang ko # only these

Each notebook runs in a fresh kernel in its own folder (``notebooks/en`` or ``notebooks/ko``, which picks
the printed language), with ``COURSE_QUICK`` unset, and is written to ``rendered/<lang>/`` as soon as it
finishes, so an interrupted render keeps what it finished. A cell that raises stops that notebook with
its name and cell; nothing stale is written for it. A test fails when a rendered copy's cells differ
from its source notebook's, so a change to a notebook without a new render fails CI.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .build import LANGS, NOTEBOOKS, ROOT

RENDERED = ROOT / "rendered"
MAX_TOTAL_MB = 30.0  # the whole rendered/ folder, both languages
FIGURE_DPI = 80  # the inline backend's figures, stored as PNG: sharp on screen, a few tens of kB each
# What the render changes in the kernel's environment: full mode, the notebook's language (set below),
# and figures at FIGURE_DPI (a matplotlibrc written for the run).
RENDER_ENV = {"COURSE_QUICK": "0"}


def source_notebooks(lang: str, only: list[str] | None = None) -> list[Path]:
    """The course notebooks of one language, optionally only those whose names start with a prefix in ``only``."""
    paths = sorted((NOTEBOOKS / lang).glob("*.ipynb"))
    if only:
        unknown = [p for p in only if not any(path.name.startswith(p) for path in paths)]
        if unknown:
            raise ValueError(f"no notebook in notebooks/{lang} starts with {unknown}; "
                             f"they are {[p.stem for p in paths]}")
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in only)]
    return paths


def rendered_path(source: Path) -> Path:
    return RENDERED / source.parent.name / source.name


def shrink_png(data: str) -> str:
    """Re-encode one base64 PNG with an adaptive palette when that makes it smaller (line plots have few
    colours, so they look the same); Pillow is optional and without it the PNG is kept as it is."""
    try:
        from PIL import Image
    except ImportError:
        return data
    raw = base64.b64decode(data)
    image = Image.open(io.BytesIO(raw))
    if image.mode not in ("RGB", "RGBA"):
        return data
    out = io.BytesIO()
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(raw) else data


def clean_outputs(nb: nbformat.NotebookNode) -> None:
    """Smaller, steadier files: PNGs re-encoded, widgets and per-cell timing metadata dropped, and the
    folder the course was rendered in written as "." (a reader's clone lives elsewhere)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        # A widget (a tqdm progress bar) cannot be shown without its kernel: drop it, not leave "0%|" behind.
        cell["outputs"] = [out for out in cell.get("outputs", [])
                           if "application/vnd.jupyter.widget-view+json" not in out.get("data", {})]
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = out["text"].replace(str(ROOT), ".")
            data = out.get("data", {})
            for mime in ("text/plain", "text/markdown", "text/html"):
                if isinstance(data.get(mime), str):
                    data[mime] = data[mime].replace(str(ROOT), ".")
            if "image/png" in data:
                data["image/png"] = shrink_png(data["image/png"])


def execute_in_folder(nb: nbformat.NotebookNode, folder: Path, env: dict[str, str | None], timeout: int = 3600,
                      record_timing: bool = True) -> None:
    """Run ``nb`` in a fresh kernel started in ``folder``, with this process's environment changed by ``env``
    (a value of None removes the variable) for the kernel to inherit; the environment is restored after."""
    from nbclient import NotebookClient

    saved = dict(os.environ)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=record_timing,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def render_notebook(source: Path, timeout: int = 3600) -> tuple[Path, float]:
    """Execute ``source`` in full mode in its own folder and write the copy with outputs; returns (path, seconds)."""
    nb = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as rc_dir:
        rc_file = Path(rc_dir) / "matplotlibrc"
        rc_file.write_text(f"figure.dpi: {FIGURE_DPI}\n", encoding="utf-8")
        env = {**RENDER_ENV, "COURSE_LANG": source.parent.name, "MATPLOTLIBRC": str(rc_file)}
        execute_in_folder(nb, source.parent, env, timeout=timeout, record_timing=False)
    seconds = time.perf_counter() - started
    clean_outputs(nb)
    nb.metadata.setdefault("course", {})["rendered"] = {"mode": "full", "seconds": round(seconds)}
    out = rendered_path(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out, seconds


def total_mb() -> float:
    return sum(p.stat().st_size for p in RENDERED.rglob("*.ipynb")) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="notebook prefixes such as 01 09 (default: every notebook)")
    parser.add_argument("--lang", choices=LANGS, action="append", help="only this language (repeatable)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    args = parser.parse_args(argv)
    todo = [path for lang in (args.lang or LANGS) for path in source_notebooks(lang, args.only)]
    print(f"rendering {len(todo)} notebooks in full mode into {RENDERED.relative_to(ROOT)}/", flush=True)
    for path in todo:
        out, seconds = render_notebook(path, timeout=args.timeout)
        print(f"{out.relative_to(ROOT)}: {seconds:.0f} s, {out.stat().st_size / 2**20:.2f} MB", flush=True)
    size = total_mb()
    print(f"rendered/ holds {size:.1f} MB (limit {MAX_TOTAL_MB:g} MB)")
    if size > MAX_TOTAL_MB:
        print(f"rendered/ is larger than {MAX_TOTAL_MB:g} MB: lower FIGURE_DPI in classroom/render.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
