"""The tolerances of the optimizer checkers come from measurement: for each statistic a checker bounds,
recompute it over many seeds for correct variants and for typical mistakes, and assert
max(correct) < tolerance < min(mistake). The numbers quoted next to the constants are these maxima and
minima (run with ``-s`` to see them)."""

import math

import pytest
import torch

from course_lib.checks.lion import LION_CASES, LION_TOL, lion_run
from course_lib.checks.optim import (ADAMW_CASES, ADAMW_PROBE_TOL, ADAMW_TOL, MUON_CASES, MUON_REL_TOL, NS_BAND,
                                     NS_OFF_TOL, NS_REL_TOL, adamw_probe_statistics, adamw_run, muon_step_difference,
                                     newton_schulz_results)

from .test_checks_lion import LION_BUGS, make_lion, notebook_lion
from .test_checks_optim import (ADAMW_BUGS, CORRECT_MUONS, CORRECT_NS, MUON_BUGS, WRONG_NS, ForeachAdamW, make_adamw,
                                make_muon, notebook_adamw, notebook_muon, notebook_newton_schulz)

SEEDS = range(20)  # correct variants: the largest value matters, so many seeds
MISTAKE_SEEDS = range(5)  # mistakes are systematic: their smallest value hardly moves with the seed


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def report(name, correct, mistake, tol):
    print(f"{name}: correct variants at most {correct:.3g}, closest mistake {mistake:.3g}, tolerance {tol:.3g}")
    assert correct < tol < mistake


# ------------------------------------------------------------------------------------------ AdamW

CORRECT_ADAMWS = {**{f"{d}, {f}": make_adamw(d, f) for d in ("before", "after") for f in ("textbook", "efficient")},
                  "foreach": ForeachAdamW}

#: Which probe statistic names each mistake (the probe of the part it gets wrong).
PROBE_STAT = {"moments": "residual", "sign": "scale", "bias_correction": "scale", "eps": "eps", "state": "state",
              "decay": "decay", "dtype": "dtype", "groups": "groups"}
SCALE_MISTAKES = {"m_without_one_minus_beta"}  # a moments mistake seen in the step's size, not its direction


def test_adamw_probe_tolerance():
    correct = dict(CORRECT_ADAMWS, notebook=notebook_adamw())
    worst = max(v for cls in correct.values() for seed in SEEDS
                for v in adamw_probe_statistics(cls, seed)["stats"].values())
    # a float32 state must pass every probe but the dtype probe (which names it)
    float32_state = max(v for seed in SEEDS for k, v in adamw_probe_statistics(make_adamw(bug="state_float32"),
                                                                               seed)["stats"].items() if k != "dtype")
    closest = math.inf
    for bug, part in ADAMW_BUGS.items():
        key = "scale" if bug in SCALE_MISTAKES else PROBE_STAT[part]
        for seed in MISTAKE_SEEDS:
            closest = min(closest, adamw_probe_statistics(make_adamw("after", "efficient", bug), seed)["stats"][key])
    report("AdamW probes", max(worst, float32_state), closest, ADAMW_PROBE_TOL)


#: Mistakes the long runs cannot see in one dtype by design: the float64 cases have one group each, the
#: float32 cases a small ε (so ε inside the square root changes nothing) and a float32 state is no mistake
#: for float32 parameters.
NOT_IN = {torch.float64: {"defaults_not_group"}, torch.float32: {"state_float32", "eps_in_sqrt"}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_adamw_run_tolerance(dtype):
    cases = [c for c in ADAMW_CASES if c["dtype"] == dtype]
    correct = dict(CORRECT_ADAMWS, notebook=notebook_adamw())
    worst = max(adamw_run(cls, case, seed)[0] for cls in correct.values() for case in cases for seed in SEEDS)
    closest = math.inf
    for bug in ADAMW_BUGS:
        if bug in NOT_IN[dtype] or bug in ("no_grad_gets_state", "step_from_zero"):  # state check / crash
            continue
        for seed in MISTAKE_SEEDS:
            closest = min(closest, max(adamw_run(make_adamw("after", "efficient", bug), c, seed)[0] for c in cases))
    report(f"AdamW runs ({dtype})", worst, closest, ADAMW_TOL[dtype])


# ------------------------------------------------------------------------------- Newton–Schulz


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


# ------------------------------------------------------------------------------------------- Muon


def test_muon_tolerance():
    seeds = range(24)
    correct = dict(CORRECT_MUONS, notebook=notebook_muon())
    worst = max(muon_step_difference(cls, case, seed)["worst"]
                for cls in correct.values() for case in MUON_CASES for seed in seeds)
    closest = min(max(muon_step_difference(make_muon(bug), case, seed)["worst"] for case in MUON_CASES)
                  for bug in MUON_BUGS for seed in MISTAKE_SEEDS)
    report("Muon step difference", worst, closest, MUON_REL_TOL)


# ------------------------------------------------------------------------------------------- Lion

#: Mistakes that the parameters cannot show in one dtype by design: sign(0) only matters where the
#: interpolation is exactly 0 (the float64 case with a zero first gradient), two groups are only in a
#: float64 case, and a state for a frozen parameter is caught by the state check, not by a difference.
LION_NOT_IN = {torch.float32: {"sign_zero_is_minus", "defaults_not_group", "no_grad_gets_state"},
               torch.float64: {"no_grad_gets_state"}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_lion_tolerance(dtype):
    cases = [c for c in LION_CASES if c["dtype"] == dtype]
    correct = [make_lion(form) for form in ("mul_add", "lerp", "sub_decay")] + [notebook_lion()]
    worst = max(lion_run(cls, case, seed)["diff"] for cls in correct for case in cases for seed in SEEDS)
    closest = min(max(lion_run(make_lion(bug=bug), case, seed)["diff"] for case in cases)
                  for bug in LION_BUGS if bug not in LION_NOT_IN[dtype] for seed in MISTAKE_SEEDS)
    report(f"Lion ({dtype})", worst, closest, LION_TOL[dtype])
