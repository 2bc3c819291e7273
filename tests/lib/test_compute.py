"""course_lib.compute: the memory budget equals the bytes a real optimizer step leaves behind (and 16 bytes
per parameter for AdamW), optimizer state sizes, the FLOPs formula against torch's FlopCounterMode, MFU,
the table of GPU peaks, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.compute import (measured_training_bytes, mfu, optimizer_state_bytes, optimizer_state_numel, peak_flops,
                                training_memory_budget, transformer_flops_per_token)
from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import AdamW, Lion, Muon, MuonWithAdamW, is_muon_param
from course_lib.precision import autocast_dtype_for, grad_scaler_for, lost_update_thresholds

CONFIG = TransformerConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16)
#: the FLOPs test's model: sequences of 32 tokens, vocabulary 97
CFG = TransformerConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)


def tiny_model(seed=0, vocab=50):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return TransformerForCausalLM(cfg)


def fake_grads(params, gen, scale=1.0):
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale


def _one_step(recipe):
    torch.manual_seed(0)
    model = TransformerForCausalLM(CONFIG)
    masters = []
    if recipe == "bf16_mixed":
        model = model.to(torch.bfloat16)
        masters = [p.detach().float().requires_grad_() for p in model.parameters()]
        opt = torch.optim.AdamW(masters, lr=1e-3)
    else:
        opt = {"torch_adamw": lambda: torch.optim.AdamW(model.parameters(), lr=1e-3),
               "lion": lambda: Lion(model.parameters()),
               "adafactor": lambda: torch.optim.Adafactor(model.parameters()),
               "muon": lambda: Muon(model.parameters()),
               "hybrid": lambda: MuonWithAdamW.for_model(model)}[recipe]()
    ids = torch.randint(0, 64, (2, 8))
    model(ids, labels=ids, return_logits=False).loss.backward()
    for m, p in zip(masters, model.parameters()):
        m.grad = p.grad.float()
    opt.step()
    for m in masters:
        m.grad = None
    return model, opt, masters


@pytest.mark.parametrize("recipe", ["torch_adamw", "bf16_mixed", "lion", "adafactor", "muon", "hybrid"])
def test_budget_equals_measured_bytes(recipe):
    model, opt, masters = _one_step(recipe)
    measured = measured_training_bytes(model.parameters(), opt, masters)
    if recipe == "hybrid":
        tensors = [(tuple(p.shape), "muon" if is_muon_param(n, p, model) else "adamw")
                   for n, p in model.named_parameters()]
    else:
        rule = "torch_adamw" if recipe == "bf16_mixed" else recipe
        tensors = [(tuple(p.shape), rule) for p in model.parameters()]
    bf16 = recipe == "bf16_mixed"
    budget = training_memory_budget(tensors, weight_dtype="bf16" if bf16 else "fp32",
                                    master_dtype="fp32" if bf16 else None)
    assert {k: budget[k] for k in measured} == measured


def test_sixteen_bytes_per_parameter_for_adamw():
    big = [((4096, 4096), "torch_adamw")]
    for kwargs in (dict(), dict(weight_dtype="bf16", master_dtype="fp32")):
        b = training_memory_budget(big, **kwargs)
        assert b["total"] - b["step counters"] == 16 * 4096 * 4096
    assert training_memory_budget([((4096, 4096), "lion")])["bytes per parameter"] == 12
    assert optimizer_state_numel("adafactor", (4096, 1024)) == 4096 + 1024
    assert optimizer_state_numel("adafactor", (7,)) == 7


@pytest.mark.parametrize("call, match", [
    (lambda: optimizer_state_numel("adam", (3, 3)), "optimizer='adam'"),
    (lambda: optimizer_state_numel("lion", (0, 3)), "shape"),
    (lambda: training_memory_budget([], weight_dtype="fp32"), "empty"),
    (lambda: training_memory_budget([((2, 2), "lion")], weight_dtype="fp8"), "weight_dtype='fp8'"),
    (lambda: measured_training_bytes([torch.zeros(2)], torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])),
     "no state"),
    (lambda: lost_update_thresholds(1.0, torch.int32), "floating-point"),
    (lambda: lost_update_thresholds(float("inf"), torch.bfloat16), "finite"),
])
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_optimizer_state_bytes_is_8_bytes_per_parameter_for_adamw():
    model = tiny_model()
    opt = AdamW(model.parameters())
    fake_grads(model.parameters(), torch.Generator().manual_seed(0))
    opt.step()
    assert optimizer_state_bytes(opt) == 8 * sum(p.numel() for p in model.parameters())


def test_flops_formula_matches_torch_counter():
    """FlopCounterMode counts every matmul of forward + backward (logits path, so the LM head is a
    plain matmul); 6·N·tokens + attention must equal it exactly."""
    torch.manual_seed(0)
    m = TransformerForCausalLM(CFG)
    x = torch.randint(0, 97, (2, 32))
    with FlopCounterMode(display=False) as fc:
        m(x, labels=x).loss.backward()
    f = transformer_flops_per_token(CFG, 32)
    assert fc.get_total_flops() == pytest.approx(f["total"] * x.numel(), rel=1e-9)
    assert f["params_matmul"] == m.num_parameters() - m.model.embed_tokens.weight.numel() - 32 * 5
    assert mfu(1000.0, 6e6, 1e10) == pytest.approx(0.6)


def test_peak_table_and_precision():
    assert peak_flops("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert peak_flops("NVIDIA H100 PCIe")[0] == 756e12
    assert peak_flops("NVIDIA A100-SXM4-40GB")[0] == 312e12 and peak_flops("NVIDIA L4")[0] == 121e12
    assert peak_flops("Tesla T4")[0] == 65e12 and "no bf16" in peak_flops("Tesla T4")[1]
    assert peak_flops("NVIDIA H200")[0] == 989e12
    assert peak_flops("NVIDIA GeForce RTX 5090") == (
        None, "peak unknown for 'NVIDIA GeForce RTX 5090': MFU not reported")
    assert autocast_dtype_for(torch.device("cpu")) is None
    assert autocast_dtype_for(torch.device("cpu"), "fp16") is torch.float16
    with pytest.raises(ValueError, match="'fp8'"):
        autocast_dtype_for(torch.device("cpu"), "fp8")


@pytest.mark.parametrize("gpu,capability,auto", [("Tesla T4", (7, 5), torch.float16),
                                                  ("Tesla V100", (7, 0), torch.float16),
                                                  ("NVIDIA A100", (8, 0), torch.bfloat16),
                                                  ("NVIDIA L4", (8, 9), torch.bfloat16),
                                                  ("NVIDIA H100", (9, 0), torch.bfloat16),
                                                  ("Tesla P100", (6, 0), None)])
def test_auto_precision_follows_the_gpu(monkeypatch, gpu, capability, auto):
    """auto: bf16 where the GPU has bf16 tensor cores (sm 8.0+), fp16 + GradScaler on a T4 or V100, whose
    bf16 is emulated although torch.cuda.is_bf16_supported() says True, fp32 without tensor cores (P100);
    the forced choices stay forced."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert autocast_dtype_for(cuda) is auto, gpu
    assert autocast_dtype_for(cuda, "bf16") is torch.bfloat16 and autocast_dtype_for(cuda, "fp32") is None
    assert autocast_dtype_for(cuda, "fp16") is torch.float16
    scaler = grad_scaler_for(torch.device("cpu"), auto)  # a CPU scaler: this machine may have no GPU
    assert (scaler is not None) == (auto is torch.float16)
