"""Measure the order of accuracy of an ODE solver.

Chapter "ODEs and Euler's method" (book/ch02_ode_euler.ipynb) draws the
log-log convergence plot with these functions, and the chapter on better
solvers reuses them. A solver of order p has a global error at the final time
of about C h^p for a step size h, so log(error) against log(h) is a line of
slope p: `convergence_order` measures the errors on uniform grids and fits that
slope by least squares.

Use float64 tensors: in float32, round-off (about 1e-7 relative) puts a floor
under the error and flattens the slope of an accurate solver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sbgm_edu._checks import check_callable, check_float, check_output_shape, check_positive_int, check_tensor
from sbgm_edu.ode import VectorField

Solver = Callable[[VectorField, torch.Tensor, torch.Tensor], torch.Tensor]
"""solver(f, x0, ts) -> x at ts[-1], like `sbgm_edu.ode.euler` and `sbgm_edu.ode.heun`."""


def _check_time_span(t0: float, t1: float) -> tuple[float, float]:
    t0, t1 = check_float(t0, "t0"), check_float(t1, "t1")
    if t0 == t1:
        raise ValueError(f"t0 and t1 must differ (the solve needs a time span of non-zero length), got {t0}")
    return t0, t1


def _check_steps_list(steps_list: Sequence[int]) -> list[int]:
    if isinstance(steps_list, (str, bytes)) or not isinstance(steps_list, Sequence):
        raise TypeError(f"steps_list must be a sequence of ints >= 1, got {type(steps_list).__name__}")
    counts = [check_positive_int(n, "steps_list entries") for n in steps_list]
    if len(set(counts)) < 2:
        raise ValueError(f"steps_list must hold at least 2 different step counts to fit a slope, got {steps_list}")
    return counts


def uniform_grid(t0: float, t1: float, steps: int) -> torch.Tensor:
    """The grid t0, t0 + h, ..., t1 of `steps` equal steps, float64, shape (steps + 1,).

    h = (t1 - t0) / steps is negative when t1 < t0 (reverse time, eq. (euler-reverse)).
    """
    t0, t1 = _check_time_span(t0, t1)
    check_positive_int(steps, "steps")
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


def final_time_error(
    solver: Solver,
    f: VectorField,
    x0: torch.Tensor,
    t0: float,
    t1: float,
    exact: torch.Tensor,
    steps: int,
) -> float:
    """Global error max_i |x_T,i - x(t1)_i| of `solver` after `steps` equal steps from t0 to t1.

    Args:
        solver: solver(f, x0, ts) -> state at ts[-1] (e.g. `sbgm_edu.ode.euler`).
        f: the vector field of eq. (ode), f(x, t) -> dx/dt.
        x0: the state at t0, any shape, e.g. (N, D).
        t0, t1: start and end time (t1 < t0 runs backwards in time).
        exact: the exact solution x(t1), same shape as x0.
        steps: number of equal steps (>= 1).

    Returns:
        The largest absolute error over all entries (the max norm), a float.
    """
    check_callable(solver, "solver", "solver(f, x0, ts)")
    check_callable(f, "f", "f(x, t)")
    if check_tensor(exact, "exact").shape != check_tensor(x0, "x0").shape:
        raise ValueError(f"exact must have the shape of x0 {tuple(x0.shape)} (it is x(t1)), got {tuple(exact.shape)}")
    x_end = check_output_shape(solver(f, x0, uniform_grid(t0, t1, steps).to(x0.dtype)), x0.shape, "solver")
    return (x_end - exact.to(x_end.dtype)).abs().max().item()


def loglog_slope(xs: Sequence[float] | torch.Tensor, ys: Sequence[float] | torch.Tensor) -> float:
    """Least-squares slope of log(ys) against log(xs).

    Both must be 1-D with at least 2 positive, finite entries and the same length.
    If ys = C xs^p exactly, the slope is p. Against the number of evaluations of f
    the slope of an order-p solver is -p.
    """
    xs = torch.as_tensor(xs, dtype=torch.float64)
    ys = torch.as_tensor(ys, dtype=torch.float64)
    for name, v in (("xs", xs), ("ys", ys)):
        if v.ndim != 1 or v.numel() < 2:
            raise ValueError(f"{name} must be 1-D with at least 2 entries, got shape {tuple(v.shape)}")
        if not (torch.isfinite(v).all() and (v > 0).all()):
            raise ValueError(f"{name} must be positive and finite to take logarithms, got {v.tolist()}")
    if xs.shape != ys.shape:
        raise ValueError(f"xs and ys must have the same length, got {xs.numel()} and {ys.numel()}")
    lx, ly = xs.log(), ys.log()
    lx_c = lx - lx.mean()
    if (lx_c == 0).all():
        raise ValueError("xs must hold at least 2 different values to fit a slope")
    return float((lx_c * (ly - ly.mean())).sum() / (lx_c * lx_c).sum())


def convergence_order(
    solver: Solver,
    f: VectorField,
    x0: torch.Tensor,
    t0: float,
    t1: float,
    exact: torch.Tensor,
    steps_list: Sequence[int],
) -> tuple[torch.Tensor, float]:
    """Global errors on several uniform grids and the fitted order of accuracy.

    For each T in `steps_list`, solves eq. (ode) from x(t0) = x0 to t1 with T equal
    steps of size h = |t1 - t0| / T and measures the max-norm error against
    `exact` = x(t1). The order is the least-squares slope of log(error) against
    log(h): about 1 for Euler, eq. (euler-step), and 2 for Heun, eq. (heun-step),
    once h is small enough and f is smooth.

    Args:
        solver: solver(f, x0, ts) -> state at ts[-1] (`sbgm_edu.ode.euler`, `heun`, ...).
        f: the vector field f(x, t) -> dx/dt.
        x0: the state at t0, any shape (use float64, see the module docstring).
        t0, t1: start and end time; t1 < t0 measures a reverse-time solve.
        exact: the exact x(t1), shape of x0.
        steps_list: at least 2 different step counts (ints >= 1).

    Returns:
        (errors, slope): errors a float64 tensor of shape (len(steps_list),) in the
        order of `steps_list`, and the fitted slope (the measured order) as a float.
    """
    t0, t1 = _check_time_span(t0, t1)
    counts = _check_steps_list(steps_list)
    errors = torch.tensor(
        [final_time_error(solver, f, x0, t0, t1, exact, n) for n in counts],
        dtype=torch.float64,
    )
    if not torch.isfinite(errors).all():
        raise ValueError(f"the solver diverged (an error is NaN or inf): errors {errors.tolist()}; use more steps")
    if not (errors > 0).all():
        raise ValueError(
            "an error is exactly 0 (the solver is exact on this problem), so no order can be fitted; "
            "choose a problem the solver does not solve exactly"
        )
    step_sizes = torch.tensor([abs(t1 - t0) / n for n in counts], dtype=torch.float64)
    return errors, loglog_slope(step_sizes, errors)
