"""A small Llama-style decoder: RMSNorm, rotary positions (RoPE), grouped-query attention, SwiGLU.

Read top-down: RMSNorm → RoPE → Attention → MLP → DecoderLayer → TransformerModel → TransformerForCausalLM.
Parameter names follow ``transformers.LlamaForCausalLM``, so a state dict moves between the two unchanged.
References: Touvron et al. 2023 (LLaMA), Zhang & Sennrich 2019 (RMSNorm), Su et al. 2021 (RoPE),
Ainslie et al. 2023 (GQA), Shazeer 2020 (SwiGLU). The chunked LM-head loss is in ``course_lib.losses``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import validate_token_ids
from .losses import LinearCrossEntropy, validate_labels, chunked_cross_entropy_loss
from .validate import require_bool, require_number


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight, computed in fp32 (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(seq_len: int, head_dim: int, theta: float, device, dtype=torch.float32):
    """cos and sin tables of shape (seq_len, head_dim) for rotary embeddings (Su et al. 2021)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    positions = torch.arange(seq_len, device=device).float()
    freqs = torch.outer(positions, inv_freq)  # (T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, D)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) → (−x2, x1) on the two halves of the last dim (the half-split layout of transformers' Llama)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by the position angles; cos and sin (T, D) broadcast over batch and heads."""
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads: each K/V head serves several query heads (GQA)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        h, d = config.hidden_size, config.head_dim
        self.n_heads, self.n_kv = config.num_attention_heads, config.num_key_value_heads
        self.q_proj = nn.Linear(h, self.n_heads * d, bias=False)
        self.k_proj = nn.Linear(h, self.n_kv * d, bias=False)
        self.v_proj = nn.Linear(h, self.n_kv * d, bias=False)
        self.o_proj = nn.Linear(self.n_heads * d, h, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # B batch, T sequence, C hidden_size, H query heads, K key/value heads, D head_dim (C = H * D)
        bsz, seq, _ = x.shape  # (B, T, C)
        d = self.config.head_dim
        q = self.q_proj(x).view(bsz, seq, self.n_heads, d).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(bsz, seq, self.n_kv, d).transpose(1, 2)  # (B, K, T, D)
        v = self.v_proj(x).view(bsz, seq, self.n_kv, d).transpose(1, 2)  # (B, K, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = self.n_heads // self.n_kv
        k = k.repeat_interleave(groups, dim=1)  # (B, H, T, D): query head i uses K/V head i // groups
        v = v.repeat_interleave(groups, dim=1)  # (B, H, T, D)
        dropout = self.config.attention_dropout if self.training else 0.0
        if self.config.attn_implementation == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)  # (B, H, T, D)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)  # (B, H, T, T)
            causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)  # (T, T), True above diagonal
            scores = scores.masked_fill(causal, torch.finfo(scores.dtype).min)
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            probs = F.dropout(probs, p=dropout, training=self.training)
            out = probs @ v  # (B, H, T, D)
        out = out.transpose(1, 2).reshape(bsz, seq, self.n_heads * d)  # (B, T, H * D): heads side by side
        return self.o_proj(out)  # (B, T, C)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (Shazeer 2020)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm residual block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass
class TransformerConfig:
    """Model shape. Field names follow ``transformers.LlamaConfig``; defaults follow Llama 3.2 where they apply,
    except ``tie_word_embeddings=False`` (Llama 3.2 1B and 3B tie the LM head to the embedding)."""

    vocab_size: int = 128256
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 128
    attention_dropout: float = 0.0
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    attn_implementation: str = "eager"  # "eager" (written out) or "sdpa" (F.scaled_dot_product_attention)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
            setattr(self, name, require_number(name, getattr(self, name), at_least=1, integer=True))
        hidden, heads, kv_heads = self.hidden_size, self.num_attention_heads, self.num_key_value_heads
        if hidden % heads:
            raise ValueError(f"hidden_size={hidden} is not divisible by num_attention_heads={heads}")
        if heads % kv_heads:
            raise ValueError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
        if (hidden // heads) % 2:
            raise ValueError("head_dim must be even for rotary embeddings")
        require_number("attention_dropout", self.attention_dropout, at_least=0.0, below=1.0)
        require_number("rms_norm_eps", self.rms_norm_eps, above=0.0,
                       hint="it keeps RMSNorm from dividing by zero (Llama uses 1e-5)")
        require_number("rope_theta", self.rope_theta, above=0.0,
                       hint="it sets the rotary wavelengths (Llama 3 uses 500000.0, Llama 2 10000.0)")
        require_number("initializer_range", self.initializer_range, at_least=0.0)
        require_bool("tie_word_embeddings", self.tie_word_embeddings)
        if self.attn_implementation not in ("eager", "sdpa"):
            raise ValueError(f"attn_implementation must be 'eager' or 'sdpa', got {self.attn_implementation!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_llama_config(self):
        """The equivalent ``transformers.LlamaConfig`` (for comparisons and export)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings,
            attention_dropout=self.attention_dropout,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            initializer_range=self.initializer_range,
            tie_word_embeddings=self.tie_word_embeddings,
            attention_bias=False,
            mlp_bias=False,
            hidden_act="silu",
        )

    def to_dict(self) -> dict:
        return asdict(self)


class TransformerModel(nn.Module):
    """Embeddings, decoder layers and the final norm (the ``model.`` prefix of LlamaForCausalLM)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.config = config

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        x = self.embed_tokens(input_ids)  # (B, T, C)
        cos, sin = rope_cos_sin(seq, self.config.head_dim, self.config.rope_theta, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


@dataclass
class CausalLMOutput:
    """What ``TransformerForCausalLM`` returns: ``loss`` is None without labels, ``logits`` None with
    ``return_logits=False``."""

    loss: torch.Tensor | None
    logits: torch.Tensor | None


class TransformerForCausalLM(nn.Module):
    """Decoder + LM head. ``model(input_ids, labels=input_ids)`` returns ``.loss`` and ``.logits``.

    As in ``transformers``, labels are shifted inside: position t predicts token t+1, and label
    -100 is ignored. Pass ``return_logits=False`` when only the loss is needed (training): the loss
    then comes from ``losses.LinearCrossEntropy`` (without autograd, ``losses.chunked_cross_entropy_loss``) and
    no (batch, seq, vocab) logits tensor is built.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.model = TransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) for linear and embedding weights, ones for norms (as Llama)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            params.pop(id(self.model.embed_tokens.weight), None)
        return sum(p.numel() for p in params.values())

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_logits: bool = True,
    ) -> CausalLMOutput:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        validate_token_ids(input_ids, self.config.vocab_size)
        hidden = self.model(input_ids)
        if labels is None:
            return CausalLMOutput(loss=None, logits=self.lm_head(hidden))
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")
        validate_labels(labels, self.config.vocab_size)
        if not return_logits:
            targets = labels[:, 1:].reshape(-1)
            flat_hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
            weight = self.lm_head.weight
            if torch.is_grad_enabled() and (flat_hidden.requires_grad or weight.requires_grad):
                loss = LinearCrossEntropy.apply(flat_hidden, weight, targets)
            else:  # evaluation: no backward will come, so skip the gradient work
                loss = chunked_cross_entropy_loss(flat_hidden, weight, targets)
            return CausalLMOutput(loss=loss, logits=None)
        logits = self.lm_head(hidden)
        # Shift the labels, not the logits (as transformers does): slicing logits[:, :-1] would copy
        # the whole (batch, seq, vocab) tensor. The last position gets -100, so it is skipped.
        targets = F.pad(labels[:, 1:], (0, 1), value=-100).reshape(-1)
        flat = logits.view(-1, logits.shape[-1])  # a view: no copy
        acc = torch.promote_types(flat.dtype, torch.float32)  # upcast bf16/fp16 only
        loss = F.cross_entropy(flat.to(acc), targets, ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)
