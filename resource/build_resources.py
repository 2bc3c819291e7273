"""Rebuild the course's two offline resources, deterministically.

1. ``llama32_tokenizer/``: Hugging Face tokenizer files made from the Llama 3 BPE ranks
   (``llama_models/llama3/tokenizer.model`` in Meta's PyPI package ``llama-models``; Llama 3.2 uses
   the same tokenizer), with the 256 special tokens and Llama 3.2's BOS handling.
2. ``fineweb_llama32_128k_tokens/``: a ``datasets`` Arrow dataset of exactly 128,000 tokens: the
   first FineWeb documents (``default`` config, streaming order), each encoded as
   ``<|begin_of_text|>`` + text, concatenated in order and cut at 128,000 tokens.

Each folder also gets ``SHA256SUMS.json`` (data file name -> SHA-256), which ``course_lib`` checks
on every load so that damaged bytes raise a clear error instead of giving wrong tokens.

Usage (from anywhere)::

    python resource/build_resources.py                  # rebuild both, in place
    python resource/build_resources.py --out /tmp/copy  # rebuild into another folder
    python resource/build_resources.py --from-hub       # stream FineWeb from the hub instead of
                                                        # the bundled docs.jsonl (needs internet)

Needs ``llama-models`` (for ``tokenizer.model``), ``tokenizers``, ``transformers`` and ``datasets``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKENIZER_DIR = "llama32_tokenizer"
TOKENS_DIR = "fineweb_llama32_128k_tokens"
NUM_TOKENS = 128_000
MANIFEST = "SHA256SUMS.json"  # file name -> SHA-256; course_lib checks it on every load
NUM_RESERVED_SPECIAL_TOKENS = 256
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"

# The pre-tokenizer regex of Llama 3 (same as in llama_models/llama3/tokenizer.py).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The first 12 special tokens, in id order from 128000, as llama-models names them; the rest are
# <|reserved_special_token_2|> ... <|reserved_special_token_245|>.
NAMED_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
]


def special_tokens() -> list[str]:
    reserved = NUM_RESERVED_SPECIAL_TOKENS - len(NAMED_SPECIAL_TOKENS)
    return NAMED_SPECIAL_TOKENS + [f"<|reserved_special_token_{2 + i}|>" for i in range(reserved)]


def find_tiktoken_model() -> Path:
    try:
        import llama_models
    except ImportError as err:
        raise SystemExit(
            "Rebuilding the tokenizer needs Meta's package `llama-models` "
            "(pip install llama-models); it ships llama_models/llama3/tokenizer.model."
        ) from err
    path = Path(llama_models.__file__).parent / "llama3" / "tokenizer.model"
    if not path.exists():
        raise SystemExit(f"llama-models is installed but has no {path.name} at {path.parent}")
    return path


def load_bpe_ranks(path: Path) -> dict[bytes, int]:
    """tiktoken's format: one `base64(token_bytes) rank` pair per line."""
    ranks = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map, which ByteLevel pre-tokenizers use."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def vocab_and_merges(ranks: dict[bytes, int]):
    """Turn BPE ranks into a (vocab, merges) pair for `tokenizers.models.BPE`.

    A token of rank r was made by merging two lower-ranked tokens; listing every such split, ordered
    by the rank of the result, reproduces tiktoken's merge order.
    """
    alphabet = byte_level_alphabet()

    def to_str(b: bytes) -> str:
        return "".join(alphabet[x] for x in b)

    vocab = {to_str(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in ranks.items():
        splits = [
            (ranks[tok[:i]], ranks[tok[i:]], tok[:i], tok[i:])
            for i in range(1, len(tok))
            if tok[:i] in ranks and tok[i:] in ranks
        ]
        for _, _, left, right in sorted(splits):
            merges.append((rank, to_str(left), to_str(right)))
    merges.sort(key=lambda m: m[0])
    return vocab, [(left, right) for _, left, right in merges]


def build_tokenizer(out_dir: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    ranks = load_bpe_ranks(find_tiktoken_model())
    vocab, merges = vocab_and_merges(ranks)
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in special_tokens()])
    bos_id = tok.token_to_id(BOS)
    # Llama 3.2 prepends <|begin_of_text|> to every encoded text and adds no EOS.
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS}:0 $A:0",
                pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                special_tokens=[(BOS, bos_id)],
            ),
        ]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    # Keep only the files `AutoTokenizer` needs, with stable (sorted) JSON so rebuilds are byte-identical.
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = out_dir / name
        if path.exists():
            data = json.loads(path.read_text())
            if name == "tokenizer_config.json":
                # The class name every transformers release (4.x and 5.x) knows.
                data["tokenizer_class"] = "PreTrainedTokenizerFast"
            path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    copy_notices(out_dir)
    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
    write_manifest(out_dir, [name for name in names if (out_dir / name).exists()])


def write_manifest(folder: Path, names: list[str]) -> None:
    """Write ``SHA256SUMS.json``: the SHA-256 of each data file, so loaders can detect damaged bytes."""
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}
    (folder / MANIFEST).write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")


def copy_notices(out_dir: Path) -> None:
    for name in ("LICENSE_LLAMA_3_2.md", "NOTICE"):
        src = HERE / "notices" / name
        shutil.copyfile(src, out_dir / name)


def read_local_docs(path: Path):
    with path.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            yield doc["id"], doc["text"]


def stream_hub_docs():
    from datasets import load_dataset

    stream = load_dataset("HuggingFaceFW/fineweb", name="default", split="train", streaming=True)
    for i, row in enumerate(stream):
        yield i, row["text"]


def build_tokens(docs, tokenizer_dir: Path, out_dir: Path, num_tokens: int = NUM_TOKENS) -> dict:
    """Encode documents in order (each starts with <|begin_of_text|>) until `num_tokens` are reached."""
    from datasets import Dataset, Features, Sequence, Value
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids, starts, source_ids = [], [], []
    for source_id, text in docs:
        starts.append(len(ids))
        source_ids.append(int(source_id))
        ids.extend(tok(text)["input_ids"])
        if len(ids) >= num_tokens:
            break
    if len(ids) < num_tokens:
        raise SystemExit(f"The documents give only {len(ids):,} tokens; {num_tokens:,} are needed.")
    last_doc_tokens = len(ids) - starts[-1]
    ids = ids[:num_tokens]
    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "document_starts": Sequence(Value("int32")),
            "document_source_ids": Sequence(Value("int32")),
        }
    )
    ds = Dataset.from_dict(
        {"input_ids": [ids], "document_starts": [starts], "document_source_ids": [source_ids]},
        features=features,
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    ds.save_to_disk(str(out_dir))
    # `save_to_disk` writes a random fingerprint into state.json; pin it for byte-identical rebuilds.
    state_path = out_dir / "state.json"
    state = json.loads(state_path.read_text())
    state["_fingerprint"] = "fineweb-llama32-128k-v1"
    state_path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    info = {
        "num_tokens": num_tokens,
        "separator": "every document starts with <|begin_of_text|> (id 128000)",
        "num_documents": len(starts),
        "last_document_truncated_at": num_tokens - starts[-1],
        "last_document_full_length": last_doc_tokens,
        "first_source_id": source_ids[0],
        "last_source_id": source_ids[-1],
        "max_token_id": max(ids),
        "num_distinct_ids": len(set(ids)),
        "source": "HuggingFaceFW/fineweb, config default, split train, streaming order (not sample-10BT)",
    }
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    arrow_files = sorted(p.name for p in out_dir.glob("*.arrow"))
    write_manifest(out_dir, arrow_files + ["dataset_info.json", "state.json"])
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write both resources into")
    parser.add_argument("--docs", type=Path, default=None, help="FineWeb docs.jsonl (default: shared/data/fineweb)")
    parser.add_argument("--from-hub", action="store_true", help="stream FineWeb from the Hugging Face hub")
    parser.add_argument("--skip-tokenizer", action="store_true", help="reuse the tokenizer already in --out")
    args = parser.parse_args(argv)

    tokenizer_dir = args.out / TOKENIZER_DIR
    if not args.skip_tokenizer:
        build_tokenizer(tokenizer_dir)
        print(f"tokenizer -> {tokenizer_dir}")
    if args.from_hub:
        docs = stream_hub_docs()
    else:
        docs_path = args.docs or default_docs_path()
        docs = read_local_docs(docs_path)
    info = build_tokens(docs, tokenizer_dir, args.out / TOKENS_DIR)
    print(f"tokens -> {args.out / TOKENS_DIR}: {json.dumps(info)}")
    return 0


def default_docs_path() -> Path:
    for base in HERE.parents:
        candidate = base / "shared" / "data" / "fineweb" / "docs.jsonl"
        if candidate.exists():
            return candidate
    raise SystemExit(
        "Could not find shared/data/fineweb/docs.jsonl next to the course; pass --docs PATH "
        "or use --from-hub on a machine with internet access."
    )


if __name__ == "__main__":
    sys.exit(main())
