"""check_newton_schulz accepts correct Newton–Schulz functions (the notebook's, other dtypes and operation
orders) and rejects typical mistakes; copied answers raise CopiedAnswerError; hints follow the notebook's
language; its tolerances lie between the correct variants and the mistakes."""

import math

import pytest
import torch

from classroom.checks.newton_schulz import NS_BAND, NS_OFF_TOL, NS_REL_TOL, check_newton_schulz, newton_schulz_results
from classroom.checks.originality import CopiedAnswerError
from course_lib.optim import NS_COEFFICIENTS

from ._helpers import HANGUL, MISTAKE_SEEDS, make_ns, notebook_answer, notebook_prose, report


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def notebook_newton_schulz():
    return notebook_answer("02_muon", "newton_schulz", {"QUINTIC": NS_COEFFICIENTS})["newton_schulz"]


def ns_in_place(G, steps=5):
    X = G if G.dtype == torch.float32 else G.float()
    X /= X.norm()  # changes the caller's tensor for float32 input
    return make_ns()(X, steps)


def ns_stub(G, steps=5):
    # YOUR CODE HERE
    raise NotImplementedError()


#: Correct Newton–Schulz functions: the notebook's, float32/float64/bfloat16, three operation orders.
CORRECT_NS = {
    "float32": make_ns(), "float64": make_ns(compute=torch.float64),
    "bf16 grouped (Keller)": make_ns(compute=torch.bfloat16),
    "bf16 addmm (torch)": make_ns(compute=torch.bfloat16, order="addmm"),
    "bf16 expanded": make_ns(compute=torch.bfloat16, order="expanded"),
    "float32 expanded": make_ns(order="expanded"),
}

WRONG_NS = {
    "cubic": make_ns("cubic"), "identity": make_ns("identity"), "no_norm": make_ns("no_norm"),
    "max_norm": make_ns("max_norm"), "spectral_norm": make_ns("spectral_norm"), "steps+1": make_ns("steps_plus_one"),
    "steps-1": make_ns("steps_minus_one"), "fixed_5": make_ns("fixed_5"),
    "no_transpose_back": make_ns("no_transpose_back"),
    "typo_coefficient": make_ns(coefficients=(3.4445, -4.7750, 2.315)),
    "other_coefficients": make_ns(coefficients=(2.0, -1.5, 0.5)),
    "bf16 steps-1": make_ns("steps_minus_one", compute=torch.bfloat16),
}


@pytest.mark.parametrize("name", list(CORRECT_NS))
def test_check_newton_schulz_accepts_correct_variants(name):
    check_newton_schulz(CORRECT_NS[name], verbose=False)


def test_check_newton_schulz_accepts_the_notebook_solution(capsys):
    check_newton_schulz(notebook_newton_schulz())
    assert "all checks passed" in capsys.readouterr().out


def test_check_newton_schulz_stub_fails():
    with pytest.raises(NotImplementedError):
        check_newton_schulz(ns_stub, verbose=False)


@pytest.mark.parametrize("wrong", [*WRONG_NS.values(), ns_in_place, lambda G, steps=5: None],
                         ids=[*WRONG_NS, "in_place", "returns_none"])
def test_check_newton_schulz_rejects(wrong):
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(wrong, verbose=False)
    assert not isinstance(info.value, CopiedAnswerError)


def test_check_newton_schulz_hints_in_korean(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "ko")
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(make_ns("cubic"), verbose=False)
    assert HANGUL.search(str(info.value)) and "상대 오차" in str(info.value)
    monkeypatch.setenv("COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        check_newton_schulz(make_ns("cubic"), verbose=False)
    assert not HANGUL.search(str(info.value)) and "relative error" in str(info.value)


def ns_calls_course_lib(G, steps=5):
    from course_lib import optim

    return optim.newton_schulz(G, steps, dtype=torch.float32)


def ns_calls_torch(G, steps=5):
    from torch.optim._muon import _zeropower_via_newtonschulz

    return _zeropower_via_newtonschulz(G.float(), NS_COEFFICIENTS, steps, 1e-7)


def test_check_newton_schulz_refuses_copied_answers():
    from course_lib.optim import newton_schulz

    for copied in (newton_schulz, ns_calls_course_lib, ns_calls_torch):
        with pytest.raises(CopiedAnswerError):
            check_newton_schulz(copied, verbose=False)


# ---- the notebook's prose describes the checker: the constants it quotes, and that it quotes them


def test_newton_schulz_tolerances_are_what_notebook_02_says():
    assert NS_REL_TOL == 0.12 and NS_BAND == (0.5, 1.5)
    prose = notebook_prose("02_muon")
    assert f"relative error ≤ {NS_REL_TOL:.0%}" in prose["en"]
    assert f"S' between {NS_BAND[0]} and {NS_BAND[1]}" in prose["en"]
    assert f"상대 오차 {NS_REL_TOL:.0%} 이하" in prose["ko"]
    assert f"S'가 {NS_BAND[0]}와 {NS_BAND[1]} 사이" in prose["ko"]


# ---- tolerances from measurement: for each statistic the checker bounds, recompute it over many seeds
# for correct variants and typical mistakes, and assert max(correct) < tolerance < min(mistake).
# The numbers quoted next to the checker's constants are these maxima and minima (run with -s).


def ns_statistics(fn, seeds):
    """(worst relative error, lowest and highest singular value, worst off-diagonal part) over ``seeds``."""
    results = [r for seed in seeds for r in newton_schulz_results(fn, seed)]
    five = [r for r in results if "sv_min" in r]
    return (max(r["rel"] for r in results), min((r["sv_min"] for r in five), default=math.nan),
            max((r["sv_max"] for r in five), default=math.nan), max((r["off"] for r in five), default=math.nan))


def test_newton_schulz_tolerances():
    seeds = range(24)
    correct = [ns_statistics(fn, seeds) for fn in [*CORRECT_NS.values(), notebook_newton_schulz()]]
    # each mistake: its smallest relative error over the seeds; inf when the output is unusable
    mistakes = {name: min(ns_statistics(fn, [seed])[0] for seed in MISTAKE_SEEDS) for name, fn in WRONG_NS.items()}
    print({name: round(v, 3) for name, v in mistakes.items()})
    report("Newton–Schulz relative error", max(c[0] for c in correct), min(mistakes.values()), NS_REL_TOL)
    report("Newton–Schulz off-diagonal part", max(c[3] for c in correct), math.inf, NS_OFF_TOL)
    low, high = min(c[1] for c in correct), max(c[2] for c in correct)
    cubic = ns_statistics(WRONG_NS["cubic"], MISTAKE_SEEDS)
    print(f"singular values: correct {low:.3f}..{high:.3f}, band {NS_BAND}, cubic down to {cubic[1]:.3f}")
    assert cubic[1] < NS_BAND[0] < low and high < NS_BAND[1]
