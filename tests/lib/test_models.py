"""TransformerForCausalLM against transformers.LlamaForCausalLM, SDPA against eager, and input checks.

Tolerances (fp32): logits and loss within 1e-5 absolute of LlamaForCausalLM with the same weights;
SDPA within 1e-5 of eager; the chunked LM-head loss and its gradients within 1e-5 of the plain path.
The logits path (labels shifted, as transformers does) against the chunked path, measured over 20 seeds:
loss within 1.5e-6 absolute (2e-7 relative), gradients within 1.5e-8; tests allow loss rtol 1e-5 / atol 1e-6
and gradients atol 1e-6 / rtol 1e-5 (a factor of about 50 above). The loss-only (no-grad) path does the
chunked path's arithmetic, so its loss is bit-equal.
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib.losses import LinearCrossEntropy
from course_lib.models import TransformerConfig, TransformerForCausalLM

SMALL = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=48)


def make(**overrides):
    torch.manual_seed(0)
    return TransformerForCausalLM(TransformerConfig(**{**SMALL, **overrides}))


@pytest.mark.parametrize("kv_heads,tie", [(2, False), (4, False), (1, True)])
def test_matches_llama_for_causal_lm(kv_heads, tie):
    from transformers import LlamaForCausalLM

    model = make(num_key_value_heads=kv_heads, tie_word_embeddings=tie).eval()
    llama_config = model.config.to_llama_config()
    llama_config._attn_implementation = "eager"
    reference = LlamaForCausalLM(llama_config).eval()
    reference.load_state_dict(model.state_dict(), strict=not tie)
    x = torch.randint(0, SMALL["vocab_size"], (3, 48))
    labels = x.clone()
    labels[0, :7] = -100
    with torch.no_grad():
        ours = model(x, labels=labels)
        theirs = reference(input_ids=x, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-5, rtol=0)


def test_sdpa_equals_eager():
    eager = make().eval()
    sdpa = TransformerForCausalLM(TransformerConfig(**{**SMALL, "attn_implementation": "sdpa"})).eval()
    sdpa.load_state_dict(eager.state_dict())
    x = torch.randint(0, SMALL["vocab_size"], (2, 40))
    with torch.no_grad():
        a, b = eager(x, labels=x), sdpa(x, labels=x)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=0)


def test_chunked_loss_and_grads_equal_plain_path():
    model = make()
    x = torch.randint(0, SMALL["vocab_size"], (4, 48))
    labels = x.clone()
    labels[1, 10:20] = -100
    plain = model(x, labels=labels)
    plain.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    fused = model(x, labels=labels, return_logits=False)
    assert fused.logits is None
    fused.loss.backward()
    torch.testing.assert_close(fused.loss, plain.loss, atol=1e-5, rtol=0)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], atol=1e-5, rtol=0, msg=name)


def labels_with_ignored(x):
    labels = x.clone()
    labels[0, 0] = -100
    labels[1, 10:20] = -100
    labels[2, -5:] = -100  # includes the last position, which the shift drops anyway
    return labels


def loss_and_grads(model, loss_fn):
    model.zero_grad()
    loss = loss_fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_logits_path_equals_chunked_path():
    model = make()
    x = torch.randint(0, SMALL["vocab_size"], (4, 48))
    labels = labels_with_ignored(x)
    loss_logits, grads_logits = loss_and_grads(model, lambda: model(x, labels=labels).loss)
    loss_chunked, grads_chunked = loss_and_grads(model, lambda: model(x, labels=labels, return_logits=False).loss)
    # measured: loss within 1.5e-6 (2e-7 relative), gradients within 1.5e-8
    torch.testing.assert_close(loss_logits, loss_chunked, rtol=1e-5, atol=1e-6)
    for name in grads_logits:
        torch.testing.assert_close(grads_logits[name], grads_chunked[name], rtol=1e-5, atol=1e-6, msg=name)


def test_logits_path_equals_sliced_logits_reference():
    """Shifting the labels gives what slicing the logits gives (the transformers-style reference)."""
    model = make()
    x = torch.randint(0, SMALL["vocab_size"], (4, 48))
    labels = labels_with_ignored(x)

    def reference():
        logits = model(x).logits
        flat = logits[:, :-1].reshape(-1, SMALL["vocab_size"])
        return F.cross_entropy(flat, labels[:, 1:].reshape(-1), ignore_index=-100)

    loss, grads = loss_and_grads(model, lambda: model(x, labels=labels).loss)
    ref_loss, ref_grads = loss_and_grads(model, reference)
    # measured: loss within 1e-6 (summation order), gradients identical
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_no_grad_computes_the_loss_only(monkeypatch):
    model = make()
    x = torch.randint(0, SMALL["vocab_size"], (4, 48))
    labels = labels_with_ignored(x)
    trained = model(x, labels=labels, return_logits=False).loss.detach()

    def no_gradient_code(*args):
        raise AssertionError("LinearCrossEntropy (loss + gradients) called where no backward can follow")

    monkeypatch.setattr(LinearCrossEntropy, "apply", no_gradient_code)
    with torch.no_grad():
        evaluated = model(x, labels=labels, return_logits=False).loss
    with torch.inference_mode():
        inferred = model(x, labels=labels, return_logits=False).loss
    model.requires_grad_(False)  # frozen model, grad mode on: nothing to differentiate either
    frozen = model(x, labels=labels, return_logits=False).loss
    for loss in (evaluated, inferred, frozen):
        assert not loss.requires_grad
        torch.testing.assert_close(loss, trained, rtol=0, atol=0)  # same chunk arithmetic: bit-equal


def test_initial_loss_is_log_vocab():
    model = make()
    x = torch.randint(0, SMALL["vocab_size"], (4, 48))
    with torch.no_grad():
        loss = model(x, labels=x).loss.item()
    assert abs(loss - torch.log(torch.tensor(1000.0)).item()) < 0.05


def test_bad_inputs_raise_clear_errors():
    model = make()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[1, 2, 1000]]))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("bad", [dict(hidden_size=65), dict(num_key_value_heads=3), dict(vocab_size=0),
                                 dict(attn_implementation="flash"), dict(attention_dropout=1.5)])
def test_invalid_config(bad):
    with pytest.raises(ValueError):
        TransformerConfig(**{**SMALL, **bad})
