"""Count-based baselines: on corpora whose entropy is known, the unigram table scores the entropy of
i.i.d. tokens and the bigram table the conditional entropy of a Markov chain; held-out text never
changes the fit; the tables are proper distributions; bad input is refused."""

import math

import pytest
import torch

from course_lib.baselines import BigramTable, baseline_losses, unigram_log_probs

V = 40


def iid_corpus(probs: torch.Tensor, sequences: int, seq_len: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(probs, sequences * seq_len, replacement=True, generator=g).reshape(sequences, seq_len)


def markov_corpus(transition: torch.Tensor, sequences: int, seq_len: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(sequences, seq_len, dtype=torch.long)
    out[:, 0] = torch.randint(0, V, (sequences,), generator=g)
    for t in range(1, seq_len):
        out[:, t] = torch.multinomial(transition[out[:, t - 1]], 1, generator=g).squeeze(1)
    return out


def entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@pytest.fixture(scope="module")
def zipf():
    p = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    return p / p.sum()


@pytest.fixture(scope="module")
def chain():
    g = torch.Generator().manual_seed(7)
    logits = 2.5 * torch.randn(V, V, generator=g, dtype=torch.float64)
    return torch.softmax(logits, dim=1)


def stationary(transition: torch.Tensor) -> torch.Tensor:
    pi = torch.full((V,), 1.0 / V, dtype=torch.float64)
    for _ in range(500):
        pi = pi @ transition
    return pi


def test_unigram_scores_the_entropy_of_iid_tokens(zipf):
    train, val = iid_corpus(zipf, 2000, 64, seed=0), iid_corpus(zipf, 800, 64, seed=1)
    b = baseline_losses(train, val, V)
    # measured over 4 seeds: |unigram - entropy| <= 0.007, bigram - unigram 0.006 to 0.008 (its discounting costs a
    # little on i.i.d. text); the tolerances are about 3x that
    assert b["unigram"] == pytest.approx(entropy(zipf), abs=0.02)
    assert b["bigram"] == pytest.approx(b["unigram"], abs=0.02)  # no order to learn: the bigram gains nothing
    assert b["held_out_sequences"] == 800 and b["held_out_targets"] == 800 * 63


def test_bigram_scores_the_conditional_entropy_of_a_markov_chain(chain):
    train, val = markov_corpus(chain, 2000, 64, seed=0), markov_corpus(chain, 800, 64, seed=1)
    pi = stationary(chain)
    conditional = float(sum(pi[a] * entropy(chain[a]) for a in range(V)))
    b = baseline_losses(train, val, V)
    # measured over 4 seeds: |bigram - conditional entropy| <= 0.006, |unigram - H(stationary)| <= 0.003
    assert b["bigram"] == pytest.approx(conditional, abs=0.03)
    assert b["unigram"] == pytest.approx(entropy(pi), abs=0.03)
    assert b["bigram"] < b["unigram"] - 0.5  # the chain's order is what the bigram learns
    assert 0 < b["bigram_discount"] < 1 and 0 < b["bigram_ci95"] < 0.1


def test_held_out_tokens_never_change_the_fit(chain):
    train = markov_corpus(chain, 300, 32, seed=3)
    val_a, val_b = markov_corpus(chain, 50, 32, seed=4), markov_corpus(chain, 50, 32, seed=5)
    a, b = baseline_losses(train, val_a, V), baseline_losses(train, val_b, V)
    assert a["bigram_discount"] == b["bigram_discount"]
    assert a["unigram"] != b["unigram"]  # the scores differ, because the held-out text differs...
    table = BigramTable(train, V)  # ...but the tables are fit on ``train`` alone
    expected = -table.log_prob(val_b[:, :-1], val_b[:, 1:]).mean().item()
    assert b["bigram"] == pytest.approx(expected, rel=1e-12)
    assert torch.equal(unigram_log_probs(train, V), unigram_log_probs(train.clone(), V))


def test_tables_are_proper_distributions_even_for_unseen_contexts(chain):
    train = markov_corpus(chain, 100, 16, seed=9)
    train[train == 5] = 6  # id 5 never occurs: an unseen context and an unseen target
    table = BigramTable(train, V)
    assert unigram_log_probs(train, V).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    for context in (0, 5, 6):
        probs = table.log_prob(torch.full((V,), context), torch.arange(V)).exp()
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-12) and bool((probs > 0).all())


def test_a_count_table_fit_on_training_text_beats_uniform_guessing():
    train = [[1, 2, 3, 1, 2, 3, 1, 2]] * 4  # every pair occurs at least 4 times: no singletons to set D
    b = baseline_losses(train, [torch.tensor([1, 2, 3, 1, 2])], 5)
    assert b["bigram"] < b["unigram"] < math.log(5) and b["bigram_discount"] == 0.5
    unseen = baseline_losses(train, [torch.tensor([3, 4, 1, 2, 0])], 5)  # pair 3 -> 4 and context 4 never seen
    assert math.isfinite(unseen["bigram"])  # they keep a probability


@pytest.mark.parametrize("train,message", [
    (torch.tensor([[0, 1, 40]]), "outside the vocabulary"),
    (torch.tensor([0, 1, 2]), "shape"),
    (torch.tensor([[0.0, 1.0]]), "integers"),
])
def test_bad_input_is_refused_with_a_clear_error(train, message):
    with pytest.raises((ValueError, TypeError), match=message):
        baseline_losses(train, torch.tensor([[0, 1]]), V)
