"""Count-based baselines: what a loss means. A language model whose held-out loss is not below a table
of token counts has not shown that it predicts the text better than the counts do.

Both tables are fit on training sequences only and scored on the same targets as the model: every
token of a held-out sequence except its first (the model predicts position t from positions < t; a
bigram looks only at position t - 1, inside the same sequence).

- unigram: p(b) = (count(b) + 1) / (N + V), add-one (Laplace) smoothing.
- bigram: interpolated absolute discounting (Ney, Essen & Kneser 1994, "On structuring probabilistic
  dependences in stochastic language modelling", eq. for the interpolated model):
  p(b | a) = max(c(a, b) - D, 0) / c(a) + D * n(a) / c(a) * p_unigram(b), where n(a) is the number of
  different tokens seen after a, and the discount D = n1 / (n1 + 2 n2) is computed from the training
  counts (n1, n2: how many pairs occur once and twice), so no held-out token chooses it.
"""

from __future__ import annotations

import math

import torch

from .data import validate_token_ids


def _as_sequences(sequences, vocab_size: int) -> torch.Tensor:
    """A (num_sequences, seq_len) int64 tensor from a tensor, a list of sequences or a TokenChunkDataset."""
    if hasattr(sequences, "tokens") and hasattr(sequences, "seq_len"):  # TokenChunkDataset
        sequences = sequences.tokens.reshape(-1, sequences.seq_len)
    if isinstance(sequences, (list, tuple)) and sequences and isinstance(sequences[0], torch.Tensor):
        sequences = torch.stack(list(sequences))
    seqs = torch.as_tensor(sequences)
    if seqs.dim() != 2 or seqs.shape[1] < 2:
        raise ValueError(f"expected sequences of shape (num_sequences, seq_len >= 2), got {tuple(seqs.shape)}")
    if seqs.dtype.is_floating_point:
        raise TypeError(f"token ids must be integers, got {seqs.dtype}")
    seqs = seqs.long()
    validate_token_ids(seqs, vocab_size)
    return seqs


def unigram_log_probs(train, vocab_size: int) -> torch.Tensor:
    """log p(b) for every id b, add-one smoothed, from the targets of the training sequences (shape (V,))."""
    targets = _as_sequences(train, vocab_size)[:, 1:].reshape(-1)
    counts = torch.bincount(targets, minlength=vocab_size).double()
    return torch.log((counts + 1.0) / (counts.sum() + vocab_size))


class BigramTable:
    """The interpolated absolute-discounting bigram of the module docstring, fit on ``train``.

    Pairs are stored sparsely (sorted keys a * V + b), so the table costs memory per pair seen,
    not V x V."""

    def __init__(self, train, vocab_size: int):
        seqs = _as_sequences(train, vocab_size)
        self.vocab_size = vocab_size
        self.unigram = unigram_log_probs(seqs, vocab_size).exp()
        keys = (seqs[:, :-1] * vocab_size + seqs[:, 1:]).reshape(-1)
        self.keys, pair_counts = torch.unique(keys, return_counts=True)  # sorted
        self.pair_counts = pair_counts.double()
        n1, n2 = int((pair_counts == 1).sum()), int((pair_counts == 2).sum())
        self.discount = n1 / (n1 + 2 * n2) if n1 else 0.5  # no singletons (tiny data): keep some mass back
        first = self.keys // vocab_size
        self.context_counts = torch.bincount(first, weights=self.pair_counts, minlength=vocab_size)
        self.context_types = torch.bincount(first, minlength=vocab_size).double()

    def log_prob(self, previous: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """log p(token | previous), elementwise."""
        previous, token = previous.long().reshape(-1), token.long().reshape(-1)
        keys = previous * self.vocab_size + token
        pos = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        pair = torch.where(self.keys[pos] == keys, self.pair_counts[pos], torch.zeros((), dtype=torch.float64))
        c_a, n_a = self.context_counts[previous], self.context_types[previous]
        seen = c_a > 0
        safe = torch.where(seen, c_a, torch.ones_like(c_a))
        p = torch.where(seen, (pair - self.discount).clamp(min=0) / safe
                        + self.discount * n_a / safe * self.unigram[token], self.unigram[token])
        return torch.log(p)


def per_sequence_cross_entropy(log_probs: torch.Tensor, num_sequences: int) -> torch.Tensor:
    """Mean negative log-probability of each sequence's targets (shape (num_sequences,))."""
    return -log_probs.reshape(num_sequences, -1).mean(dim=1)


def baseline_losses(train, held_out, vocab_size: int) -> dict:
    """Held-out cross-entropy (nats per token) of the unigram and bigram tables fit on ``train``, each
    with a 95% interval over held-out sequences (1.96 standard errors of the per-sequence means: how much
    the number would move on another held-out sample of this size; sequences cut from one document are
    correlated, so treat it as the smallest such movement). Ids must lie in [0, vocab_size)."""
    val = _as_sequences(held_out, vocab_size)
    n = val.shape[0]
    unigram = per_sequence_cross_entropy(unigram_log_probs(train, vocab_size)[val[:, 1:]], n)
    table = BigramTable(train, vocab_size)
    bigram = per_sequence_cross_entropy(table.log_prob(val[:, :-1], val[:, 1:]), n)

    def interval(per_seq):
        return 1.96 * float(per_seq.std()) / math.sqrt(n) if n > 1 else math.inf

    return {"unigram": float(unigram.mean()), "unigram_ci95": interval(unigram),
            "bigram": float(bigram.mean()), "bigram_ci95": interval(bigram), "bigram_discount": table.discount,
            "held_out_sequences": n, "held_out_targets": int(val[:, 1:].numel())}
