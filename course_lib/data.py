"""Token data: the Llama 3.2 tokenizer, the FineWeb token resource, sequences, splits, vocabulary
compaction, and batches (shuffled by seed, resumable at any position, or random windows).

Both resources load offline from ``resource/`` and are checked against their ``SHA256SUMS.json`` first.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .paths import TOKENIZER_NAME, TOKENS_NAME, ResourceIntegrityError, how_to_restore, resource_path, verify_resource

BOS_ID = 128000  # <|begin_of_text|>: starts every encoded text and every document of the resource
FULL_VOCAB_SIZE = 128256  # 128,000 BPE tokens + 256 special tokens


def load_tokenizer():
    """``AutoTokenizer`` for Llama 3.2, from the course's files in ``resource/llama32_tokenizer`` (no hub
    access needed).

    Note: ``tokenizer.vocab_size`` is 128,000 (BPE tokens only) while ``len(tokenizer)`` is 128,256;
    size an embedding with ``len(tokenizer)`` so the special ids fit. The files are checked against
    ``SHA256SUMS.json`` first (``ResourceIntegrityError`` if damaged).
    """
    from transformers import AutoTokenizer

    folder = resource_path(TOKENIZER_NAME)
    verify_resource(folder)
    return AutoTokenizer.from_pretrained(str(folder))


@dataclass
class TokenResource:
    """The flat token stream plus where each FineWeb document starts in it."""

    tokens: torch.Tensor  # int64, shape (N,)
    document_starts: list[int]
    document_source_ids: list[int]

    def document(self, i: int) -> torch.Tensor:
        """Tokens of the i-th document (the last one may be cut short)."""
        end = self.document_starts[i + 1] if i + 1 < len(self.document_starts) else len(self.tokens)
        return self.tokens[self.document_starts[i] : end]


@contextmanager
def _reading_arrow(folder: Path):
    """Turn any error while reading the Arrow data into one ``ResourceIntegrityError`` naming the folder."""
    try:
        yield
    except Exception as err:
        raise ResourceIntegrityError(
            f"Could not read the token data in {folder} ({type(err).__name__}: {err}). {how_to_restore(folder)}"
        ) from err


def load_token_dataset():
    """The Arrow dataset exactly as stored (checked against ``SHA256SUMS.json`` first):
    ``ds[0]["input_ids"]`` is the flat token list."""
    from datasets import load_from_disk

    folder = resource_path(TOKENS_NAME)
    verify_resource(folder)
    with _reading_arrow(folder):
        return load_from_disk(str(folder))


def load_token_resource() -> TokenResource:
    dataset = load_token_dataset()
    with _reading_arrow(resource_path(TOKENS_NAME)):
        row = dataset.with_format("numpy")[0]
        return TokenResource(
            tokens=torch.from_numpy(row["input_ids"].astype("int64")),
            document_starts=row["document_starts"].tolist(),
            document_source_ids=row["document_source_ids"].tolist(),
        )


def validate_token_ids(tokens: torch.Tensor, vocab_size: int) -> None:
    """Raise ValueError naming the first id that is negative or ≥ ``vocab_size``."""
    if tokens.numel() == 0:
        return
    flat = tokens.reshape(-1)
    bad = (flat < 0) | (flat >= vocab_size)
    if bool(bad.any()):
        pos = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"token id {int(flat[pos])} at position {pos} is outside the vocabulary "
            f"[0, {vocab_size}); size the model with a vocabulary that covers every id in the data "
            f"(for Llama 3.2 use len(tokenizer) = 128256, not tokenizer.vocab_size = 128000)"
        )


class TokenChunkDataset(Dataset):
    """Cut a flat token stream into non-overlapping sequences of ``seq_len`` tokens.

    The tail that does not fill a whole sequence is dropped. Each item is a LongTensor of shape
    ``(seq_len,)``; the model shifts labels itself, so inputs and labels are the same tensor.
    """

    def __init__(self, tokens: torch.Tensor, seq_len: int, vocab_size: int):
        tokens = torch.as_tensor(tokens)
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        tokens = tokens.reshape(-1).long()
        if int(seq_len) != seq_len or seq_len < 2:
            raise ValueError(f"seq_len must be an integer ≥ 2, got {seq_len!r}")
        if seq_len > tokens.numel():
            raise ValueError(
                f"seq_len={seq_len} is longer than the data ({tokens.numel():,} tokens); "
                "use a shorter sequence length or more data"
            )
        validate_token_ids(tokens, vocab_size)
        usable = (tokens.numel() // seq_len) * seq_len
        self.tokens = tokens[:usable]
        self.seq_len = int(seq_len)
        self.vocab_size = int(vocab_size)
        self.num_sequences = usable // seq_len

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, idx: int) -> torch.Tensor:
        if not -self.num_sequences <= idx < self.num_sequences:
            raise IndexError(f"sequence {idx} out of range for {self.num_sequences} sequences")
        idx %= self.num_sequences
        start = idx * self.seq_len
        return self.tokens[start : start + self.seq_len]


def split_tokens(tokens: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out the last ``val_fraction`` of the stream (contiguous, so no sequence leaks across)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(tokens.numel() * val_fraction))
    cut = tokens.numel() - n_val
    return tokens[:cut], tokens[cut:]


def split_at_document(tokens: torch.Tensor, document_starts, val_fraction: float = 0.1):
    """Like ``split_tokens``, but cut where a document starts (the last start at or before the
    ``1 - val_fraction`` point), so no document is split between training and held-out text and the
    held-out part is at least ``val_fraction``. Returns (train, held_out, held-out document count)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    target = tokens.numel() - int(round(tokens.numel() * val_fraction))
    starts = sorted(int(s) for s in document_starts if 0 < int(s) <= target)
    if not starts:
        raise ValueError(f"no document starts inside the first {target:,} tokens; use split_tokens")
    cut = starts[-1]
    return tokens[:cut], tokens[cut:], sum(1 for s in document_starts if int(s) >= cut)


class VocabMap:
    """Vocabulary compaction: map the ids that occur in the data to 0..K-1 and back.

    Training on compact ids gives a K-way softmax instead of 128,256-way; the LM head shrinks by the
    same factor. Ids that never occur in the data could never be targets anyway, but the full model
    also spends probability mass on them, so losses are close to, not equal to, full-vocabulary ones.
    """

    def __init__(self, ids_present: torch.Tensor):
        self.original_ids = torch.unique(torch.as_tensor(ids_present).reshape(-1)).long()
        self.size = int(self.original_ids.numel())
        self._lookup = torch.full((int(self.original_ids.max()) + 1,), -1, dtype=torch.long)
        self._lookup[self.original_ids] = torch.arange(self.size)

    @classmethod
    def from_tokens(cls, tokens: torch.Tensor) -> VocabMap:
        return cls(tokens)

    def to_compact(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens).long()
        if tokens.numel() and (int(tokens.max()) >= self._lookup.numel() or int(tokens.min()) < 0):
            raise ValueError("tokens contain ids that the vocabulary map has never seen")
        out = self._lookup[tokens]
        if bool((out < 0).any()):
            raise ValueError("tokens contain ids that the vocabulary map has never seen")
        return out

    def to_original(self, compact: torch.Tensor) -> torch.Tensor:
        return self.original_ids[torch.as_tensor(compact).long()]


@dataclass
class CourseData:
    """The course's usual data in one object (``load_course_data``)."""

    vocab: VocabMap  # compact id <-> Llama 3.2 id
    tokens: torch.Tensor  # the whole stream in compact ids
    train: TokenChunkDataset  # every sequence, or the first (1 - val_fraction) of the stream
    val: TokenChunkDataset | None  # the held-out tail (contiguous), or None without val_fraction


def load_course_data(seq_len: int = 128, val_fraction: float | None = None) -> CourseData:
    """The setup most notebooks share, in one call (notebook 00 shows each piece): the token resource,
    its vocabulary compacted to the ids that occur (``VocabMap``), cut into sequences of ``seq_len``
    tokens; with ``val_fraction``, the last part of the stream is held out (``split_tokens``)."""
    resource = load_token_resource()
    vocab = VocabMap.from_tokens(resource.tokens)
    tokens = vocab.to_compact(resource.tokens)
    if val_fraction is None:
        return CourseData(vocab, tokens, TokenChunkDataset(tokens, seq_len, vocab.size), None)
    train_tokens, val_tokens = split_tokens(tokens, val_fraction)
    return CourseData(vocab, tokens, TokenChunkDataset(train_tokens, seq_len, vocab.size),
                      TokenChunkDataset(val_tokens, seq_len, vocab.size))


def make_loader(dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True, drop_last: bool = True):
    """A DataLoader whose shuffling depends only on ``seed``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the dataset ({len(dataset)} sequences)")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
    )


def batch_stream(dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True):
    """Endless batches: epoch ``e`` is shuffled with ``seed + e``, so any two runs see the same batches."""
    epoch = 0
    while True:
        yield from make_loader(dataset, batch_size, seed + epoch, shuffle=shuffle)
        epoch += 1


class SeekableBatchStream:
    """Endless batches, identical to ``batch_stream(dataset, batch_size, seed)``, that can start at any
    position in O(1) (what a resumed checkpoint needs).

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


def cap_vocabulary(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Renumber the ``vocab_size - 1`` most frequent ids as 0..vocab_size-2 (most frequent first) and
    every other id as ``vocab_size - 1`` ("other"): a small softmax for fast width sweeps on a CPU."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be ≥ 2, got {vocab_size}")
    tokens = torch.as_tensor(tokens).long().reshape(-1)
    ids, counts = torch.unique(tokens, return_counts=True)
    keep = ids[torch.argsort(counts, descending=True, stable=True)[: vocab_size - 1]]
    lookup = torch.full((int(tokens.max()) + 1,), vocab_size - 1, dtype=torch.long)
    lookup[keep] = torch.arange(len(keep))
    return lookup[tokens]


def make_batches(tokens: torch.Tensor, n_batches: int, batch_size: int, seq_len: int, seed: int = 0) -> list:
    """``n_batches`` random (batch_size, seq_len) windows of ``tokens``, fixed by ``seed``."""
    tokens = torch.as_tensor(tokens).long().reshape(-1)
    if tokens.numel() <= seq_len:
        raise ValueError(f"need more than seq_len={seq_len} tokens, got {tokens.numel()}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, tokens.numel() - seq_len, (n_batches, batch_size), generator=g)
    return [torch.stack([tokens[s: s + seq_len] for s in row.tolist()]) for row in starts]
