"""Korean all the way through: what a notebook prints or draws goes through ``tr(en, ko)``, and Korean
labels draw without tofu on a machine without Korean system fonts (CI, a fresh Colab)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from classroom.build import NOTEBOOKS, parse_source

# One process builds this module's expensive module-scoped fixture once (make test uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("korean_output")

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((NOTEBOOKS / "src").glob("*.txt"))

# Calls whose string arguments a reader sees: printed lines and figure text.
PRINTING = {"print"}
FIGURE_TEXT = {"set_title", "set_xlabel", "set_ylabel", "suptitle", "title", "xlabel", "ylabel", "text",
               "annotate", "set_label", "supxlabel", "supylabel", "Markdown"}
FIGURE_KEYWORDS = {"title", "xlabel", "ylabel", "label", "name"}
# Words that read the same in both languages: names, units, symbols.
NEUTRAL = set("""
AdamW Adam SGD Muon Lion Adafactor Sophia SophiaH SOAP Shampoo LAMB LARS Schedule Free ScheduleFree Nesterov
RMSNorm LayerNorm SwiGLU GQA MHA MoE Llama GPT PaLM FineWeb Newton Schulz Rosenbrock torch optim foreach fused
bf16 fp16 fp32 fp64 fp8 FP8 BF16 FP16 FP32 FP64 TF32 tf32 E4M3 E5M2 e4m3 e5m2 float16 bfloat16 float32 float64
float8 GradScaler MFU FLOP FLOPs TFLOP TFLOPS GiB MiB KiB GB MB KB CPU GPU CUDA MPS H100 H200 A100 T4 WSD
cosine lr LR max min rms RMS std std. log exp inf nan NaN ppl SVD QK QKV MLP LM KV ms GHz dtype mup μP muP
warmup decay SPAM Apollo AdEMAMix MARS Kimi DeepSeek Qwen Keller Jordan
""".split())
WORD = re.compile(r"[A-Za-z][A-Za-z]{2,}")
IDENTIFIER = re.compile(r"[\w.]*[A-Za-z0-9][_.][A-Za-z_][\w.]*")  # num_cycles, torch.optim.AdamW: code, not prose


def _is_tr(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tr"


def _english_words(node: ast.AST) -> list[str]:
    """English words in the literal text of ``node``, skipping anything inside ``tr(...)`` and the code
    inside f-string braces."""
    if _is_tr(node):
        return []
    found = []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        found += [w for w in WORD.findall(IDENTIFIER.sub(" ", node.value)) if w not in NEUTRAL]
    elif isinstance(node, ast.JoinedStr):
        for part in node.values:
            if isinstance(part, ast.Constant):
                found += _english_words(part)
            elif isinstance(part, ast.FormattedValue):  # the expression may itself hold text
                found += _english_words(part.value)
    elif isinstance(node, (ast.BinOp, ast.IfExp, ast.Tuple, ast.List)):
        for child in ast.iter_child_nodes(node):
            found += _english_words(child)
    return found


def untranslated(code: str) -> list[str]:
    """Each printed line or figure text in ``code`` with English words that ``tr`` does not cover."""
    problems = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        args = list(node.args) if name in PRINTING | FIGURE_TEXT else []
        args += [k.value for k in node.keywords if k.arg in FIGURE_KEYWORDS]
        for arg in args:
            words = _english_words(arg)
            if words:
                problems.append(f"line {arg.lineno}: {ast.unparse(arg)[:90]!r} (English: {', '.join(words[:4])})")
    return problems


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem[:2])
def test_printed_lines_and_figure_text_go_through_tr(source):
    cells = parse_source(source.read_text(encoding="utf-8"), source.name)
    problems = []
    for i, cell in enumerate(cells):
        if cell["kind"] == "code":
            problems += [f"cell {i} {p}" for p in untranslated(cell["en"])]
    assert not problems, (f"{source.name}: a reader of the Korean notebook would see English here; wrap the "
                          "text in tr(english, korean):\n" + "\n".join(problems))


LIBRARY_FIGURES = ["course_lib/plots.py", "course_lib/capstone/figures.py"]


@pytest.mark.parametrize("module", LIBRARY_FIGURES)
def test_library_figure_text_goes_through_tr(module):
    problems = untranslated((ROOT / module).read_text(encoding="utf-8"))
    assert not problems, f"{module}: figure text a Korean reader would see in English:\n" + "\n".join(problems)


def test_the_static_check_catches_english_and_accepts_tr():
    assert untranslated('print(f"loss {x:.3f} after {n} steps")')
    assert untranslated('ax.set_xlabel("training step")')
    assert untranslated('plot(x, label="held-out " + name)')
    assert not untranslated('print(tr(f"loss {x:.3f}", f"손실 {x:.3f}"))')
    assert not untranslated('ax.set_title(tr("training step", "학습 스텝"))')
    assert not untranslated('plot(x, label="AdamW")')
    assert not untranslated('plot(x, label=f"num_cycles = {k} | torch.optim.AdamW")')
    assert untranslated('print("see torch.optim.AdamW for the rest")')


GLYPH_PROBE = textwrap.dedent("""
    import warnings, sys
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import font_manager, rcParams
    import matplotlib.pyplot as plt
    from course_lib.i18n import korean_font_file
    from course_lib.plots import use_course_fonts
    use_course_fonts()  # what every notebook that draws calls first
    if sys.argv[1] == "dejavu-only":
        rcParams["font.family"] = ["DejaVu Sans"]
    else:
        found = font_manager.findfont(font_manager.FontProperties(family="NanumGothic"), fallback_to_default=False)
        assert found == str(korean_font_file()), found
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("학습 손실, β₂ = 0.95, θ ← θ − lr·g ≈ 10⁻³")
        ax.set_xlabel("학습 스텝")
        ax.plot([1, 2], label="AdamW 학습률 −1")
        ax.legend()
        fig.savefig(sys.argv[2], dpi=50)
    print("\\n".join(str(w.message) for w in caught))
""")


def test_korean_labels_draw_without_missing_glyphs(tmp_path):
    """On any machine, CJK system fonts or not: with the course's font setup no glyph is missing, and the
    font Hangul comes from is the bundled NanumGothic. The control run (DejaVu Sans alone) shows the probe
    would catch tofu."""
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}  # a fresh font cache, as on a new machine
    def run(mode):
        out = subprocess.run([sys.executable, "-c", GLYPH_PROBE, mode, str(tmp_path / f"{mode}.png")], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout
    assert "missing from font" not in run("course")
    assert "missing from font" in run("dejavu-only")


IMPORT_PROBE = textwrap.dedent("""
    import json, sys
    import matplotlib
    before = {k: str(v) for k, v in matplotlib.rcParams.items()}
    import course_lib, course_lib.data, course_lib.models, course_lib.optim, course_lib.i18n, course_lib.capstone
    after = {k: str(v) for k, v in matplotlib.rcParams.items()}
    print(json.dumps(sorted(k for k in after if after[k] != before.get(k))))
""")


def test_importing_course_lib_changes_no_matplotlib_setting():
    """Fonts are set where figures are drawn (``use_course_fonts``), never as a side effect of an import."""
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [], f"import course_lib changed matplotlib settings: {out.stdout}"


def test_every_notebook_that_draws_sets_the_course_fonts_first():
    """A notebook that imports pyplot calls ``use_course_fonts()`` in the same (first) cell, so Hangul labels
    never come out as boxes, whichever cell a reader runs first after it."""
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        if "import matplotlib.pyplot as plt" not in text:
            continue
        cell = text.split("import matplotlib.pyplot as plt", 1)[1].split("#%%", 1)[0]
        assert "\nuse_course_fonts()" in cell, f"{path.name}: the cell importing pyplot must call use_course_fonts()"


LIVE_NOTEBOOK = "05_fp8.ipynb"  # quick (about 10 s), prints tables and draws figures with labels and legends


@pytest.fixture(scope="module")
def live_runs(tmp_path_factory):
    """Notebook 05 run in quick mode in both languages, each in its own folder, with a fresh matplotlib
    cache (as on a machine that never saw the course): the notebooks with their outputs."""
    import nbformat

    from classroom.render import execute_in_folder

    runs = {}
    for lang in ("en", "ko"):
        path = NOTEBOOKS / lang / LIVE_NOTEBOOK
        nb = nbformat.read(path, as_version=4)
        # the folder decides the language, so COURSE_LANG is removed
        execute_in_folder(nb, path.parent, {"COURSE_QUICK": "1", "COURSE_LANG": None,
                                            "MPLCONFIGDIR": str(tmp_path_factory.mktemp(f"mpl_{lang}"))}, timeout=600)
        runs[lang] = nb
    return runs


def test_korean_notebook_run_prints_korean_without_missing_glyphs(live_runs):
    from ..notebook_helpers import HANGUL, english_sentences, text_outputs

    texts = list(text_outputs(live_runs["ko"]))
    printed = [line for _, kind, t in texts if kind == "stdout" for line in t.splitlines()]
    assert sum(bool(HANGUL.search(line)) for line in printed) >= 3, printed[:10]
    assert not [line for line in printed if english_sentences(line)], printed
    assert not [t for _, _, t in texts if "missing from font" in t], "a figure label drew tofu boxes"
    figures = [o for c in live_runs["ko"].cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert figures, "the notebook drew no figure, so the glyph check saw nothing"


def test_english_notebook_run_prints_no_hangul(live_runs):
    from ..notebook_helpers import HANGUL, text_outputs

    texts = list(text_outputs(live_runs["en"]))
    assert texts and not [t[:120] for _, _, t in texts if HANGUL.search(t)]


def test_pad_counts_hangul_as_two_columns():
    from course_lib.i18n import pad

    assert pad("AdamW", 8) == f"{'AdamW':<8s}"
    assert pad("손실", 6) == "손실  " and pad("학습률 lr", 10) == "학습률 lr "
    assert pad("too long", 3) == "too long"


def test_published_configurations_have_korean_text(monkeypatch):
    from course_lib.published import PUBLISHED_CONFIGS, PUBLISHED_TEXT_KO

    values = {getattr(c, f) for c in PUBLISHED_CONFIGS for f in ("warmup", "schedule", "muon_lr")} - {None}
    assert not values - set(PUBLISHED_TEXT_KO), f"no Korean text for {values - set(PUBLISHED_TEXT_KO)}"
    assert not set(PUBLISHED_TEXT_KO) - values, "Korean text for values no configuration has"
    monkeypatch.setenv("COURSE_LANG", "ko")
    assert PUBLISHED_CONFIGS[0].shown("warmup") == "3.75억 토큰"
    monkeypatch.setenv("COURSE_LANG", "en")
    assert PUBLISHED_CONFIGS[0].shown("warmup") == "375M tokens"
