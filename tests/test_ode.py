"""Euler and Heun against closed-form solutions and their known orders of accuracy."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sbgm_edu.ode import euler, euler_step, heun, heun_step


def linear_field(x: torch.Tensor, t: float) -> torch.Tensor:
    """dx/dt = cos(t) x, solved by x(t) = x(0) exp(sin t)."""
    return math.cos(t) * x


def exact_linear(x0: torch.Tensor, t: float) -> torch.Tensor:
    return x0 * math.exp(math.sin(t))


def fitted_order(solver, steps_list=(10, 20, 40, 80, 160)) -> float:
    """Slope of log(global error at t = 2) against log(step size), by least squares."""
    x0 = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    errors, hs = [], []
    for n in steps_list:
        ts = torch.linspace(0.0, 2.0, n + 1, dtype=torch.float64)
        err = (solver(linear_field, x0, ts) - exact_linear(x0, 2.0)).abs().max().item()
        errors.append(err)
        hs.append(2.0 / n)
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


def test_euler_is_first_order():
    # Asymptotically the error is C h + O(h^2); over h in [1/80, 1/5] the fitted slope is within 0.1 of 1.
    assert fitted_order(euler) == pytest.approx(1.0, abs=0.1)


def test_heun_is_second_order():
    assert fitted_order(heun) == pytest.approx(2.0, abs=0.1)


def test_euler_step_on_exponential_matches_the_power_formula():
    # dx/dt = lam x: n Euler steps of size h give (1 + lam h)^n x0 exactly (independent closed form).
    lam, n, x0 = -1.3, 7, torch.tensor([[2.0]], dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
    got = euler(lambda x, t: lam * x, x0, ts)
    assert got.item() == pytest.approx(2.0 * (1 + lam / n) ** n, rel=1e-12)


def test_heun_step_on_exponential_matches_the_taylor_polynomial():
    # Heun on dx/dt = lam x multiplies by 1 + lam h + (lam h)^2 / 2 per step.
    lam, h = 0.7, 0.1
    x = torch.tensor([[1.5]], dtype=torch.float64)
    got = heun_step(lambda x, t: lam * x, x, 0.0, h)
    assert got.item() == pytest.approx(1.5 * (1 + lam * h + (lam * h) ** 2 / 2), rel=1e-12)


def test_reverse_time_euler_is_the_explicit_scheme_run_backwards():
    # One step from t = 1 to t = 0.9 uses the slope at the START (t = 1), not at the end:
    # x(0.9) = x(1) - 0.1 f(x(1), 1). The implicit backward Euler would solve x = x1 - 0.1 f(x, 0.9).
    f = lambda x, t: t * x  # noqa: E731
    x1 = torch.tensor([[1.0]], dtype=torch.float64)
    got = euler(f, x1, [1.0, 0.9])
    assert got.item() == pytest.approx(1.0 - 0.1 * 1.0 * 1.0)
    assert euler_step(f, x1, 1.0, -0.1).item() == pytest.approx(got.item())


def test_heun_in_reverse_time_matches_scipy():
    # Nonlinear 2-D field integrated from t = 1 down to t = 0, against a tight RK45 reference.
    def f_np(t, y):
        return [-y[1] + 0.3 * np.sin(t * y[0]), y[0] - 0.2 * y[1]]

    def f_torch(x, t):
        return torch.stack([-x[:, 1] + 0.3 * torch.sin(t * x[:, 0]), x[:, 0] - 0.2 * x[:, 1]], dim=1)

    ref = solve_ivp(f_np, (1.0, 0.0), [0.5, -1.0], rtol=1e-12, atol=1e-12).y[:, -1]
    x1 = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    got = heun(f_torch, x1, torch.linspace(1.0, 0.0, 201, dtype=torch.float64))
    assert np.allclose(got.numpy()[0], ref, atol=1e-4)


def test_return_path_shape_and_ends():
    x0 = torch.zeros(3, 2)
    ts = torch.linspace(0.0, 1.0, 6)
    path = euler(lambda x, t: torch.ones_like(x), x0, ts, return_path=True)
    assert path.shape == (6, 3, 2)
    assert torch.equal(path[0], x0)
    assert torch.allclose(path[-1], torch.ones(3, 2))


@pytest.mark.parametrize("solver", [euler, heun])
@pytest.mark.parametrize(
    "ts, match",
    [
        ([0.0], "at least 2"),
        ([[0.0, 1.0]], "1-D"),
        ([0.0, 0.5, 0.4], "monotone"),
        ([0.0, 0.0], "monotone"),
        ([0.0, float("nan")], "finite"),
    ],
)
def test_bad_time_grids_raise(solver, ts, match):
    with pytest.raises(ValueError, match=f"ts.*{match}|{match}"):
        solver(lambda x, t: x, torch.zeros(1, 1), ts)


def test_bad_initial_state_raises():
    with pytest.raises(ValueError, match="x0 must be finite"):
        euler(lambda x, t: x, torch.tensor([[float("nan")]]), [0.0, 1.0])
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        heun(lambda x, t: x, [[1.0]], [0.0, 1.0])
