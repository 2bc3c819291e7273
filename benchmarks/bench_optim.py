"""Optimizer step time: course_lib vs torch.optim on the capstone model's parameters.

    python benchmarks/bench_optim.py                 # compact vocabulary, 30 repeats
    python benchmarks/bench_optim.py --repeats 100 --full-vocab

Fake gradients (fixed random tensors), median wall time of ``--repeats`` steps after one warm-up step,
the two optimizers of a row stepping in turn. Prints a markdown table; the ratio column is
course_lib / torch (target ≤ 1.1 against torch's foreach AdamW and torch.optim.Muon).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from course_lib.models import TransformerConfig, TransformerForCausalLM
from course_lib.optim import AdamW, Muon, split_params_for_muon


def capstone_params(vocab_size: int):
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = TransformerForCausalLM(config)
    return list(model.parameters()), split_params_for_muon(model)[0]


def paired_median_ms(make_ours, make_ref, params, repeats: int) -> tuple[float, float]:
    """Median step time (ms) of two optimizers on copies of the same parameters and gradients, their
    steps interleaved (ours, ref, ours, ref, ...) so that a busy machine slows both alike."""
    def setup(make):
        ps = [p.detach().clone().requires_grad_() for p in params]
        gen = torch.Generator().manual_seed(0)
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        opt = make(ps)
        opt.step()  # warm-up, creates the state
        return opt

    optimizers = (setup(make_ours), setup(make_ref))
    times = ([], [])
    for _ in range(repeats):
        for opt, bucket in zip(optimizers, times):
            start = time.perf_counter()
            opt.step()
            bucket.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def compact_vocab_size() -> int:
    from course_lib.data import VocabMap, load_token_resource

    return VocabMap.from_tokens(load_token_resource().tokens).size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per configuration (median is reported)")
    parser.add_argument("--full-vocab", action="store_true", help="also time AdamW with the full 128,256-id vocabulary")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    vocabs = [("compact", compact_vocab_size())] + ([("full", 128_256)] if args.full_vocab else [])
    rows = []
    for label, vocab in vocabs:
        params, hidden = capstone_params(vocab)
        n, n_hidden = sum(p.numel() for p in params), sum(p.numel() for p in hidden)
        where = f"{label} vocab ({vocab:,}), all {len(params)} tensors, {n:,} params"
        pairs = [
            ("AdamW foreach", lambda ps: AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True),
             "torch AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True),
             params, where),
            ("AdamW for-loop (teaching)", lambda ps: AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=False),
             "torch AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True),
             params, where),
            ("AdamW for-loop (teaching)", lambda ps: AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=False),
             "torch AdamW for-loop", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=False),
             params, where),
            # for information: torch's fused kernel (one pass over memory), which the capstone uses
            ("AdamW foreach", lambda ps: AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True),
             "torch AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, fused=True),
             params, where),
        ]
        if label == "compact":
            pairs.append(("Muon", lambda ps: Muon(ps, lr=0.02, weight_decay=0.1),
                          "torch Muon", lambda ps: torch.optim.Muon(ps, lr=0.02, weight_decay=0.1), hidden,
                          f"{len(hidden)} hidden matrices, {n_hidden:,} params"))
        for ours_name, ours, ref_name, ref, ps, desc in pairs:
            t_ours, t_ref = paired_median_ms(ours, ref, ps, args.repeats)
            rows.append((desc, ours_name, t_ours, ref_name, t_ref, t_ours / t_ref))

    print(f"torch {torch.__version__} | {platform.processor() or platform.machine()} | "
          f"{torch.get_num_threads()} threads | median of {args.repeats} steps, fake gradients\n")
    print("| parameters | course_lib | ms/step | torch | ms/step | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for desc, ours_name, t_ours, ref_name, t_ref, ratio in rows:
        print(f"| {desc} | {ours_name} | {t_ours:.1f} | {ref_name} | {t_ref:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
