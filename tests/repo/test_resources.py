"""The two offline resources: tokenizer ids, the 128k-token dataset, provenance, a byte-identical rebuild,
and the SHA-256 check that turns damaged bytes into a clear error."""

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_lib import paths
from course_lib.data import BOS_ID, FULL_VOCAB_SIZE, load_token_dataset, load_token_resource, load_tokenizer
from course_lib.paths import (
    ENV_VAR,
    MANIFEST_NAME,
    TOKENIZER_NAME,
    TOKENS_NAME,
    ResourceIntegrityError,
    resource_dir,
    verify_resource,
)

ROOT = Path(__file__).resolve().parents[2]


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
    assert ("Llama 3.2 is licensed under the Llama 3.2 Community License, Copyright © Meta Platforms, Inc. "
            "All Rights Reserved.") in notice
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


# --- integrity: every load checks the files against SHA256SUMS.json ---------------------------------

ARROW = "data-00000-of-00001.arrow"


def _copy_resource(name, dest_parent):
    shutil.copytree(resource_dir() / name, dest_parent / name)
    return dest_parent / name


@pytest.fixture
def tokens_copy(tmp_path, monkeypatch):
    """A copy of the token resource in tmp_path, with COURSE_RESOURCE_DIR pointing at it."""
    folder = _copy_resource(TOKENS_NAME, tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    return folder


def _flip_bytes(path, count=50):
    """Invert ``count`` bytes in the middle of the file (inside the token ids); the size stays the same."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_manifests_list_the_data_files():
    for name, files in [
        (TOKENS_NAME, [ARROW, "dataset_info.json", "state.json"]),
        (TOKENIZER_NAME, ["tokenizer.json", "tokenizer_config.json"]),
    ]:
        assert verify_resource(resource_dir() / name) == files


def test_untouched_copy_loads(tokens_copy):
    assert verify_resource(tokens_copy) == [ARROW, "dataset_info.json", "state.json"]
    res = load_token_resource()
    assert res.tokens.numel() == 128_000 and int(res.tokens[0]) == BOS_ID
    assert len(load_token_dataset()[0]["input_ids"]) == 128_000


def test_flipped_bytes_in_arrow_raise(tokens_copy):
    load_token_resource()  # a clean load first, so the file's digest is cached ...
    _flip_bytes(tokens_copy / ARROW)  # ... and the edit must still be noticed
    expected = json.loads((tokens_copy / MANIFEST_NAME).read_text())[ARROW]
    for load in (load_token_resource, load_token_dataset):
        with pytest.raises(ResourceIntegrityError) as info:
            load()
        message = str(info.value)
        assert ARROW in message and expected[:12] in message
        assert "python resource/build_resources.py" in message
    assert isinstance(info.value, ValueError)


def test_truncated_arrow_raises(tokens_copy):
    _truncate(tokens_copy / ARROW)
    with pytest.raises(ResourceIntegrityError, match=rf"{ARROW}.*build_resources\.py"):
        load_token_resource()


def test_unreadable_arrow_is_one_clear_error(tokens_copy):
    """Even when the manifest agrees (say it was regenerated over a damaged file), reading errors name the folder."""
    arrow = tokens_copy / ARROW
    _truncate(arrow)
    manifest = json.loads((tokens_copy / MANIFEST_NAME).read_text())
    manifest[ARROW] = paths.file_sha256(arrow)
    (tokens_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ResourceIntegrityError, match="Could not read the token data") as info:
        load_token_resource()
    assert str(tokens_copy) in str(info.value) and "build_resources.py" in str(info.value)
    assert info.value.__cause__ is not None


def test_corrupted_tokenizer_json_raises(tmp_path, monkeypatch):
    _copy_resource(TOKENS_NAME, tmp_path)
    folder = _copy_resource(TOKENIZER_NAME, tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    _flip_bytes(folder / "tokenizer.json")
    with pytest.raises(ResourceIntegrityError, match=r"tokenizer\.json.*build_resources\.py"):
        load_tokenizer()


def test_missing_manifest_raises(tokens_copy):
    (tokens_copy / MANIFEST_NAME).unlink()
    with pytest.raises(ResourceIntegrityError, match=rf"no {MANIFEST_NAME}.*build_resources\.py"):
        load_token_resource()


def test_missing_listed_file_raises(tokens_copy):
    (tokens_copy / "state.json").unlink()
    with pytest.raises(ResourceIntegrityError, match=r"state\.json is missing"):
        load_token_resource()


def test_inside_a_repository_the_fix_is_git_checkout(tmp_path, monkeypatch):
    repo = tmp_path / "course"
    (repo / ".git").mkdir(parents=True)
    folder = _copy_resource(TOKENS_NAME, repo / "resource")
    monkeypatch.setenv(ENV_VAR, str(repo / "resource"))
    _flip_bytes(folder / ARROW)
    with pytest.raises(ResourceIntegrityError, match=f"git checkout -- resource/{TOKENS_NAME}/{ARROW}"):
        load_token_resource()


def test_token_verification_is_fast_and_cached(tokens_copy):
    times = []
    for _ in range(3):  # the minimum of 3 fresh (uncached) checks, in case the machine is busy
        paths._sha256.cache_clear()
        start = time.perf_counter()
        verify_resource(tokens_copy)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.1, f"verifying the tokens took {min(times):.3f} s"
    hashed = paths._sha256.cache_info().misses
    load_token_resource()
    load_token_resource()
    assert paths._sha256.cache_info().misses == hashed  # repeated loads reuse the digests
