"""The two offline resources: tokenizer ids, the 128k-token dataset, provenance, and a byte-identical rebuild."""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.data import load_token_dataset, load_token_resource
from course_lib.paths import TOKENIZER_NAME, TOKENS_NAME, resource_dir
from course_lib.tokenizer import BOS_ID, FULL_VOCAB_SIZE, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_tokenizer_ids(tokenizer):
    assert tokenizer("Hello world")["input_ids"] == [128000, 9906, 1917]
    assert tokenizer("The quick brown fox", add_special_tokens=False)["input_ids"] == [791, 4062, 14198, 39935]
    assert tokenizer("The quick brown fox")["input_ids"] == [128000, 791, 4062, 14198, 39935]
    assert tokenizer.bos_token_id == 128000 and tokenizer.eos_token_id == 128001


def test_tokenizer_has_256_special_tokens(tokenizer):
    assert tokenizer.vocab_size == 128000
    assert len(tokenizer) == FULL_VOCAB_SIZE == 128256
    assert tokenizer.convert_ids_to_tokens(128255) == "<|reserved_special_token_245|>"
    assert tokenizer.convert_ids_to_tokens(128009) == "<|eot_id|>"
    # special tokens are atomic when they appear in text
    assert tokenizer("<|eot_id|>", add_special_tokens=False)["input_ids"] == [128009]


def test_llama_notice_ships_with_tokenizer():
    folder = resource_dir() / TOKENIZER_NAME
    notice = (folder / "NOTICE").read_text(encoding="utf-8")
    assert "Llama 3.2 is licensed under the Llama 3.2 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved." in notice
    assert "Built with Llama" in notice
    assert "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT" in (folder / "LICENSE_LLAMA_3_2.md").read_text(encoding="utf-8")


def test_token_resource_has_exactly_128000_tokens(tokenizer):
    ds = load_token_dataset()
    ids = ds[0]["input_ids"]
    assert len(ids) == 128_000
    assert ids[0] == BOS_ID
    assert tokenizer.decode(ids[1:60]).startswith("How AP reported in all formats from tornado-stricken regions")
    assert max(ids) < FULL_VOCAB_SIZE


def test_document_boundaries_and_source_ids():
    res = load_token_resource()
    assert res.document_starts[0] == 0
    assert res.document_source_ids == list(range(len(res.document_starts)))  # FineWeb stream order
    assert all(int(res.tokens[s]) == BOS_ID for s in res.document_starts)
    assert int((res.tokens == BOS_ID).sum()) == len(res.document_starts)
    info = json.loads((resource_dir() / TOKENS_NAME / "build_info.json").read_text())
    assert info["num_documents"] == len(res.document_starts)
    assert info["num_tokens"] == 128_000


def _docs_path():
    for base in ROOT.parents:
        candidate = base / "shared" / "data" / "fineweb" / "docs.jsonl"
        if candidate.exists():
            return candidate
    return None


def test_first_document_matches_fineweb_text(tokenizer):
    docs = _docs_path()
    if docs is None:
        pytest.skip("shared/data/fineweb/docs.jsonl is not next to the repository")
    first = json.loads(docs.open(encoding="utf-8").readline())
    res = load_token_resource()
    assert tokenizer.decode(res.document(0), skip_special_tokens=True) == first["text"]


def test_rebuild_is_byte_identical(tmp_path):
    docs = _docs_path()
    if docs is None or not _has_llama_models():
        if os.environ.get("CI"):
            pytest.fail("CI must be able to rebuild the resources (needs ../shared and llama-models)")
        pytest.skip("needs shared/data/fineweb/docs.jsonl and the llama-models package")
    subprocess.run([sys.executable, str(ROOT / "resource" / "build_resources.py"), "--out", str(tmp_path),
                    "--docs", str(docs)], check=True, capture_output=True)
    for name in (TOKENIZER_NAME, TOKENS_NAME):
        committed, rebuilt = ROOT / "resource" / name, tmp_path / name
        files = sorted(p.name for p in committed.iterdir())
        assert files == sorted(p.name for p in rebuilt.iterdir())
        match, mismatch, errors = filecmp.cmpfiles(committed, rebuilt, files, shallow=False)
        assert not mismatch and not errors, f"{name}: rebuilt files differ: {mismatch + errors}"


def _has_llama_models():
    try:
        import llama_models  # noqa: F401
    except ImportError:
        return False
    return True
