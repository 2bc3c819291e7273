"""What the notebooks say in prose, checked without running them.

- 00: "What next" lists every later notebook, in both languages;
- 02: the hybrid written as two optimizers (torch.optim.Muon + torch.optim.AdamW) with one warmup-cosine
  scheduler each trains to the same weights and state as one ``MuonWithAdamW`` with one scheduler: bit
  for bit (``torch.equal``), because both do the same operations in the same order;
- 02: one scheduler for two optimizers leaves the other optimizer at its peak learning rate;
- 02: a Muon step costs a few percent *more* FLOPs than the forward and backward pass on the capstone model;
- 02: the hidden matrices are 96 % of a Llama-2-7B-shaped model but about 6 % of the capstone model;
- 03: the notes' order of Lion's three lines is a different optimizer from the paper's (Chen et al. 2023);
- 05: with a 1000x (even a 10,000x) outlier the median entry still lands on a normal E4M3 number;
- 08: the number of squares it counts is the model's parameter count;
- 10: it says plainly that no GPU figures have been measured.

(The correction boxes: test_corrections.py; the committed capstone results: tests/capstone/test_capstone.py.)
"""

import copy

import pytest
import torch
from lion_pytorch import Lion as LionPytorch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import MuonWithAdamW, lion_update, split_params_for_muon
from course_lib.precision import FORMATS
from course_lib.schedules import lambda_lr, lrs_from_scheduler, warmup_cosine

from ..notebook_helpers import ROOT, SRC, flat, markdown

CAPSTONE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128)


def tiny_model(seed=0, vocab=64):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return TransformerForCausalLM(cfg)


def two_optimizers(model, foreach=None):
    """The hybrid as the optimizer/scheduler report writes it: a dict of two torch optimizers."""
    hidden, rest = split_params_for_muon(model)
    return {"muon": torch.optim.Muon(hidden, lr=0.02, momentum=0.95, weight_decay=0.01),
            "adamw": torch.optim.AdamW(rest, lr=2e-3, betas=(0.9, 0.95), weight_decay=0.01, foreach=foreach)}


def train(model, optimizers, schedulers, steps, vocab=64):
    gen = torch.Generator().manual_seed(7)
    for _ in range(steps):
        batch = torch.randint(0, vocab, (4, 16), generator=gen)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        model(batch, labels=batch, return_logits=False).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
        for scheduler in schedulers:
            scheduler.step()


@pytest.mark.parametrize("foreach", [None, False, True])
def test_two_optimizers_with_two_schedulers_equal_muon_with_adamw_bit_for_bit(foreach):
    """Tolerance: none (torch.equal on every weight and every state tensor, after 10 steps)."""
    start = tiny_model()
    two, one = copy.deepcopy(start), copy.deepcopy(start)
    schedule = dict(warmup_steps=3, total_steps=10, min_ratio=0.1)
    opts = two_optimizers(two, foreach)
    train(two, list(opts.values()), [lambda_lr(o, warmup_cosine, **schedule) for o in opts.values()], 10)
    hybrid = MuonWithAdamW.for_model(one, muon_lr=0.02, adamw_lr=2e-3)
    train(one, [hybrid], [lambda_lr(hybrid, warmup_cosine, **schedule)], 10)

    assert any(not torch.equal(a, b) for a, b in zip(one.parameters(), start.parameters()))  # it trained
    states = {**opts["muon"].state, **opts["adamw"].state}
    for p_two, p_one in zip(two.parameters(), one.parameters()):
        assert torch.equal(p_two, p_one)
        for key, value in hybrid.state[p_one].items():
            other = states[p_two][key]
            assert (float(other) == value) if key == "step" else torch.equal(other, value), key
    assert [g["lr"] for o in opts.values() for g in o.param_groups] == [g["lr"] for g in hybrid.param_groups]


def test_one_scheduler_for_two_optimizers_leaves_the_other_at_its_peak():
    opts = two_optimizers(tiny_model())
    lrs_from_scheduler(lambda_lr(opts["muon"], warmup_cosine, warmup_steps=1, total_steps=4), 4)
    assert opts["adamw"].param_groups[0]["lr"] == 2e-3
    assert opts["muon"].param_groups[0]["lr"] == pytest.approx(0.02 * 0.1)


def lion_as_the_notes_write_it(theta, grad, m, lr, beta1=0.9, beta2=0.99):
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    theta.add_((m * beta2 + grad * (1 - beta2)).sign(), alpha=-lr)
    m.mul_(beta1).add_(grad, alpha=1 - beta1)


def test_lion_in_the_notes_order_is_another_optimizer_than_the_papers():
    kept_paper, kept_notes = torch.zeros(1), torch.zeros(1)
    lion_update(torch.zeros(1), torch.ones(1), kept_paper, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0)
    lion_as_the_notes_write_it(torch.zeros(1), torch.ones(1), kept_notes, lr=0.1)
    assert kept_paper.item() == pytest.approx(0.01) and kept_notes.item() == pytest.approx(0.19)

    gen = torch.Generator().manual_seed(0)
    mean = 0.3 * torch.randn(2000, generator=gen)
    reference = torch.nn.Parameter(torch.zeros(2000))
    opt = LionPytorch([reference], lr=0.01, betas=(0.9, 0.99))
    theta, m = torch.zeros(2000), torch.zeros(2000)
    for _ in range(20):
        g = mean + torch.randn(2000, generator=gen)
        reference.grad = g.clone()
        opt.step()
        lion_as_the_notes_write_it(theta, g, m, lr=0.01)
    assert (reference.detach() != theta).float().mean() > 0.2


def test_a_muon_step_costs_a_few_percent_more_flops_than_forward_and_backward():
    torch.manual_seed(0)
    model = TransformerForCausalLM(TransformerConfig(vocab_size=16925, **CAPSTONE))
    batch = torch.randint(0, 16925, (16, 128), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(batch, labels=batch, return_logits=False).loss.backward()
    train_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        torch.optim.Muon(split_params_for_muon(model)[0], lr=0.02).step()
    assert 0.02 < counter.get_total_flops() / train_flops < 0.06


def test_hidden_matrices_share_of_parameters_small_and_7b_models():
    torch.manual_seed(0)
    small = TransformerForCausalLM(TransformerConfig(vocab_size=16925, **CAPSTONE))
    share = sum(p.numel() for p in split_params_for_muon(small)[0]) / small.num_parameters()
    assert 0.05 < share < 0.07
    with torch.device("meta"):
        big = TransformerForCausalLM(TransformerConfig(
            vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096))
    assert big.num_parameters() == 6_738_415_616  # Llama 2 7B
    assert sum(p.numel() for p in split_params_for_muon(big)[0]) / big.num_parameters() > 0.95


def test_e4m3_outlier_landing_is_normal():
    # 05: with a 1000x (and even a 10,000x) outlier the median entry lands on a normal E4M3 number
    smallest_normal = FORMATS["e4m3"].smallest_normal
    assert smallest_normal == 2.0 ** -6
    assert 448 / 1_000 > smallest_normal and 2 < (448 / 10_000) / smallest_normal < 3


def test_08_counts_the_squares_it_talks_about():
    text = (SRC / "08_stability.txt").read_text(encoding="utf-8")
    assert "3 million" not in text and "300만" not in text
    assert "4.6 million" in text and "460만" in text
    assert "assert n_squares == model.num_parameters()" in text


def test_10_says_plainly_that_gpu_figures_are_not_measured():
    en = flat("\n".join(markdown("10_scaling_up", "en")))
    ko = flat("\n".join(markdown("10_scaling_up", "ko")))
    assert "No GPU figures have been measured" in en and "GPU 수치는 아직 측정하지" in ko
    assert "python -m course_lib.capstone --optimizers torch_adamw muon --steps 200" in en
    results = (ROOT / "benchmarks" / "gpu_results.md").read_text(encoding="utf-8")
    assert "not yet measured" in results
    assert "python -m course_lib.capstone --optimizers torch_adamw muon --steps 200" in results


def test_00_what_next_lists_every_later_notebook():
    en, ko = markdown("00_getting_started", "en")[-1], markdown("00_getting_started", "ko")[-1]
    for number in ["01–03", "04–05", "06–08", "09", "10"]:
        assert f"**{number}**" in en and f"**{number}**" in ko
