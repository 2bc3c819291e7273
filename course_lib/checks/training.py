"""Checkers for notebooks 06–08: μP settings, the WSD schedule, gradient accumulation."""

from __future__ import annotations

import torch

from .report import CheckReport

# ---------------------------------------------------------------------------- μP (notebook 06)


def check_mup(settings_fn, attention_scale_fn, verbose: bool = True) -> None:
    """``settings_fn(role, fan_in, width_mult) -> (init_std, lr_multiplier, forward_multiplier)`` and
    ``attention_scale_fn(head_dim, base_head_dim)`` against ``course_lib.mup``'s μP for Adam (which
    tests/test_mup.py checks against Microsoft's ``mup``), then a model built with them against the
    reference model: same initial weights, same logits, same optimizer LRs."""
    from ..mup import WidthScalableTransformer, mup_attention_scale, mup_param_settings

    report = CheckReport("μP init / LR multipliers", verbose)
    hints = {
        "embedding": "embeddings are 'input weights': constant init std 1 and an unscaled Adam LR.",
        "hidden": "hidden matrices: init std 1/√fan_in, Adam LR × 1/width_mult (Adam's update is Θ(1) "
                  "per entry, and fan_in of them add up).",
        "readout": "the readout keeps the base model's init (std = √(width_mult/fan_in) = 1/√base_fan_in), "
                   "an unscaled LR, and multiplies its output by 1/width_mult.",
    }
    for role in ("embedding", "hidden", "readout"):
        for fan_in, mult in ((32, 1.0), (64, 2.0), (256, 8.0), (512, 4.0)):
            got = settings_fn(role, fan_in, mult)
            if got is None or len(tuple(got)) != 3:
                report.fail(f"settings_fn({role!r}, {fan_in}, {mult}) must return 3 numbers, got {got!r}")
                continue
            ref = mup_param_settings(role, fan_in, mult)
            report.compare(f"{role} fan_in={fan_in} m={mult:g}", torch.tensor([float(v) for v in got]),
                           torch.tensor(ref), rtol=1e-6, hint=hints[role])
    for head_dim, base in ((8, 8), (16, 8), (64, 8), (32, 16)):
        report.compare(f"attention scale d={head_dim} base={base}", float(attention_scale_fn(head_dim, base)),
                       mup_attention_scale(head_dim, base), rtol=1e-6,
                       hint="μP scales attention logits by 1/d (not 1/√d), times √base_head_dim so that it "
                            "equals 1/√d at the base width.")
    if not report.failures:
        x = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
        for width in (16, 64):
            torch.manual_seed(0)
            mine = WidthScalableTransformer(64, width, 16, depth=1, n_heads=2, settings_fn=settings_fn,
                                            attention_scale_fn=attention_scale_fn)
            torch.manual_seed(0)
            ref = WidthScalableTransformer(64, width, 16, depth=1, n_heads=2, parametrization="mup")
            with torch.no_grad():
                report.compare(f"logits at width {width}", mine(x), ref(x), atol=1e-6, rtol=1e-5)
            lrs = {n: g["lr"] for g in mine.param_groups(1e-2) for n in g["names"]}
            ref_lrs = {n: g["lr"] for g in ref.param_groups(1e-2) for n in g["names"]}
            report.compare(f"param-group LRs at width {width}", torch.tensor([lrs[n] for n in sorted(lrs)]),
                           torch.tensor([ref_lrs[n] for n in sorted(ref_lrs)]), rtol=1e-6)
    report.finish()


# ---------------------------------------------------------------------------- WSD (notebook 07)

WSD_CASES = [
    dict(warmup_steps=10, stable_steps=50, decay_steps=20, min_ratio=0.1, decay_shape="linear"),
    dict(warmup_steps=5, stable_steps=20, decay_steps=13, min_ratio=0.0, decay_shape="linear"),
    dict(warmup_steps=8, stable_steps=30, decay_steps=17, min_ratio=0.1, decay_shape="cosine"),
    dict(warmup_steps=4, stable_steps=12, decay_steps=25, min_ratio=0.05, decay_shape="1-sqrt"),
    dict(warmup_steps=0, stable_steps=10, decay_steps=10, min_ratio=0.2, decay_shape="linear"),
    dict(warmup_steps=7, stable_steps=0, decay_steps=9, min_ratio=0.1, decay_shape="cosine"),
]


def _reference_wsd(case: dict, steps: int) -> list[float]:
    from transformers import get_wsd_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_wsd_schedule(opt, num_warmup_steps=case["warmup_steps"], num_decay_steps=case["decay_steps"],
                             num_stable_steps=case["stable_steps"], min_lr_ratio=case["min_ratio"],
                             warmup_type="linear", decay_type=case["decay_shape"])
    return [sched.lr_lambdas[0](s) for s in range(steps)]


def check_wsd_schedule(fn, verbose: bool = True) -> None:
    """``fn(step, warmup_steps, stable_steps, decay_steps, min_ratio, decay_shape)`` (the LR multiplier)
    against ``transformers.get_wsd_schedule(warmup_type="linear")`` at every step of several runs,
    including 10 steps past the end. Tolerance: 1e-12 absolute (both are float64 arithmetic)."""
    report = CheckReport("WSD schedule", verbose)
    for case in WSD_CASES:
        end = case["warmup_steps"] + case["stable_steps"] + case["decay_steps"]
        steps = end + 10
        ref = _reference_wsd(case, steps)
        try:
            mine = [float(fn(s, **case)) for s in range(steps)]
        except (TypeError, ValueError) as err:
            report.fail(f"fn raised {type(err).__name__}: {err} for {case}")
            continue
        name = f"w{case['warmup_steps']}/s{case['stable_steps']}/d{case['decay_steps']} {case['decay_shape']}"
        if not report.compare(name, torch.tensor(mine, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64),
                              atol=1e-12):
            bad = next(s for s in range(steps) if abs(mine[s] - ref[s]) > 1e-12)
            w, st = case["warmup_steps"], case["stable_steps"]
            phase = ("warmup (it starts at min_ratio at step 0 and reaches 1 at step warmup_steps)" if bad < w else
                     "stable phase (1.0 for steps warmup_steps … warmup_steps+stable_steps−1)" if bad < w + st else
                     "decay (progress = (step − warmup − stable)/decay_steps; min_ratio + (1 − min_ratio)·shape)"
                     if bad < end else "after the end (stay at min_ratio)")
            report.fail(f"{name}: first wrong value at step {bad}: {mine[bad]:.6f} instead of {ref[bad]:.6f}, "
                        f"in the {phase}.")
    report.finish()


# ---------------------------------------------------------------------------- accumulation (notebook 08)


def _tiny_model(seed: int):
    from ..models import TransformerConfig, TransformerForCausalLM

    torch.manual_seed(seed)
    return TransformerForCausalLM(TransformerConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                                    num_hidden_layers=1, num_attention_heads=2,
                                                    num_key_value_heads=1, max_position_embeddings=16))


def _micro_batches(k: int, rows: int, seq: int, masked: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(k):
        ids = torch.randint(0, 50, (rows, seq), generator=g)
        labels = ids.clone()
        if masked:  # a different number of ignored targets in every micro-batch (padding)
            labels[:, seq - 2 - 3 * i:] = -100
        out.append((ids, labels))
    return out


def check_grad_accumulation(fn, verbose: bool = True) -> None:
    """``fn(model, optimizer, micro_batches, clip_norm)`` (zero the gradients, accumulate over the
    micro-batches, clip once, step once, leave the gradients in ``p.grad``, return the mean loss)
    against one step on the concatenated batch: gradients, loss and updated weights, for SGD and
    AdamW, k = 1, 2, 4, with and without clipping and masked (-100) labels. fp32 tolerance:
    atol 1e-6, rtol 1e-4 (the sums are added in a different order)."""
    report = CheckReport("gradient accumulation", verbose)
    cases = [
        dict(k=2, masked=False, clip=None, opt="sgd"),
        dict(k=4, masked=False, clip=None, opt="sgd"),
        dict(k=1, masked=False, clip=None, opt="sgd"),
        dict(k=3, masked=True, clip=None, opt="sgd"),
        dict(k=2, masked=False, clip=0.05, opt="sgd"),
        dict(k=4, masked=True, clip=0.05, opt="adamw"),
    ]
    for i, case in enumerate(cases):
        name = f"k={case['k']} masked={case['masked']} clip={case['clip']} {case['opt']}"
        micro = _micro_batches(case["k"], 2, 12, case["masked"], seed=100 + i)
        ref_model, model = _tiny_model(i), _tiny_model(i)

        def make_opt(m):
            if case["opt"] == "sgd":
                return torch.optim.SGD(m.parameters(), lr=0.5)
            return torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)

        ref_opt, opt = make_opt(ref_model), make_opt(model)
        # reference: one step on the concatenated batch
        ids = torch.cat([b for b, _ in micro])
        labels = torch.cat([lab for _, lab in micro])
        ref_opt.zero_grad()
        ref_loss = ref_model(ids, labels=labels, return_logits=False).loss
        ref_loss.backward()
        if case["clip"]:
            torch.nn.utils.clip_grad_norm_(ref_model.parameters(), case["clip"])
        ref_opt.step()
        # the student's step, starting from stale gradients that must be cleared first
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.3)
        loss = fn(model, opt, micro, case["clip"])
        if loss is None:
            report.fail(f"{name}: return the mean loss of the accumulated batch (a float), not None")
            continue
        loss = float(loss.detach() if torch.is_tensor(loss) else loss)
        report.compare(f"{name}: loss", loss, ref_loss.item(), atol=1e-6, rtol=1e-5,
                       hint="the returned loss must be the token-weighted mean over all micro-batches "
                            "(a plain float, e.g. via .item()).")
        grads = [p.grad for p in model.parameters()]
        if any(g is None for g in grads):
            report.fail(f"{name}: a gradient is None after your step; leave the accumulated gradients in "
                        "p.grad (do not zero them after optimizer.step()).")
            continue
        report.compare(f"{name}: gradients", torch.cat([g.reshape(-1) for g in grads]),
                       torch.cat([p.grad.reshape(-1) for p in ref_model.parameters()]), atol=1e-6, rtol=1e-4,
                       hint="weight each micro-batch's mean loss by its share of target tokens "
                            "(count_target_tokens(labels) / total; 1/k when all are equal), zero the gradients "
                            "once before the loop, and clip once after it.")
        report.compare(f"{name}: weights after step", torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
                       torch.cat([p.detach().reshape(-1) for p in ref_model.parameters()]), atol=1e-6, rtol=1e-4,
                       hint="call optimizer.step() exactly once, after all micro-batches.")
    report.finish()
