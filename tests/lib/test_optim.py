"""course_lib.optim against torch.optim: AdamW bit for bit, Muon step for step, routing, validation, resume.

Tolerances: AdamW is compared with ``torch.equal`` (same arithmetic, same order). Muon is compared
with ``torch.equal`` too: course_lib's Newton–Schulz runs in bfloat16 with the operation order of
torch.optim.Muon's ``_zeropower_via_newtonschulz``, so on the same CPU the results are identical.
"""

import copy

import pytest
import torch
from torch import nn

from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import (AdamW, Lion, Muon, MuonWithAdamW, build_optimizer, muon_lr_scale, newton_schulz,
                              split_params_for_muon)


def tiny_model(seed=0, vocab=50):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return TransformerForCausalLM(cfg)


def fake_grads(params, gen, scale=1.0):
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale


@pytest.mark.parametrize("foreach", [True, False])
def test_adamw_is_bitwise_torch_adamw_over_50_steps(foreach):
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen) for s in [(8, 5), (5,), (3, 4, 2), (8, 5)]]
    ours = [x.clone().requires_grad_() for x in init]
    ref = [x.clone().requires_grad_() for x in init]

    def groups(ps):
        return [dict(params=ps[:2], weight_decay=0.1), dict(params=ps[2:], weight_decay=0.0, lr=3e-3)]

    opt = AdamW(groups(ours), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, foreach=foreach)
    ref_opt = torch.optim.AdamW(groups(ref), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, foreach=foreach)
    for step in range(50):
        g = torch.Generator().manual_seed(step)
        fake_grads(ours, g)
        ref_grads = torch.Generator().manual_seed(step)
        fake_grads(ref, ref_grads)
        if step % 7 == 3:  # a tensor without gradient is skipped by both
            ours[1].grad = ref[1].grad = None
        opt.step()
        ref_opt.step()
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_torch_muon_on_2d_parameters(adjust_lr_fn, nesterov):
    """Tolerance: exact (torch.equal); both run Newton–Schulz in bfloat16 with the same operations."""
    gen = torch.Generator().manual_seed(1)
    init = [torch.randn(s, generator=gen) for s in [(32, 8), (8, 24), (16, 16)]]
    ours = [x.clone().requires_grad_() for x in init]
    ref = [x.clone().requires_grad_() for x in init]
    hp = dict(lr=0.02, momentum=0.9, nesterov=nesterov, weight_decay=0.1, adjust_lr_fn=adjust_lr_fn)
    opt, ref_opt = Muon(ours, **hp), torch.optim.Muon(ref, **hp)
    for step in range(15):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        for p, r, gr in zip(ours, ref, grads):
            p.grad, r.grad = gr.clone(), gr.clone()
        opt.step()
        ref_opt.step()
    for a, b in zip(ours, ref):
        assert torch.equal(a, b), (a - b).abs().max()


def test_newton_schulz_float32_is_close_to_the_polar_factor_band():
    G = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    out = newton_schulz(G, 5, dtype=torch.float32)
    s = torch.linalg.svdvals(out)
    assert out.shape == G.shape and 0.6 < s.min() and s.max() < 1.25
    with pytest.raises(ValueError):
        newton_schulz(torch.randn(2, 3, 4))


def test_muon_lr_scale_shapes():
    assert muon_lr_scale((32, 8)) == 2.0 and muon_lr_scale((8, 32)) == 1.0
    assert muon_lr_scale((32, 8), "match_rms_adamw") == pytest.approx(0.2 * 32**0.5)


def test_muon_with_adamw_routes_embeddings_head_and_vectors_to_adamw():
    model = tiny_model()
    muon, adamw = split_params_for_muon(model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = {names[id(p)] for p in muon}
    adamw_names = {names[id(p)] for p in adamw}
    assert "model.embed_tokens.weight" in adamw_names and "lm_head.weight" in adamw_names
    assert all(p.ndim == 2 for p in muon) and all("embed" not in n and "lm_head" not in n for n in muon_names)
    assert {n for n, p in model.named_parameters() if p.ndim == 1} <= adamw_names
    assert {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"} <= muon_names
    assert len(muon) + len(adamw) == len(list(model.parameters()))
    opt = MuonWithAdamW.for_model(model)
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]
    assert {id(p) for p in opt.param_groups[1]["params"]} == {id(p) for p in adamw}
    # the Muon group keeps a momentum buffer, the AdamW group two moments
    fake_grads(model.parameters(), torch.Generator().manual_seed(0))
    opt.step()
    assert set(opt.state[muon[0]]) == {"momentum_buffer"}
    assert set(opt.state[model.lm_head.weight]) == {"step", "exp_avg", "exp_avg_sq"}


def test_muon_with_adamw_routes_a_tied_head_to_adamw_once():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                            tie_word_embeddings=True)
    model = TransformerForCausalLM(cfg)
    muon, adamw = split_params_for_muon(model)
    assert sum(p is model.lm_head.weight for p in adamw) == 1 and all(p is not model.lm_head.weight for p in muon)


@pytest.mark.parametrize("make", [
    lambda ps: AdamW(ps, lr=-1e-3),
    lambda ps: AdamW(ps, betas=(0.9, 1.0)),
    lambda ps: AdamW(ps, betas=(-0.1, 0.9)),
    lambda ps: AdamW(ps, eps=-1e-8),
    lambda ps: AdamW(ps, weight_decay=-0.1),
    lambda ps: AdamW(ps, lr=float("nan")),
    lambda ps: Muon(ps, lr=-0.02),
    lambda ps: Muon(ps, momentum=1.0),
    lambda ps: Muon(ps, momentum=-0.5),
    lambda ps: Muon(ps, weight_decay=-0.01),
    lambda ps: Muon(ps, ns_steps=-1),
    lambda ps: Muon(ps, ns_steps=2.5),
    lambda ps: Muon(ps, adjust_lr_fn="spectral"),
    lambda ps: MuonWithAdamW([dict(params=ps, use_muon=True, momentum=1.5)]),
    lambda ps: MuonWithAdamW([dict(params=ps, use_muon=True, ns_steps=-2)]),
    lambda ps: MuonWithAdamW([dict(params=ps, use_muon=True, adjust_lr_fn="nope")]),
    lambda ps: MuonWithAdamW([dict(params=ps, use_muon=False, betas=(0.9, 1.2))]),
    lambda ps: MuonWithAdamW([dict(params=ps, use_muon=False, lr=-1.0)]),
], ids=["adamw_neg_lr", "adamw_beta2_1", "adamw_neg_beta1", "adamw_neg_eps", "adamw_neg_wd", "adamw_nan_lr",
        "muon_neg_lr", "muon_momentum_1", "muon_neg_momentum", "muon_neg_wd", "muon_neg_ns_steps",
        "muon_fractional_ns_steps", "muon_unknown_adjust_lr_fn", "hybrid_bad_momentum", "hybrid_bad_ns_steps",
        "hybrid_bad_adjust", "hybrid_bad_betas", "hybrid_neg_adamw_lr"])
def test_invalid_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make([nn.Parameter(torch.randn(4, 4))])


def test_build_optimizer_names_are_the_class_names():
    model = tiny_model()
    for name, cls in [("AdamW", AdamW), ("torch.optim.AdamW", torch.optim.AdamW), ("Muon", Muon),
                      ("MuonWithAdamW", MuonWithAdamW), ("Lion", Lion)]:
        assert type(build_optimizer(name, model)) is cls
        assert type(build_optimizer(name.upper(), model)) is cls  # case-insensitive
    every = build_optimizer("Muon", model).param_groups[0]["params"]
    assert {id(p) for p in every} == {id(p) for p in model.parameters()}  # Muon on every parameter
    for unknown in ("sgd", "muon_all", "torch_adamw"):
        with pytest.raises(ValueError, match=f"Unknown optimizer '{unknown}'.*MuonWithAdamW"):
            build_optimizer(unknown, model)


def test_build_optimizer_defaults_and_keywords():
    model = tiny_model()
    group = build_optimizer("AdamW", model).param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-3, (0.9, 0.95), 0.01)
    hybrid = build_optimizer("MuonWithAdamW", model, lr=0.05, adamw_lr=1e-3, nesterov=False, adamw_weight_decay=0.0)
    muon_group, adamw_group = hybrid.param_groups
    assert (muon_group["lr"], muon_group["nesterov"], muon_group["weight_decay"]) == (0.05, False, 0.01)
    assert (adamw_group["lr"], adamw_group["weight_decay"]) == (1e-3, 0.0)
    with pytest.raises(TypeError, match="'adamw_lr'"):
        build_optimizer("Muon", model, adamw_lr=1e-3)  # a hybrid keyword is not Muon's


def test_hybrid_step_is_muon_on_its_muon_groups_and_adamw_on_the_rest():
    """Bit for bit: MuonWithAdamW dispatches each group to the same update as the standalone classes."""
    hybrid_model, ref_model = tiny_model(seed=1), tiny_model(seed=1)
    hybrid = MuonWithAdamW.for_model(hybrid_model, muon_lr=0.03, adamw_lr=1e-3, weight_decay=0.1)
    muon_params, adamw_params = split_params_for_muon(ref_model)
    muon = Muon(muon_params, lr=0.03, weight_decay=0.1)
    adamw = AdamW(adamw_params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for step in range(4):
        fake_grads(hybrid_model.parameters(), torch.Generator().manual_seed(step))
        fake_grads(ref_model.parameters(), torch.Generator().manual_seed(step))
        hybrid.step()
        muon.step()
        adamw.step()
    for a, b in zip(hybrid_model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["AdamW", "Muon", "MuonWithAdamW", "Lion"])
def test_step_evaluates_the_closure_and_returns_its_loss(name):
    model = tiny_model()
    opt = build_optimizer(name, model)
    x = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))

    def closure():
        opt.zero_grad()
        loss = model(x, labels=x, return_logits=False).loss
        loss.backward()
        return loss

    before = model.lm_head.weight.detach().clone()
    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.requires_grad and not torch.equal(before, model.lm_head.weight)


def _train_steps(model, opt, start, stop, data_gen_seed=0):
    for step in range(start, stop):
        gen = torch.Generator().manual_seed(data_gen_seed + step)
        x = torch.randint(0, model.config.vocab_size, (2, 12), generator=gen)
        opt.zero_grad()
        model(x, labels=x, return_logits=False).loss.backward()
        opt.step()


@pytest.mark.parametrize("name", ["AdamW", "Muon", "MuonWithAdamW", "Lion"])
def test_resume_from_state_dict_is_bitwise_identical(name):
    k, n = 4, 9
    straight = tiny_model(seed=5)
    opt = build_optimizer(name, straight)
    _train_steps(straight, opt, 0, n)

    first = tiny_model(seed=5)
    opt1 = build_optimizer(name, first)
    _train_steps(first, opt1, 0, k)
    saved_model = copy.deepcopy(first.state_dict())
    saved_opt = copy.deepcopy(opt1.state_dict())

    resumed = tiny_model(seed=99)  # different weights: everything must come from the checkpoint
    resumed.load_state_dict(saved_model)
    opt2 = build_optimizer(name, resumed)
    opt2.load_state_dict(saved_opt)
    _train_steps(resumed, opt2, k, n)
    for (na, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), f"{name}: {na} differs after resume"
