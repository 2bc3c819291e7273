"""Checkers for notebooks 04 (dynamic loss scaling) and 05 (block-wise FP8 quantization)."""

from __future__ import annotations

import math

import torch

from ..precision import dequantize_blockwise, quantize_blockwise
from .report import CheckReport

# (init_scale, growth_factor, backoff_factor, growth_interval, steps, steps whose gradients overflow)
SCALER_CASES = [
    (2.0 ** 16, 2.0, 0.5, 3, 16, {2, 3, 7, 8, 9, 13}),
    (1024.0, 2.0, 0.25, 2, 14, {0, 5, 6, 10}),
    (8.0, 4.0, 0.5, 1, 10, {3, 4, 8}),
    (2.0 ** 10, 2.0, 0.5, 4, 18, {4, 9, 10, 11}),
]


class _CountingSGD(torch.optim.SGD):
    """SGD that counts how often ``step`` runs (to see which steps a scaler skipped)."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)


def _scripted_run(make_scaler, scale_loss, do_step, get_scale, case, seed=0):
    """Run a 3-parameter model for ``steps`` steps; at the listed steps one gradient entry is set to
    inf after backward. Returns per-step (scale after the step, stepped, parameters)."""
    init, growth, backoff, interval, steps, overflow = case
    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(3, generator=gen))
    opt = _CountingSGD([w], lr=0.05)
    scaler = make_scaler(init, growth, backoff, interval)
    scales, stepped, params = [], [], []
    for i in range(steps):
        x = torch.randn(3, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = ((w * x).sum() - 1.0) ** 2
        scale_loss(scaler, loss).backward()
        if i in overflow:
            w.grad[i % 3] = math.inf
        before = opt.calls
        do_step(scaler, opt)
        scales.append(float(get_scale(scaler)))
        stepped.append(opt.calls > before)
        params.append(w.detach().clone())
    return scales, stepped, params


def _torch_run(case):
    def make(init, growth, backoff, interval):
        return torch.amp.GradScaler("cpu", init_scale=init, growth_factor=growth, backoff_factor=backoff,
                                    growth_interval=interval)

    def do_step(scaler, opt):
        scaler.step(opt)
        scaler.update()

    return _scripted_run(make, lambda s, loss: s.scale(loss), do_step, lambda s: s.get_scale(), case)


def check_loss_scaler(scaler_cls, verbose: bool = True) -> None:
    """Compare a loss-scaler class with ``torch.amp.GradScaler("cpu")`` on scripted runs with overflows.

    Contract: ``scaler_cls(init_scale, growth_factor, backoff_factor, growth_interval)`` has a float
    attribute ``scale``, ``scale_loss(loss)`` and ``step(optimizer) -> bool`` that unscales the
    gradients, skips the optimizer step on inf/NaN, updates the scale, and returns whether it stepped.
    """
    report = CheckReport("dynamic loss scaler vs torch.amp.GradScaler", verbose)
    for k, case in enumerate(SCALER_CASES):
        init, growth, backoff, interval, steps, overflow = case
        ref_scales, ref_stepped, ref_params = _torch_run(case)
        try:
            scales, stepped, params = _scripted_run(
                lambda *a: scaler_cls(init_scale=a[0], growth_factor=a[1], backoff_factor=a[2], growth_interval=a[3]),
                lambda s, loss: s.scale_loss(loss),
                lambda s, opt: s.step(opt),
                lambda s: s.scale,
                case,
            )
        except NotImplementedError:
            raise
        except Exception as err:  # a crash is a wrong answer, reported like one
            report.fail(f"case {k}: your scaler raised {type(err).__name__}: {err}")
            continue
        tag = f"case {k} (interval {interval}, overflow at {sorted(overflow)})"
        if stepped != ref_stepped:
            first = next(i for i, (a, b) in enumerate(zip(stepped, ref_stepped)) if a != b)
            report.fail(f"{tag}: step {first} {'ran' if stepped[first] else 'was skipped'} but GradScaler "
                        f"{'ran' if ref_stepped[first] else 'skipped'} it. Skip exactly the steps whose "
                        "unscaled gradients contain inf/NaN.")
        elif verbose:
            print(f"{tag + ': skip decisions':<28s} | exact: True  | skipped steps {[i for i, s in enumerate(stepped) if not s]}")
        report.compare(f"case {k}: scale sequence", torch.tensor(scales, dtype=torch.float64),
                       torch.tensor(ref_scales, dtype=torch.float64), rtol=1e-12,
                       hint=f"GradScaler gives {ref_scales}, you gave {scales}. Back off on overflow and reset "
                            "the good-step counter; grow after exactly growth_interval good steps in a row.")
        report.compare(f"case {k}: parameters", torch.stack(params), torch.stack(ref_params), atol=1e-6, rtol=1e-5,
                       hint="the update uses the gradients divided by the scale the loss was multiplied "
                            "by (the scale before this step's update).")
    report.finish()


def _blockwise_cases():
    gen = torch.Generator().manual_seed(5)
    big = torch.randn(256, 384, generator=gen)
    big[7, 300] = 80.0  # an outlier in one block
    ragged = torch.randn(130, 200, generator=gen) * 3
    zero_block = torch.randn(256, 256, generator=gen)
    zero_block[:128, 128:] = 0.0
    tiles = torch.randn(4, 300, generator=gen) * torch.logspace(-2, 2, 4).unsqueeze(1)
    rect = torch.randn(64, 48, generator=gen) * torch.logspace(-1, 1, 48)
    return [
        ("256×384, outlier, 128×128, E4M3", big, (128, 128), torch.float8_e4m3fn),
        ("130×200 ragged, 128×128, E4M3", ragged, (128, 128), torch.float8_e4m3fn),
        ("zero block, 128×128, E4M3", zero_block, (128, 128), torch.float8_e4m3fn),
        ("4×300 tiles 1×128, E4M3", tiles, (1, 128), torch.float8_e4m3fn),
        ("64×48, 16×32 blocks, E5M2", rect, (16, 32), torch.float8_e5m2),
        ("130×200 ragged, 1×128, E5M2", ragged, (1, 128), torch.float8_e5m2),
    ]


def check_blockwise_quant(quantize_fn, dequantize_fn=None, verbose: bool = True) -> None:
    """Compare ``quantize_fn(x, block, dtype) -> (q, scales)`` (and ``dequantize_fn(q, scales, block)``
    if given) with ``course_lib.precision.quantize_blockwise`` / ``dequantize_blockwise``.

    Contract: ``scales`` has shape (ceil(R/br), ceil(C/bc)), scale = max(amax of block, 1e-12) / fp8 max;
    ``q = (x / scale).clamp(±fp8 max)`` cast to ``dtype``; edge blocks may be partial.
    """
    report = CheckReport("block-wise quantization", verbose)
    for name, x, block, dtype in _blockwise_cases():
        ref_q, ref_s = quantize_blockwise(x, block, dtype)
        try:
            out = quantize_fn(x.clone(), block=block, dtype=dtype)
            q, scales = out
        except NotImplementedError:
            raise
        except Exception as err:
            report.fail(f"{name}: quantize raised {type(err).__name__}: {err}. Partial edge blocks must work "
                        "(their amax is taken over the elements that exist).")
            continue
        if not isinstance(q, torch.Tensor) or q.dtype != dtype:
            report.fail(f"{name}: q must be a tensor of dtype {dtype}, got {getattr(q, 'dtype', type(q))}")
            continue
        if not report.compare(f"{name}: scales", scales, ref_s, rtol=1e-6,
                              hint=f"expected shape {tuple(ref_s.shape)} = (ceil(rows/{block[0]}), ceil(cols/"
                                   f"{block[1]})) and scale = amax / {torch.finfo(dtype).max:g} per block "
                                   "(an all-zero block uses amax = 1e-12)."):
            continue
        qf, rf = q.float(), ref_q.float()
        if not bool(torch.isfinite(qf).all()):
            report.fail(f"{name}: q contains NaN or inf (a zero block divided by a zero scale?)")
            continue
        mismatch = float((qf != rf).float().mean())
        near = bool(torch.allclose(qf, rf, rtol=2.0 ** -2, atol=float(torch.finfo(dtype).smallest_normal)))
        if mismatch > 1e-3 or not near:
            report.fail(f"{name}: {mismatch:.1%} of q differ from the reference (q = x / scale of its block, "
                        "clamped to ±fp8 max, then cast)")
        elif verbose:
            print(f"{name + ': q':<28s} | exact: {str(mismatch == 0):5s} | close: True  | differing: {mismatch:.2%}")
        if dequantize_fn is not None:
            try:
                back = dequantize_fn(ref_q, ref_s, block=block)
            except NotImplementedError:
                raise
            except Exception as err:
                report.fail(f"{name}: dequantize raised {type(err).__name__}: {err}")
                continue
            report.compare(f"{name}: dequantized", back, dequantize_blockwise(ref_q, ref_s, block), rtol=1e-6,
                           hint="dequantize multiplies q (as fp32) by the scale of its block.")
    report.finish()
