"""Where the lecture notes the course grew from are wrong, the notebook says so in a correction box,
in both languages, with a primary source a reader can open: every box, the errors the course must name,
the boxes of particular notebooks (their number, the sources they cite, what 08's z-loss box says)."""

import re

import pytest

from classroom import build as nbtools

from ..notebook_helpers import NOTEBOOKS, SRC, flat, markdown

EN_BOX, KO_BOX = "> **Correction.**", "> **바로잡기.**"
SOURCE = re.compile(r"arXiv|https?://|github\.com|doi\.org", re.IGNORECASE)
CORRECTION_EN = re.compile(r'^> \*\*Correction\.\*\* The lecture notes this course grew from say "[^"]+"', re.M)
CORRECTION_KO = re.compile(r'^> \*\*바로잡기\.\*\* 이 코스의 바탕이 된 강의 노트에는 ', re.M)

#: what the issue asked to be named, with the notebook it belongs in and a word every such box contains
REQUIRED = {
    "Muon's authors (not Kosson et al.)": ("02", "Kosson"),
    "Muon's '48 % of FLOPs'": ("02", "48"),
    "'Muon is for 7B+ models'": ("02", "7B"),
    "Lion's update order": ("03", "Lion"),
    "Sophia's 2x": ("03", "Sophia"),
    "SOAP's speed-up": ("03", "SOAP"),
    "FP8 master weights (DeepSeek-V3)": ("0", "DeepSeek-V3"),
    "μP's attention scaling": ("06", "1/m²"),
    "z-loss (PaLM vs ST-MoE)": ("08", "z-loss"),
}


def correction_boxes() -> list[tuple[str, str, str]]:
    """(notebook source name, English box, Korean box) for every correction box."""
    boxes = []
    for src in sorted((NOTEBOOKS / "src").glob("*.txt")):
        for cell in nbtools.parse_source(src.read_text(encoding="utf-8"), src.name):
            if cell["kind"] == "markdown" and EN_BOX in cell["en"]:
                boxes.append((src.name, cell["en"], cell["ko"]))
    return boxes


def test_every_box_is_in_both_languages_and_cites_a_source():
    boxes = correction_boxes()
    assert boxes
    for name, en, ko in boxes:
        assert en.count(EN_BOX) == ko.count(KO_BOX), f"{name}: a correction box without its Korean twin:\n{en[:200]}"
        for box in en.split(EN_BOX)[1:]:
            assert SOURCE.search(box.split("\n\n")[0]), f"{name}: a correction box cites no source:\n{box[:300]}"


@pytest.mark.parametrize("topic", sorted(REQUIRED))
def test_the_notes_errors_are_named(topic):
    prefix, word = REQUIRED[topic]
    assert any(name.startswith(prefix) and word in en for name, en, _ in correction_boxes()), \
        f"no correction box about {topic} (a '{EN_BOX}' box containing {word!r} in notebook {prefix}*)"


@pytest.mark.parametrize("name, count", [("04_mixed_precision.txt", 1), ("05_fp8.txt", 1), ("06_mup.txt", 1)])
def test_one_correction_box_in_each_language(name, count):
    text = (SRC / name).read_text(encoding="utf-8")
    assert len(CORRECTION_EN.findall(text)) == count and len(CORRECTION_KO.findall(text)) == count


@pytest.mark.parametrize("name,needles", [
    ("08_stability", ["arXiv:2202.08906", "arXiv:2204.02311"]),
    ("10_scaling_up", ["arXiv:2307.09288"]),
])
def test_correction_box_names_its_sources_in_both_languages(name, needles):
    en = [t for t in markdown(name, "en")
          if t.startswith('> **Correction.** The lecture notes this course grew from say "')]
    ko = [t for t in markdown(name, "ko") if t.startswith('> **바로잡기.** 이 코스의 바탕이 된 강의 노트에는 "')]
    assert len(en) == len(ko) == 1
    for needle in needles:
        assert needle in en[0] and needle in ko[0]
    assert "In fact" in en[0] and "실제로는" in ko[0] and '라고 적혀 있습니다' in ko[0]


def test_08_z_loss_box_says_which_loss_is_implemented():
    box = flat(next(t for t in markdown("08_stability", "en") if t.startswith("> **Correction.**")))
    assert "router* z-loss of ST-MoE" in box and "This notebook implements PaLM's" in box
    assert "squares each token's log-sum-exp over the experts and then averages" in box
