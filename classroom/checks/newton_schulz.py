"""Checker for the Newton–Schulz exercise of notebook 02.

``check_newton_schulz(fn)``: the student's quintic Newton–Schulz next to ``course_lib.optim.newton_schulz``
in float32 and next to the exact polar factor U·Vᵀ from an SVD, on square, tall and wide matrices, float32
and bfloat16 inputs, 2, 3 and 5 steps.

It prints a ``CheckReport`` and raises ``AssertionError`` with a hint in the notebook's language.
A copied answer raises ``CopiedAnswerError`` and an unfinished exercise ``NotImplementedError``, both
unchanged; any other exception from the student's code becomes an ``AssertionError`` that names it.
"""

from __future__ import annotations

import math

import torch

from course_lib.optim import NS_COEFFICIENTS, newton_schulz
from .i18n import case_name, tr
from .originality import call_student, refuse_reference
from .report import CheckReport

#: Relative Frobenius error allowed against the float32 reference (``newton_schulz_results``, worst case).
#: Measured over 24 seeds: correct variants (float32, float64, bfloat16 in torch's, Keller Jordan's and a
#: third operation order, the notebook's solution) reach at most 0.046 (bfloat16); the closest mistake
#: 0.28 (normalising by the spectral norm), one step more or fewer 0.47, the cubic 0.62.
NS_REL_TOL = 0.12
#: Where the singular values of the quintic's output must land after 5 steps, and the largest
#: off-diagonal part in G's SVD basis (relative). Correct variants: 0.671–1.148, off-diagonal ≤ 0.032
#: (bfloat16); the cubic leaves values down to 0.18, no normalisation gives inf (measured, 24 seeds).
NS_BAND = (0.5, 1.5)
NS_OFF_TOL = NS_REL_TOL

NS_CASES = [("square 24x24", (24, 24), torch.float32, 5), ("tall 48x16", (48, 16), torch.float32, 5),
            ("wide 16x40", (16, 40), torch.float32, 5), ("tall 40x24 bf16", (40, 24), torch.bfloat16, 5),
            ("wide 8x32 bf16", (8, 32), torch.bfloat16, 5), ("tall 32x12, steps=2", (32, 12), torch.float32, 2),
            ("wide 12x30, steps=3", (12, 30), torch.float32, 3)]


def _spectrum_matrix(rows, cols, gen, low=0.05):
    """U·diag(s)·Vᵀ with singular values log-spaced in [low, 1]: full rank, known condition number."""
    k = min(rows, cols)
    U, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.logspace(math.log10(low), 0, k, dtype=torch.float64)
    return (U * s) @ V.T


def newton_schulz_results(fn, seed: int = 7) -> list[dict]:
    """Run ``fn(G, steps=...)`` on every case of ``NS_CASES``. Per case: ``problem`` (a message, or None),
    ``rel`` (relative error vs the float32 reference) and, after 5 steps, the singular values in G's SVD
    basis (``sv_min``, ``sv_max``) and the off-diagonal part ``off``: the statistics the tolerances bound."""
    gen = torch.Generator().manual_seed(seed)
    results = []
    for name, shape, dtype, steps in NS_CASES:
        # scaled by 10: the input's spectral norm is far above 1, so skipping the normalisation shows
        G = (10 * _spectrum_matrix(*shape, gen)).to(dtype)
        G_before = G.clone()
        out = call_student("newton_schulz",
                           tr(f"your function on {case_name(name)}", f"여러분의 함수({case_name(name)})"),
                           lambda: fn(G, steps=steps))
        result = dict(name=name, steps=steps, problem=None, rel=math.inf)
        results.append(result)
        if not torch.equal(G, G_before):
            result["problem"] = tr(f"[{name}] your function changed its input in place; work on a copy "
                                   "(X = G.float() / …).",
                                   f"[{case_name(name)}] 함수가 입력을 제자리에서 바꿨습니다. "
                                   "복사본으로 계산하세요(X = G.float() / …).")
        if out is None or not torch.is_tensor(out):
            result["problem"] = tr(f"[{name}] your function returned {type(out).__name__}, not a tensor.",
                                   f"[{case_name(name)}] 함수가 텐서가 아니라 {type(out).__name__}을(를) 돌려줬습니다.")
            continue
        if tuple(out.shape) != tuple(shape):
            result["problem"] = tr(
                f"[{name}] output shape {tuple(out.shape)}, input shape {tuple(shape)}: if you transpose a tall "
                "matrix to work on the small Gram matrix, transpose the result back.",
                f"[{case_name(name)}] 출력 모양 {tuple(out.shape)}, 입력 모양 {tuple(shape)}. 작은 그람 행렬로 "
                "계산하려고 세로로 긴 행렬을 전치했다면 결과를 다시 전치하세요.")
            continue
        out32 = out.detach().float()
        if not torch.isfinite(out32).all():
            result["problem"] = tr(
                f"[{name}] output has inf/nan: divide G by its Frobenius norm first, so every singular value is "
                "≤ 1 (the iteration diverges above about 1.5).",
                f"[{case_name(name)}] 출력에 inf/nan이 있습니다. 먼저 G를 프로베니우스 노름으로 나눠 모든 "
                "특잇값이 1 이하가 되게 하세요(특잇값이 1.5쯤을 넘으면 반복이 발산합니다).")
            continue
        reference = newton_schulz(G.float(), steps, dtype=torch.float32)
        result["rel"] = float((out32 - reference).norm() / reference.norm())
        if steps == 5:
            # The exact polar factor: same singular vectors, singular values 1. Measure the student's
            # output in the SVD basis of G: Uᵀ·O·V must be diagonal with entries in the band.
            U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
            core = U.T @ out32.double() @ Vh.T
            diag = torch.diagonal(core)
            result.update(sv_min=float(diag.min()), sv_max=float(diag.max()),
                          off=float((core - torch.diag(diag)).norm() / diag.norm()))
    return results


def check_newton_schulz(fn, verbose: bool = True) -> None:
    """Check ``fn(G, steps=...)``: same shape, ≈ course_lib's quintic iteration in float32 (``NS_REL_TOL``),
    singular vectors of the exact polar factor U·Vᵀ and singular values in ``NS_BAND`` (after 5 steps)."""
    refuse_reference(fn, "newton_schulz")
    report = CheckReport(tr("check_newton_schulz: your Newton–Schulz vs the float32 reference and the SVD",
                            "check_newton_schulz: 여러분의 Newton–Schulz와 float32 참조 구현, SVD 비교"),
                         verbose=verbose)
    for r in newton_schulz_results(fn):
        name, steps = r["name"], r["steps"]
        if r["problem"]:
            report.fail(r["problem"])
            if not math.isfinite(r["rel"]):
                continue
        if verbose:
            print(tr(f"{name:<28s} | relative error vs float32 reference: {r['rel']:.2e} (allowed {NS_REL_TOL})",
                     f"{name:<28s} | float32 참조 구현 대비 상대 오차: {r['rel']:.2e} (허용 {NS_REL_TOL})"))
        if r["rel"] > NS_REL_TOL:
            report.fail(tr(
                f"[{name}] relative error {r['rel']:.3f} vs the reference quintic iteration (allowed {NS_REL_TOL}). "
                f"Check: normalise by the Frobenius norm G.norm(); coefficients (a, b, c) = {NS_COEFFICIENTS}; "
                f"X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ; exactly `steps` iterations (steps={steps} here).",
                f"[{case_name(name)}] 참조 5차 반복과의 상대 오차가 {r['rel']:.3f}입니다(허용 {NS_REL_TOL}). "
                "확인할 것: "
                f"프로베니우스 노름 G.norm()으로 나누기, 계수 (a, b, c) = {NS_COEFFICIENTS}, A = X·Xᵀ일 때 "
                f"X ← a·X + (b·A + c·A²)·X, 반복은 정확히 `steps`번(여기서는 steps={steps})."))
        if "sv_min" in r:
            lo, hi, off = r["sv_min"], r["sv_max"], r["off"]
            if verbose:
                print(tr(f"{'':<28s} | singular values in SVD basis: {lo:.3f}..{hi:.3f} | off-diagonal part: {off:.1e}",
                         f"{'':<28s} | SVD 기저에서 본 특잇값: {lo:.3f}..{hi:.3f} | 비대각 성분: {off:.1e}"))
            if off > NS_OFF_TOL or not (NS_BAND[0] <= lo and hi <= NS_BAND[1]):
                report.fail(tr(
                    f"[{name}] after 5 steps the output should be ≈ U·S'·Vᵀ with S' in {NS_BAND}; got "
                    f"{lo:.3f}..{hi:.3f} (off-diagonal {off:.2f}). The cubic iteration or a missing normalisation "
                    "leaves small singular values too small.",
                    f"[{case_name(name)}] 5스텝 뒤의 출력은 S'가 {NS_BAND} 안에 있는 U·S'·Vᵀ에 가까워야 하는데, "
                    f"{lo:.3f}..{hi:.3f}(비대각 {off:.2f})가 나왔습니다. 3차 반복을 쓰거나 정규화를 빠뜨리면 작은 "
                    "특잇값이 충분히 커지지 않습니다."))
    report.finish()
