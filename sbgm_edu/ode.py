"""Fixed-step solvers for ordinary differential equations dx/dt = f(x, t).

Chapter "ODEs and Euler's method" (book/ch02_ode_euler.ipynb) derives both
solvers. The time grid `ts` may run forwards (t_0 < t_1 < ...) or backwards
(t_0 > t_1 > ...): the same formula covers both, because the step
h = t_{k+1} - t_k carries its sign. Run backwards, Euler is still the explicit
method; it is *not* the implicit "backward Euler" of numerical analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sbgm_edu._checks import Time, check_callable, check_tensor, check_time_grid

VectorField = Callable[[torch.Tensor, Time], torch.Tensor]
"""f(x, t) -> dx/dt with the shape of x (N, D); t is a Python float here (the one alias of the package)."""


def euler_step(f: VectorField, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    """One explicit Euler step, eq. (euler-step): x + h f(x, t).

    x has shape (N, D); h < 0 gives the reverse-time step of eq. (euler-reverse).
    """
    return x + h * f(x, t)


def heun_step(f: VectorField, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    """One step of Heun's method (explicit trapezoidal rule), eq. (heun-step).

    An Euler predictor x' = x + h f(x, t), then the average of the slopes at
    both ends: x + h/2 (f(x, t) + f(x', t + h)). Two evaluations of f per step.
    """
    slope = f(x, t)
    x_pred = x + h * slope
    return x + 0.5 * h * (slope + f(x_pred, t + h))


def integrate(
    step: Callable[[VectorField, torch.Tensor, float, float], torch.Tensor],
    f: VectorField,
    x0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    return_path: bool = False,
) -> torch.Tensor:
    """Apply a one-step method x_{k+1} = step(f, x_k, t_k, t_{k+1} - t_k) along the grid ts.

    x0 is the state at ts[0] (any shape); ts is 1-D, strictly monotone, with at least 2 times.
    Returns the state at ts[-1], or every state, shape (len(ts), *x0.shape), if return_path.
    """
    check_callable(f, "f", "f(x, t)")
    check_tensor(x0, "x0")
    ts = check_time_grid(ts).tolist()
    x = x0
    path = [x0]
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = step(f, x, t, t_next - t)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def euler(
    f: VectorField,
    x0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    return_path: bool = False,
) -> torch.Tensor:
    """Solve dx/dt = f(x, t) from x(ts[0]) = x0 with explicit Euler, eq. (euler-step).

    Args:
        f: the vector field, f(x, t) -> dx/dt with the shape of x; t is a float.
        x0: the state at ts[0], any shape (usually (N, D)).
        ts: 1-D grid of at least 2 times, strictly increasing or strictly decreasing.
        return_path: if True, return every state, shape (len(ts), *x0.shape).

    Returns:
        The state at ts[-1], shape x0.shape (or the whole path).

    Global error O(h) for a smooth f: halving the step halves the error.
    """
    return integrate(euler_step, f, x0, ts, return_path)


def heun(
    f: VectorField,
    x0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    return_path: bool = False,
) -> torch.Tensor:
    """Solve dx/dt = f(x, t) from x(ts[0]) = x0 with Heun's method, eq. (heun-step).

    Same arguments and return value as `euler`. Global error O(h^2): halving the
    step quarters the error, at two evaluations of f per step.
    """
    return integrate(heun_step, f, x0, ts, return_path)
