"""course_lib.landscapes (the 2-D loss surfaces of notebook 01): the gradients equal autograd's, and the
three runners follow ``torch.optim.SGD`` / ``SGD(momentum)`` / ``Adam`` step for step (float64, 1e-12 relative)."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from course_lib import landscapes as L


def _autograd(fn, point):
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    value = fn(p)
    value.backward()
    return value.item(), tuple(p.grad.tolist())


@pytest.mark.parametrize("point", [(-1.2, 1.0), (0.3, -2.0), (1.0, 1.0), (2.5, 0.1)])
def test_rosenbrock_gradient_equals_autograd(point):
    value, grad = L.rosenbrock(point)
    ref_value, ref_grad = _autograd(lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2, point)
    assert value == pytest.approx(ref_value, rel=1e-14, abs=1e-14)
    assert grad == pytest.approx(ref_grad, rel=1e-14, abs=1e-12)


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, 1.0])
@pytest.mark.parametrize("point", [(-3.0, 1.0), (0.2, 0.7)])
def test_quadratic_gradient_equals_autograd(point, angle):
    c = torch.tensor([1.0, 100.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]],
                       dtype=torch.float64)
    value, grad = L.quadratic(point, (1.0, 100.0), angle=angle)
    ref_value, ref_grad = _autograd(lambda p: 0.5 * (c * (rot @ p) ** 2).sum(), point)
    assert value == pytest.approx(ref_value, rel=1e-13)
    assert grad == pytest.approx(ref_grad, rel=1e-12, abs=1e-12)


def test_minima_are_where_the_docstrings_say():
    assert L.rosenbrock((1.0, 1.0)) == (0.0, (0.0, 0.0))
    assert L.rosenbrock((2.0, 4.0), a=2.0)[0] == 0.0
    assert L.quadratic((0.0, 0.0), angle=0.3)[0] == 0.0


def _torch_trajectory(make_opt, start, steps):
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make_opt([p])
    out = [tuple(p.tolist())]
    for _ in range(steps):
        opt.zero_grad()
        loss = (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
        loss.backward()
        opt.step()
        out.append(tuple(p.tolist()))
    return out


@pytest.mark.parametrize("method,kwargs,make_opt", [
    ("sgd", {}, lambda ps: torch.optim.SGD(ps, lr=1e-3)),
    ("momentum", dict(momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9)),
    ("adam", dict(betas=(0.9, 0.999)), lambda ps: torch.optim.Adam(ps, lr=3e-2, betas=(0.9, 0.999), foreach=False)),
    ("adam", dict(betas=(0.9, 0.95), eps=1e-6), lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.95), eps=1e-6)),
])
def test_runners_follow_torch_optim_step_for_step(method, kwargs, make_opt):
    lr = make_opt([torch.zeros(1, requires_grad=True)]).param_groups[0]["lr"]
    ours = L.run_optimizer(L.rosenbrock, (-1.2, 1.0), method, lr, 300, **kwargs)
    ref = _torch_trajectory(make_opt, (-1.2, 1.0), 300)
    assert len(ours) == len(ref) == 301
    for a, b in zip(ours, ref):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_divergent_run_stops_at_the_first_non_finite_point():
    path = L.run_optimizer(L.rosenbrock, (-1.2, 1.0), "sgd", 0.1, 1000)
    assert len(path) < 1001 and not all(math.isfinite(v) for v in path[-1])
    assert L.steps_to_within(path, (1.0, 1.0), 1e-3) is None


def test_steps_to_within_is_the_first_step_that_stays_inside():
    path = [(1.0, 0.0), (0.001, 0.0), (0.5, 0.0), (0.01, 0.0), (0.0, 0.0)]
    assert L.steps_to_within(path, (0.0, 0.0), 0.02) == 3  # step 1 was inside but left again
    assert L.steps_to_within(path, (0.0, 0.0), 2.0) == 0
    assert L.steps_to_within(path, (1.0, 0.0), 1e-3) is None


def test_adam_ignores_the_scale_of_the_objective_and_sgd_does_not():
    small = L.run_optimizer(L.quadratic, (-3.0, 1.0), "adam", 0.1, 200)
    big = L.run_optimizer(partial(L.quadratic, curvatures=(100.0, 10000.0)), (-3.0, 1.0), "adam", 0.1, 200)
    assert max(L.distance(a, b) for a, b in zip(small, big)) < 1e-6  # only ε breaks the invariance
    assert L.steps_to_within(L.run_optimizer(partial(L.quadratic, curvatures=(100.0, 10000.0)), (-3.0, 1.0),
                                             "sgd", 0.01, 200), (0.0, 0.0), 1e-3) is None


@pytest.mark.parametrize("call", [
    lambda: L.quadratic((1.0, 2.0), (1.0,)), lambda: L.quadratic((1.0, 2.0), (1.0, -1.0)),
    lambda: L.quadratic((1.0, 2.0, 3.0), (1.0, 1.0, 1.0), angle=0.1), lambda: L.rosenbrock((1.0,)),
    lambda: L.rosenbrock((1.0, float("nan"))), lambda: L.rosenbrock((1.0, 1.0), b=0.0),
    lambda: L.run_optimizer(L.rosenbrock, (0.0, 0.0), "adamw", 1e-3, 10),
    lambda: L.run_optimizer(L.rosenbrock, (0.0, 0.0), "sgd", -1e-3, 10),
    lambda: L.run_optimizer(L.rosenbrock, (0.0, 0.0), "sgd", 1e-3, 2.5),
    lambda: L.run_optimizer(L.rosenbrock, (0.0, 0.0), "momentum", 1e-3, 10, momentum=1.0),
    lambda: L.run_optimizer(L.rosenbrock, (0.0, 0.0), "adam", 1e-3, 10, betas=(0.9, 1.0)),
    lambda: L.steps_to_within([(0.0, 0.0)], (0.0, 0.0), 0.0), lambda: L.steps_to_within([], (0.0, 0.0), 1.0),
    lambda: L.distance((0.0,), (0.0, 0.0)),
])
def test_landscape_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
