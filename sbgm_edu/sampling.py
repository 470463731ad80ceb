"""Sampling: turn prior noise x_1 into data by solving the probability-flow ODE backwards.

Chapter "Sampling" (book/ch07_sampling.ipynb). The book's sampler, eq. (ve-euler-sampler),
draws x_1 from the prior p_01 and takes T reverse-time Euler steps of the PF-ODE
dx/dt = f(x, t) - 1/2 g(t)^2 s_theta(x, t) over the grid t_k = linspace(1, eps, T + 1),
evaluating the drift at the START of each step:

    x_{t - Delta} = x_t + Delta * 1/2 sigma^{2t} s_theta(x_t, t)      (VE SDE, f = 0).

`sample` dispatches every solver name through the registry `sbgm_edu.solvers.REGISTRY`; it
contains no solver of its own. The sampler of the original notebook, `original_sample`, lives in
`sbgm_edu.original` and `tile_digits` in `sbgm_edu.plotting`; both are re-exported here.
"""

from __future__ import annotations

import torch

from sbgm_edu import solvers
from sbgm_edu._checks import check_choice, check_positive_int
from sbgm_edu.original import original_sample  # noqa: F401  (its home is sbgm_edu.original)
from sbgm_edu.plotting import tile_digits  # noqa: F401  (moved to plotting; kept importable here)
from sbgm_edu.sde import SDE, ScoreFn


def sampling_grid(steps: int, eps: float = 1e-5) -> torch.Tensor:
    """The time grid of eq. (ve-euler-sampler): `steps` + 1 points from 1 down to eps (float64).

    The same grid as `sbgm_edu.solvers.uniform_time_grid` (one implementation, two names).
    """
    return solvers.uniform_time_grid(steps, eps)


def sample(
    score_fn: ScoreFn,
    sde: SDE,
    n: int,
    dim: int,
    steps: int,
    solver: str = "euler",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    return_path: bool = False,
    grid: str = "uniform",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Draw n samples by solving the PF-ODE from t = 1 to t = eps, eq. (ve-euler-sampler).

    x_1 ~ sde.sample_prior(n, dim, generator, dtype), then `steps` steps of `solver` over the
    time grid `grid` (by default torch.linspace(1, eps, steps + 1)). With solver="euler" each step is
    x_{k+1} = x_k + (t_{k+1} - t_k) f(x_k, t_k), f = pf_ode_drift(sde, score_fn): the drift
    is evaluated at the start t_k of the step; for the VE SDE this is
    x_{t - Delta} = x_t + Delta 1/2 sigma^{2t} s_theta(x_t, t). solver="heun" takes Heun steps
    (two score evaluations per step, eq. (heun-step)). Runs under torch.no_grad().

    Caution with "heun": its last corrector evaluates the score at t = eps on the Euler
    predictor, which still carries noise of about the level sigma at the second-to-last grid
    time; a score near t = eps scales like 1/sigma_eps^2, so that step can overshoot badly
    (Karras et al. 2022 take a plain Euler step at the end for this reason).

    Args:
        score_fn: s_theta(x, t) -> estimate of grad_x ln p_t(x), x of shape (n, dim), t a float;
            it must return the shape of x.
        sde: the forward SDE (e.g. `VESDE(sigma)`); gives the prior and g(t).
        n: number of samples (int >= 1).
        dim: dimension D of each sample (int >= 1), 64 for the 8x8 digits.
        steps: number of solver steps T (int >= 1); Delta = (1 - eps) / T on the uniform grid.
        solver: a name of `sbgm_edu.solvers.REGISTRY`: "euler" or "heun" (`sbgm_edu.ode` on the
            PF-ODE in t), chapter 9's "euler_sigma"/"ddim", "heun_edm", "dpm_solver_2m", or any
            solver added there; run by `sbgm_edu.solvers.solve`.
        eps: the last time, 0 < eps < 1 (the score is not defined at t = 0 for a finite data set).
        generator: torch.Generator for the prior draw (and for the noise of a stochastic solver).
        return_path: if True, return every state, shape (steps + 1, n, dim); path[0] = x_1.
        grid: a name of `sbgm_edu.solvers.TIME_GRIDS`: "uniform" (eq. (ve-euler-sampler), the
            default), "edm" (Karras et al. 2022, rho = 7, eq. (edm-grid)) or "logsnr" (uniform in ln sigma~).
        dtype: dtype of the prior draw and so of the samples (default: torch's default dtype);
            it must be the dtype the score function computes in (float32 for the book's networks).

    Returns:
        The samples x_eps, shape (n, dim) (or the path).
    """
    # sde, steps, eps and grid are checked by time_grid, score_fn by the solver (once each)
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")
    check_choice(solver, "solver", solvers.REGISTRY)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.float32), got {dtype!r}")
    ts = solvers.time_grid(sde, steps, eps, grid)
    with torch.no_grad():
        x1 = sde.sample_prior(n, dim, generator=generator, dtype=dtype)
        return solvers.solve(score_fn, sde, x1, ts, solver, generator=generator, return_path=return_path)


