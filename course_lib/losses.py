"""Cross-entropy of the LM head, ``hidden @ weight.T``, one chunk of rows at a time: the full (tokens × vocab)
logits (about 1 GB for the capstone's 16 × 128 batch with the 128,256-id vocabulary in fp32) never exist.

``LinearCrossEntropy`` (training) turns each chunk's logits into its loss and its gradients in the forward pass,
the scheme of Liger Kernel's fused linear cross-entropy (Hsu et al. 2024, arXiv:2410.10989);
``chunked_cross_entropy_loss`` (evaluation) computes the loss alone. Label -100 is skipped, as in ``transformers``;
``validate_labels`` rejects any other label outside the vocabulary.
"""

from __future__ import annotations

import torch


def _chunk_loss_terms(h, weight, t, acc):
    """One chunk: exp(logits − row max), written over the logits buffer; its row sums; each row's loss."""
    logits = (h @ weight.T).to(acc)
    rows = torch.arange(len(t), device=t.device)
    target_logit = logits[rows, t.clamp(min=0)]
    peak = logits.amax(dim=-1, keepdim=True)
    exps = logits.sub_(peak).exp_()  # reuse the logits buffer
    sums = exps.sum(dim=-1, keepdim=True)
    row_loss = peak.squeeze(-1) + sums.squeeze(-1).log() - target_logit  # logsumexp − target logit
    return exps, sums, row_loss


@torch.no_grad()
def chunked_cross_entropy_loss(hidden, weight, targets, chunk_size: int = 256):
    """Loss only (no gradients, for evaluation): mean cross-entropy of ``hidden @ weight.T`` against
    ``targets`` (-100 skipped), one chunk of logits at a time. Same value as ``LinearCrossEntropy``."""
    valid = targets != -100
    acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32 at least, fp64 stays fp64
    total = hidden.new_zeros((), dtype=acc)
    for start in range(0, hidden.shape[0], chunk_size):
        end = start + chunk_size
        _, _, row_loss = _chunk_loss_terms(hidden[start:end], weight, targets[start:end], acc)
        total += (row_loss * valid[start:end]).sum()
    return total / max(int(valid.sum()), 1)


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk.

    With a 128k vocabulary the (tokens × vocab) logits of one batch take about 1 GB, and writing,
    soft-maxing and back-propagating through them costs more than the LM-head matmuls. Here each
    chunk's logits are turned into the loss and, right away, into the gradients of ``hidden`` and
    ``weight`` (d loss/d logits = softmax − one-hot), so no full logits tensor ever exists. Same
    result as ``F.cross_entropy(hidden @ weight.T, targets)`` up to float rounding. For the loss
    alone (no backward), ``chunked_cross_entropy_loss`` skips the gradient work.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size: int = 256):
        valid = targets != -100
        count = int(valid.sum())
        acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32 at least, fp64 stays fp64
        grad_hidden = torch.empty_like(hidden, dtype=acc)
        grad_weight = torch.zeros_like(weight, dtype=acc)
        total = hidden.new_zeros((), dtype=acc)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]
            t = targets[start : start + chunk_size]
            ok = valid[start : start + chunk_size]
            probs, sums, row_loss = _chunk_loss_terms(h, weight, t, acc)
            total += (row_loss * ok).sum()
            probs.div_(sums)  # softmax
            probs[torch.arange(len(t), device=t.device), t.clamp(min=0)] -= 1.0  # − one-hot
            probs.mul_((ok.to(acc) / max(count, 1)).unsqueeze(-1))
            grad_hidden[start : start + chunk_size] = probs @ weight.to(acc)
            grad_weight.addmm_(probs.T, h.to(acc))
        ctx.save_for_backward(grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype))
        return total / max(count, 1)

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_output, grad_weight * grad_output, None, None


def validate_labels(labels: torch.Tensor, vocab_size: int, ignore_index: int = -100) -> None:
    """Raise ValueError at the first label that is neither ``ignore_index`` (-100, skipped in the loss
    as in transformers) nor an id in [0, vocab_size), naming its (batch, position) and value."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer token ids, got dtype {labels.dtype}")
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= vocab_size))
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"label {int(labels[where])} at position {where} is outside the vocabulary [0, {vocab_size}); "
            f"only {ignore_index} may stand outside it (it marks a position the loss skips)"
        )
