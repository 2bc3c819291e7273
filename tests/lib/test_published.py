"""course_lib.published: the table of published configurations matches its sources' numbers, every row
cites a source a reader can open, bad rows are refused, and ``load_published_configs`` names the file of a
malformed table."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

import course_lib.published
from course_lib.published import (DATA_FILE, PUBLISHED_CONFIGS, PUBLISHED_TEXT_KO, PublishedConfig,
                                  load_published_configs, published_configs, published_peak_lr)


@pytest.mark.parametrize("model,lr", [
    ("GPT-3 Small", 6.0e-4), ("GPT-3 XL", 2.0e-4), ("GPT-3", 0.6e-4),  # arXiv:2005.14165, Table 2.1
    ("Llama 2 7B", 3.0e-4), ("Llama 2 13B", 3.0e-4), ("Llama 2 34B", 1.5e-4), ("Llama 2 70B", 1.5e-4),  # Table 1
    ("Llama 3 8B", 3e-4), ("Llama 3 70B", 1.5e-4),  # arXiv:2407.21783, Table 3
])
def test_published_peak_learning_rates(model, lr):
    assert published_peak_lr(model) == lr


def test_published_recipes_of_gpt3_and_llama2():
    for config in PUBLISHED_CONFIGS:
        if config.model.startswith(("GPT-3", "Llama 2")):
            assert (config.beta2, config.weight_decay) == (0.95, 0.1), config.model
            assert "10%" in config.schedule and config.muon_lr.startswith("n/a")
    assert {c.warmup for c in PUBLISHED_CONFIGS if c.model.startswith("Llama 2")} == {"2,000 steps"}
    assert {c.warmup for c in PUBLISHED_CONFIGS if c.model.startswith("GPT-3")} == {"375M tokens"}


def test_muon_rows_say_how_the_muon_lr_is_set():
    moonlight = next(c for c in PUBLISHED_CONFIGS if c.model.startswith("Moonlight"))
    speedrun = next(c for c in PUBLISHED_CONFIGS if "speedrun" in c.model)
    assert "0.2·√max(A, B)" in moonlight.muon_lr and "arXiv:2502.16982" in moonlight.source
    assert speedrun.muon_lr.startswith("0.05") and "KellerJordan/modded-nanogpt" in speedrun.source
    minicpm = next(c for c in PUBLISHED_CONFIGS if c.model.startswith("MiniCPM"))
    assert "exponential" in minicpm.schedule and "arXiv:2404.06395" in minicpm.source


def test_every_row_has_a_source_a_reader_can_open():
    assert len({c.model for c in PUBLISHED_CONFIGS}) == len(PUBLISHED_CONFIGS)
    for config in PUBLISHED_CONFIGS:
        assert re.search(r"arXiv:\d{4}\.\d{5}|github\.com/\w", config.source), config


def test_published_configs_sorted_and_filtered():
    rows = published_configs()
    assert [c.params for c in rows] == sorted(c.params for c in PUBLISHED_CONFIGS)
    assert all(c.params <= 1.3e9 for c in published_configs(max_params=1.3e9))
    with pytest.raises(ValueError, match="max_params"):
        published_configs(max_params=0)


def test_published_config_rejects_bad_rows():
    good = PUBLISHED_CONFIGS[0]
    with pytest.raises(ValueError, match="source"):
        replace(good, source="the lecture notes")
    with pytest.raises(ValueError, match="peak_lr"):
        replace(good, peak_lr=3.0)
    with pytest.raises(ValueError, match="beta2"):
        replace(good, beta2=1.0)
    with pytest.raises(ValueError, match="params"):
        PublishedConfig("x", 0, None, None, None, None, None, None, "arXiv:2005.14165")
    with pytest.raises(ValueError, match="no published configuration named 'GPT-5'"):
        published_peak_lr("GPT-5")
    with pytest.raises(ValueError, match="no single peak"):
        published_peak_lr("MiniCPM-2.4B")


def test_notes_learning_rates_disagree_with_llama2_as_the_box_says():
    notes = {"7B": 3e-4, "13B": 1e-4, "70B": 3e-5}  # the lecture notes' list
    assert published_peak_lr("Llama 2 7B") == notes["7B"]
    assert round(published_peak_lr("Llama 2 13B") / notes["13B"]) == 3
    assert round(published_peak_lr("Llama 2 70B") / notes["70B"]) == 5


def _table_with(tmp_path, change) -> Path:
    """A copy of the shipped published_configs.json, changed by ``change(data)``, in tmp_path."""
    data = json.loads(Path(course_lib.published.__file__).with_name(DATA_FILE).read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "configs.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_an_unchanged_copy_of_the_table_loads_as_the_shipped_one(tmp_path):
    assert load_published_configs(_table_with(tmp_path, lambda data: None)) == (PUBLISHED_CONFIGS, PUBLISHED_TEXT_KO)


def test_load_published_configs_names_the_file_of_malformed_json(tmp_path):
    path = tmp_path / "configs.json"
    path.write_text('{"configs": [{"model": "GPT-3"', encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path} is not valid JSON")):
        load_published_configs(path)


@pytest.mark.parametrize("field,value,message", [
    ("params", "7B", "params must be a finite number, got '7B'"),
    ("peak_lr", True, "peak_lr must be a finite number or null, got True"),
    ("warmup", 2000, "warmup must be a non-empty string or null, got 2000"),
], ids=["params", "peak_lr", "warmup"])
def test_load_published_configs_names_the_file_and_row_of_a_wrong_type(tmp_path, field, value, message):
    def change(data):
        data["configs"][1][field] = value

    path = _table_with(tmp_path, change)
    with pytest.raises(ValueError, match=re.escape(f"{path}, configs[1]: {message}")):
        load_published_configs(path)
