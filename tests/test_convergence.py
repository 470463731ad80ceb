"""The convergence measurement of chapter 2 against closed forms and known orders.

Problems with closed-form solutions:
- a 2-D rotation-plus-decay field dx/dt = A x, x(t) = exp(-a t) R(w t) x(0) (the chapter's field);
- a time-dependent scalar field dx/dt = cos(t) x, x(t) = x(0) exp(sin t);
- dx/dt = lam x, where n Euler steps of size h give exactly (1 + lam h)^n x(0) and Heun
  steps (1 + lam h + (lam h)^2 / 2)^n x(0).
"""

import math

import pytest
import torch

from sbgm_edu.convergence import convergence_order, final_time_error, loglog_slope, uniform_grid
from sbgm_edu.ode import euler, heun

A_DECAY, OMEGA = 0.5, 2.0
A = torch.tensor([[-A_DECAY, -OMEGA], [OMEGA, -A_DECAY]], dtype=torch.float64)


def spiral_field(x: torch.Tensor, t: float) -> torch.Tensor:
    return x @ A.T


def spiral_exact(x0: torch.Tensor, t: float) -> torch.Tensor:
    c, s = math.cos(OMEGA * t), math.sin(OMEGA * t)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return math.exp(-A_DECAY * t) * x0 @ rotation.T


def cos_field(x: torch.Tensor, t: float) -> torch.Tensor:
    return math.cos(t) * x


X0 = torch.tensor([[1.0, 0.0], [0.3, -0.8]], dtype=torch.float64)
STEPS = [32, 64, 128, 256, 512]

# Tolerance of the fitted orders: the error is C h^p (1 + O(h)), so the fitted slope differs from p by
# a term that shrinks with h. With T = 2 and 32 to 512 steps (|lam| h <= 0.13 for the spiral) the
# deviations measured when writing this test were all below 0.05; with 16 steps and T = 3 they reach
# 0.1, which is why the grids start at 32 steps. 0.1 allows for this pre-asymptotic bias yet separates
# order 1 from order 2 (and from the order 1.5 of the non-smooth problem below) clearly.
ORDER_TOL = 0.1


def test_spiral_exact_solution_solves_the_ode():
    # Independent check of the reference itself: central finite difference of the closed form.
    t, d = 0.7, 1e-5
    derivative = (spiral_exact(X0, t + d) - spiral_exact(X0, t - d)) / (2 * d)
    assert torch.allclose(derivative, spiral_field(spiral_exact(X0, t), t), atol=1e-8)


@pytest.mark.parametrize("solver, order", [(euler, 1.0), (heun, 2.0)])
def test_fitted_order_on_spiral(solver, order):
    errors, slope = convergence_order(solver, spiral_field, X0, 0.0, 2.0, spiral_exact(X0, 2.0), STEPS)
    assert errors.shape == (len(STEPS),)
    assert (errors[1:] < errors[:-1]).all()  # more steps, smaller error
    assert slope == pytest.approx(order, abs=ORDER_TOL)


@pytest.mark.parametrize("solver, order", [(euler, 1.0), (heun, 2.0)])
def test_fitted_order_on_time_dependent_field(solver, order):
    x0 = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    exact = x0 * math.exp(math.sin(2.0))
    _, slope = convergence_order(solver, cos_field, x0, 0.0, 2.0, exact, STEPS)
    assert slope == pytest.approx(order, abs=ORDER_TOL)


@pytest.mark.parametrize("solver, order", [(euler, 1.0), (heun, 2.0)])
def test_fitted_order_in_reverse_time(solver, order):
    # Start from the exact x(2) and solve back to t = 0 (the direction of sampling).
    x_end = spiral_exact(X0, 2.0)
    _, slope = convergence_order(solver, spiral_field, x_end, 2.0, 0.0, X0, STEPS)
    assert slope == pytest.approx(order, abs=ORDER_TOL)


def test_errors_match_the_power_formula_for_linear_decay():
    # Euler on dx/dt = lam x: error |(1 + lam h)^n - exp(lam T)| |x0|, an exact formula.
    lam, big_t, x0 = -1.7, 1.5, torch.tensor([[0.8], [-2.0]], dtype=torch.float64)
    steps = [3, 10, 40]
    errors, _ = convergence_order(
        euler, lambda x, t: lam * x, x0, 0.0, big_t, x0 * math.exp(lam * big_t), steps
    )
    expected = [abs((1 + lam * big_t / n) ** n - math.exp(lam * big_t)) * 2.0 for n in steps]
    assert errors.tolist() == pytest.approx(expected, rel=1e-10)


def test_heun_errors_match_the_taylor_polynomial_formula():
    lam, big_t, x0 = 0.9, 2.0, torch.tensor([[1.0]], dtype=torch.float64)
    steps = [4, 9, 30]
    errors, _ = convergence_order(heun, lambda x, t: lam * x, x0, 0.0, big_t, x0 * math.exp(lam * big_t), steps)
    expected = [abs((1 + lam * big_t / n + (lam * big_t / n) ** 2 / 2) ** n - math.exp(lam * big_t)) for n in steps]
    assert errors.tolist() == pytest.approx(expected, rel=1e-10)


def test_reverse_time_euler_errors_match_the_power_formula():
    # Backwards from t = T to 0 the step is -h, so each step multiplies by (1 - lam h).
    lam, big_t, x_end = 0.6, 1.0, torch.tensor([[1.0]], dtype=torch.float64)
    n = 8
    err = final_time_error(euler, lambda x, t: lam * x, x_end, big_t, 0.0, x_end * math.exp(-lam * big_t), n)
    assert err == pytest.approx(abs((1 - lam * big_t / n) ** n - math.exp(-lam * big_t)), rel=1e-10)


def test_order_drops_for_non_smooth_field():
    # dx/dt = 1.5 sqrt(t), x = t^1.5: x''' is not integrable at 0, so Heun (the trapezoidal rule here)
    # has error ~ h^1.5 (generalised Euler-Maclaurin), while Euler keeps order 1.
    x0 = torch.zeros(1, 1, dtype=torch.float64)
    exact = torch.ones(1, 1, dtype=torch.float64)
    field = lambda x, t: 1.5 * math.sqrt(t) * torch.ones_like(x)  # noqa: E731
    _, euler_slope = convergence_order(euler, field, x0, 0.0, 1.0, exact, STEPS)
    _, heun_slope = convergence_order(heun, field, x0, 0.0, 1.0, exact, STEPS)
    assert euler_slope == pytest.approx(1.0, abs=ORDER_TOL)
    assert heun_slope == pytest.approx(1.5, abs=ORDER_TOL)


def test_loglog_slope_recovers_a_power_law():
    xs = [0.1, 0.05, 0.02, 0.01]
    assert loglog_slope(xs, [3.0 * x**2.5 for x in xs]) == pytest.approx(2.5, rel=1e-12)
    nfe = [10, 20, 40]
    assert loglog_slope(nfe, [7.0 / n**2 for n in nfe]) == pytest.approx(-2.0, rel=1e-12)


def test_uniform_grid_ends_and_direction():
    ts = uniform_grid(1.0, 0.0, 4)
    assert ts.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


# ---- bad inputs ---------------------------------------------------------------------------------


def _call(**overrides):
    kwargs = dict(
        solver=euler,
        f=spiral_field,
        x0=X0,
        t0=0.0,
        t1=1.0,
        exact=spiral_exact(X0, 1.0),
        steps_list=[4, 8],
    )
    kwargs.update(overrides)
    return convergence_order(**kwargs)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(steps_list=[8]), ValueError, "steps_list"),
        (dict(steps_list=[8, 8]), ValueError, "steps_list"),
        (dict(steps_list=[0, 8]), ValueError, "steps_list"),
        (dict(steps_list=[2.5, 8]), TypeError, "steps_list"),
        (dict(steps_list=8), TypeError, "steps_list"),
        (dict(t1=0.0), ValueError, "t0 and t1 must differ"),
        (dict(t1=float("inf")), ValueError, "t1 must be a finite float"),
        (dict(t0="0"), TypeError, "t0"),
        (dict(exact=torch.zeros(3, 2, dtype=torch.float64)), ValueError, "exact must have the shape"),
        (dict(exact=torch.full((2, 2), float("nan"), dtype=torch.float64)), ValueError, "exact must be finite"),
        (dict(x0=[[1.0, 0.0]]), TypeError, "x0"),
        (dict(solver="euler"), TypeError, "solver"),
        (dict(f=None), TypeError, "f must be callable"),
    ],
)
def test_bad_inputs_raise(overrides, error, match):
    with pytest.raises(error, match=match):
        _call(**overrides)


def test_exact_solver_cannot_be_fitted():
    # Euler is exact on a constant field: no error to fit, and the message says so.
    x0 = torch.zeros(1, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="exactly 0"):
        convergence_order(euler, lambda x, t: torch.ones_like(x), x0, 0.0, 1.0, x0 + 1.0, [2, 4])


def test_diverging_solver_is_reported():
    x0 = torch.ones(1, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="diverged"):
        convergence_order(euler, lambda x, t: 1e300 * x**3, x0, 0.0, 1.0, x0, [2, 4])


@pytest.mark.parametrize(
    "xs, ys, match",
    [
        ([1.0], [1.0], "xs must be 1-D"),
        ([1.0, 2.0], [1.0, 0.0], "ys must be positive"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "same length"),
        ([1.0, 1.0], [1.0, 2.0], "2 different"),
    ],
)
def test_loglog_slope_bad_inputs(xs, ys, match):
    with pytest.raises(ValueError, match=match):
        loglog_slope(xs, ys)
