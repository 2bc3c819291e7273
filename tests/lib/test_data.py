"""Data utilities: chunking, splits, vocabulary compaction, seeded loaders, resource lookup errors."""

import pytest
import torch

from course_lib import paths
from course_lib.data import (TokenChunkDataset, VocabMap, batch_stream, load_token_resource, split_at_document,
                             split_tokens)


def test_chunks_match_the_stream():
    tokens = torch.arange(1000)
    ds = TokenChunkDataset(tokens, seq_len=128, vocab_size=1000)
    assert len(ds) == 7
    assert torch.equal(ds[2], torch.arange(256, 384))
    assert torch.equal(ds[-1], torch.arange(768, 896))
    with pytest.raises(IndexError):
        ds[7]


def test_sequence_longer_than_data():
    with pytest.raises(ValueError, match="longer than the data"):
        TokenChunkDataset(torch.arange(100), seq_len=101, vocab_size=100)


def test_token_id_outside_vocabulary_names_the_id():
    tokens = torch.tensor([1, 2, 3, 128000, 5, 6])
    with pytest.raises(ValueError, match=r"token id 128000 at position 3"):
        TokenChunkDataset(tokens, seq_len=2, vocab_size=128000)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        TokenChunkDataset(torch.tensor([-1, 2, 3, 4]), seq_len=2, vocab_size=10)


def test_float_tokens_rejected():
    with pytest.raises(TypeError):
        TokenChunkDataset(torch.rand(100), seq_len=10, vocab_size=10)


def test_split_is_contiguous_tail():
    train, val = split_tokens(torch.arange(1000), 0.1)
    assert torch.equal(train, torch.arange(900)) and torch.equal(val, torch.arange(900, 1000))
    with pytest.raises(ValueError):
        split_tokens(torch.arange(10), 1.0)


def test_vocab_map_round_trip_on_real_data():
    tokens = load_token_resource().tokens
    vm = VocabMap.from_tokens(tokens)
    compact = vm.to_compact(tokens)
    assert int(compact.max()) == vm.size - 1
    assert torch.equal(vm.to_original(compact), tokens)
    with pytest.raises(ValueError, match="never seen"):
        vm.to_compact(torch.tensor([int(tokens.max()) + 1]))


def test_batch_stream_is_seeded_and_changes_order_each_epoch():
    ds = TokenChunkDataset(torch.arange(64), seq_len=4, vocab_size=64)  # 16 sequences, 4 batches per epoch
    a = [b.clone() for _, b in zip(range(8), batch_stream(ds, 4, seed=3))]
    b = [b.clone() for _, b in zip(range(8), batch_stream(ds, 4, seed=3))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a[:4], a[4:]))
    assert sorted(torch.cat(a[:4])[:, 0].tolist()) == list(range(0, 64, 4))  # one epoch = every sequence once


def test_missing_resource_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    with pytest.raises(paths.ResourceNotFoundError, match="build_resources.py"):
        load_token_resource()


def test_resource_found_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert (paths.resource_dir() / paths.TOKENS_NAME).is_dir()


def test_split_at_document_cuts_where_a_document_starts_and_holds_out_at_least_the_fraction():
    tokens = torch.arange(1000)
    train, held_out, documents = split_at_document(tokens, [0, 300, 850, 880, 960], 0.1)
    assert (len(train), len(held_out), documents) == (880, 120, 2)  # 880 is the last start at or before 900
    assert torch.equal(torch.cat([train, held_out]), tokens)
    train, held_out, documents = split_at_document(tokens, [0, 500], 0.3)
    assert (len(train), documents) == (500, 1)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            split_at_document(tokens, [0, 500], fraction)
