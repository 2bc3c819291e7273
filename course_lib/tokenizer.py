"""The Llama 3.2 tokenizer, loaded offline from ``resource/llama32_tokenizer``."""

from __future__ import annotations

from .paths import TOKENIZER_NAME, resource_path, verify_resource

BOS_ID = 128000  # <|begin_of_text|>: starts every encoded text and every document of the resource
EOS_ID = 128001  # <|end_of_text|>
FULL_VOCAB_SIZE = 128256  # 128,000 BPE tokens + 256 special tokens


def load_tokenizer():
    """``AutoTokenizer`` for Llama 3.2, from the course's files (no hub access needed).

    Note: ``tokenizer.vocab_size`` is 128,000 (BPE tokens only) while ``len(tokenizer)`` is 128,256;
    size an embedding with ``len(tokenizer)`` so the special ids fit. The files are checked against
    ``SHA256SUMS.json`` first (``ResourceIntegrityError`` if damaged).
    """
    from transformers import AutoTokenizer

    folder = resource_path(TOKENIZER_NAME)
    verify_resource(folder)
    return AutoTokenizer.from_pretrained(str(folder))
