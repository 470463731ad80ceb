"""Measuring the strong and weak order of Euler–Maruyama (chapter 3, book/ch03_sde.ipynb).

To see a convergence order we need an SDE with a known solution, driven by the
*same* Brownian path as the numerical scheme. Geometric Brownian motion (GBM),

    dx = mu x dt + s x dv,   x(t) = x_0 exp((mu - s^2 / 2) t + s v(t)),

has multiplicative noise (g depends on x), which is what makes Euler–Maruyama's
strong order 1/2 rather than 1 (with additive noise g = g(t), as in the VE SDE,
Euler–Maruyama coincides with the Milstein scheme and has strong order 1).

Recipe: draw Brownian increments on the finest grid, sum them in groups to get
the increments of coarser grids (`coarsen_increments`), run
`euler_maruyama_driven` on each grid, and compare with `gbm_exact` at the final
time. The strong error E|x_T^EM - x(T)| shrinks like dt^(1/2), the weak error
|E x_T^EM - E x(T)| like dt; `sbgm_edu.convergence.loglog_slope` reads the
slope off a log-log fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from sbgm_edu._checks import check_float, check_positive_float, check_positive_int, check_tensor


def brownian_increments(
    steps: int,
    shape: Sequence[int],
    t_end: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Increments v(t_{k+1}) - v(t_k) of a Wiener process on `steps` equal steps of [0, t_end].

    Each increment is N(0, dt) with dt = t_end / steps, independent of the others.

    Args:
        steps: number of steps K (>= 1).
        shape: shape of one state, e.g. (N,) for N independent scalar paths or (N, D).
        t_end: final time (> 0).
        generator: a torch.Generator for reproducible paths.

    Returns:
        float64 tensor of shape (K, *shape). Its cumulative sum along axis 0 is the path v(t_1), ..., v(t_K).
    """
    check_positive_int(steps, "steps")
    t_end = check_positive_float(t_end, "t_end")
    shape = tuple(shape)
    for n in shape:
        check_positive_int(n, "shape entries")
    dt = t_end / steps
    return math.sqrt(dt) * torch.randn((steps, *shape), generator=generator, dtype=torch.float64)


def coarsen_increments(dv: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum Brownian increments in consecutive groups of `factor`: the same path on a grid `factor` times coarser.

    Args:
        dv: increments of shape (K, ...), K divisible by factor.
        factor: group size (>= 1).

    Returns:
        shape (K // factor, ...).
    """
    check_tensor(dv, "dv")
    check_positive_int(factor, "factor")
    if dv.ndim < 1 or dv.shape[0] % factor != 0:
        raise ValueError(f"factor must divide the number of increments {dv.shape[0] if dv.ndim else 0}, got {factor}")
    return dv.reshape(dv.shape[0] // factor, factor, *dv.shape[1:]).sum(dim=1)


def euler_maruyama_driven(
    drift: Callable[[torch.Tensor, float], torch.Tensor],
    diffusion: Callable[[torch.Tensor, float], torch.Tensor | float],
    x0: torch.Tensor,
    dv: torch.Tensor,
    t_end: float = 1.0,
) -> torch.Tensor:
    """Euler–Maruyama, eq. (euler-maruyama), on a given Brownian path, with a state-dependent g(x, t).

    x_{k+1} = x_k + f(x_k, t_k) dt + g(x_k, t_k) dv_k, t_k = k dt, dt = t_end / K.
    Unlike `sbgm_edu.sde.euler_maruyama` (which draws its own noise and takes g(t)),
    this takes the increments, so that the scheme and an exact solution can share one path.

    Args:
        drift: f(x, t) -> shape of x.
        diffusion: g(x, t) -> shape of x (or a scalar); multiplies dv elementwise.
        x0: starting state(s), any shape S.
        dv: Brownian increments, shape (K, *S).
        t_end: final time (> 0).

    Returns:
        x at t_end, shape S.
    """
    check_tensor(x0, "x0")
    check_tensor(dv, "dv")
    if dv.ndim < 1 or dv.shape[1:] != x0.shape:
        raise ValueError(f"dv must have shape (K, *x0.shape) with x0.shape = {tuple(x0.shape)}, got {tuple(dv.shape)}")
    t_end = check_positive_float(t_end, "t_end")
    steps = dv.shape[0]
    dt = t_end / steps
    x = x0
    for k in range(steps):
        t = k * dt
        x = x + drift(x, t) * dt + diffusion(x, t) * dv[k]
    return x


def gbm_exact(x0: torch.Tensor, mu: float, s: float, t: float, v_t: torch.Tensor) -> torch.Tensor:
    """Exact solution of geometric Brownian motion dx = mu x dt + s x dv at time t.

    x(t) = x0 exp((mu - s^2 / 2) t + s v(t)), where v(t) is the Wiener process at t
    (the sum of the increments that drove the scheme). Shapes of x0 and v_t broadcast.
    """
    check_tensor(x0, "x0")
    check_tensor(v_t, "v_t")
    mu = check_float(mu, "mu")
    s = check_float(s, "s")
    t = check_positive_float(t, "t")
    return x0 * torch.exp((mu - 0.5 * s**2) * t + s * v_t)


def gbm_em_errors(
    steps_list: Sequence[int],
    n_paths: int,
    mu: float = 1.0,
    s: float = 1.0,
    x0: float = 1.0,
    t_end: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Strong and weak errors of Euler–Maruyama on GBM for several step counts, on shared Brownian paths.

    Strong error: mean over paths of |x_T^EM - x(T)| (estimates E|x_T^EM - x(T)|).
    Weak error: |mean over paths of (x_T^EM - x(T))| (estimates |E x_T^EM - E x(T)|;
    differencing against the exact solution on the same path cancels most of the
    Monte Carlo noise, so far fewer paths are needed than for |mean x_T^EM - E x(T)|).

    Args:
        steps_list: step counts K, each dividing max(steps_list) (e.g. powers of 2).
        n_paths: number of Brownian paths (>= 2).
        mu, s, x0, t_end: the GBM and the time horizon.
        generator: a torch.Generator for reproducible paths.

    Returns:
        dict with "dt" (t_end / K), "strong", "weak", "strong_se" and "weak_se"
        (Monte Carlo standard errors), each a numpy array ordered like `steps_list`.
    """
    counts = [check_positive_int(k, "steps_list entries") for k in steps_list]
    if not counts:
        raise ValueError("steps_list must hold at least one step count")
    check_positive_int(n_paths, "n_paths", minimum=2)
    finest = max(counts)
    for k in counts:
        if finest % k != 0:
            raise ValueError(f"steps_list entries must divide max(steps_list) = {finest}, got {k}")
    mu = check_float(mu, "mu")
    s = check_float(s, "s")
    x0 = check_float(x0, "x0")
    t_end = check_positive_float(t_end, "t_end")

    dv_fine = brownian_increments(finest, (n_paths,), t_end, generator)
    start = torch.full((n_paths,), x0, dtype=torch.float64)
    exact = gbm_exact(start, mu, s, t_end, dv_fine.sum(dim=0))
    out: dict[str, list[float]] = {"dt": [], "strong": [], "weak": [], "strong_se": [], "weak_se": []}
    for k in counts:
        dv = coarsen_increments(dv_fine, finest // k)
        x_em = euler_maruyama_driven(lambda x, t: mu * x, lambda x, t: s * x, start, dv, t_end)
        diff = x_em - exact
        out["dt"].append(t_end / k)
        out["strong"].append(diff.abs().mean().item())
        out["weak"].append(abs(diff.mean().item()))
        out["strong_se"].append(diff.abs().std().item() / math.sqrt(n_paths))
        out["weak_se"].append(diff.std().item() / math.sqrt(n_paths))
    return {key: np.asarray(val) for key, val in out.items()}
