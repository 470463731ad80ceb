"""Sampling: turn prior noise x_1 into data by solving the probability-flow ODE backwards.

Chapter "Sampling" (book/ch07_sampling.ipynb). The book's sampler, eq. (ve-euler-sampler),
draws x_1 from the prior p_01 and takes T reverse-time Euler steps of the PF-ODE
dx/dt = f(x, t) - 1/2 g(t)^2 s_theta(x, t) over the grid t_k = linspace(1, eps, T + 1),
evaluating the drift at the START of each step:

    x_{t - Delta} = x_t + Delta * 1/2 sigma^{2t} s_theta(x_t, t)      (VE SDE, f = 0).

`sample` reuses `sbgm_edu.ode.euler` / `heun` and `sbgm_edu.sde.pf_ode_drift`; it contains
no solver of its own. `original_sample` is the one and only reproduction of the sampler of
the original notebook (Tomczak, `intro_dgm/sbgms/sbgm_example.ipynb`), kept for chapter 8
("Why the first attempt fails"), with its differences spelled out. `tile_digits` now lives in
`sbgm_edu.plotting` and is re-exported here.
"""

from __future__ import annotations

import torch

from sbgm_edu import solvers
from sbgm_edu._checks import check_eps, check_positive_int, check_score_fn
from sbgm_edu.plotting import tile_digits  # noqa: F401  (moved to plotting; kept importable here)
from sbgm_edu.sde import SDE, ScoreFn, check_sde


def _check_common(score_fn: ScoreFn, sde: SDE, n: int, dim: int) -> None:
    check_score_fn(score_fn)
    check_sde(sde)
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")


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
) -> torch.Tensor:
    """Draw n samples by solving the PF-ODE from t = 1 to t = eps, eq. (ve-euler-sampler).

    x_1 ~ sde.sample_prior(n, dim, generator), then `steps` steps of `solver` over
    torch.linspace(1, eps, steps + 1). With solver="euler" each step is
    x_{k+1} = x_k + (t_{k+1} - t_k) f(x_k, t_k), f = pf_ode_drift(sde, score_fn): the drift
    is evaluated at the start t_k of the step; for the VE SDE this is
    x_{t - Delta} = x_t + Delta 1/2 sigma^{2t} s_theta(x_t, t). solver="heun" takes Heun steps
    (two score evaluations per step, eq. (heun-step)). Runs under torch.no_grad().

    Caution with "heun": its last corrector evaluates the score at t = eps on the Euler
    predictor, which still carries noise of about the level sigma at the second-to-last grid
    time; a score near t = eps scales like 1/sigma_eps^2, so that step can overshoot badly
    (Karras et al. 2022 take a plain Euler step at the end for this reason).

    Args:
        score_fn: s_theta(x, t) -> estimate of grad_x ln p_t(x), x of shape (n, dim), t a float.
        sde: the forward SDE (e.g. `VESDE(sigma)`); gives the prior and g(t).
        n: number of samples (int >= 1).
        dim: dimension D of each sample (int >= 1), 64 for the 8x8 digits.
        steps: number of solver steps T (int >= 1); Delta = (1 - eps) / T.
        solver: "euler" or "heun" (`sbgm_edu.ode` on the PF-ODE in t), or any other name of
            `sbgm_edu.solvers.SOLVERS` (chapter 9: "euler_sigma"/"ddim", "heun_edm", "dpm_solver_2m"),
            run by `sbgm_edu.solvers.solve` on the same grid and prior draw.
        eps: the last time, 0 < eps < 1 (the score is not defined at t = 0 for a finite data set).
        generator: torch.Generator for the prior draw (the only randomness).
        return_path: if True, return every state, shape (steps + 1, n, dim); path[0] = x_1.
        grid: the time grid: "uniform" (eq. (ve-euler-sampler), the default), "edm" (Karras et al.
            2022, rho = 7, eq. (edm-grid)) or "logsnr" (uniform in ln sigma_t); see `sbgm_edu.solvers`.

    Returns:
        The samples x_eps, shape (n, dim) (or the path).
    """
    _check_common(score_fn, sde, n, dim)
    if solver not in solvers.SOLVERS:
        raise ValueError(f"solver must be one of {sorted(solvers.SOLVERS)}, got {solver!r}")
    ts = solvers.time_grid(sde, steps, eps, grid)
    with torch.no_grad():
        x1 = sde.sample_prior(n, dim, generator=generator)
        # "euler" and "heun" are sbgm_edu.ode.euler / heun on pf_ode_drift(sde, score_fn) (solvers.euler_t, heun_t)
        return solvers.solve(score_fn, sde, x1, ts, solver=solver, return_path=return_path)


def original_sample(
    score_fn: ScoreFn,
    sde: SDE,
    n: int,
    dim: int,
    T: int = 20,
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    apply_tanh: bool = True,
    return_path: bool = False,
) -> torch.Tensor:
    """The sampler of the original notebook, reproduced faithfully (chapter 8).

    The original `SBGM.sample` does, with its T = 20:

        x = x_1 ~ N(0, sigma_1^2 I)
        ts = linspace(1, eps, T); Delta = ts[0] - ts[1]
        for t in ts[1:]:  x = x - Delta * 1/2 * sigma^t * snet(x + temb(t))
        return tanh(x)

    Its network `snet` learns the NEGATIVE score (its loss matches -sigma_t snet to -x_1),
    so with s_theta = -snet the update is x + Delta 1/2 g(t_{k+1}) s_theta(x, t_{k+1}).
    Compared with eq. (ve-euler-sampler) it differs in four ways:

    1. the grid has T points, so it takes T - 1 steps (19 for T = 20), not T;
    2. the score is evaluated at the DESTINATION time t_{k+1} of each step, not at t_k;
    3. it multiplies by g(t) = sigma^t where the PF-ODE needs g(t)^2 (harmless at
       sigma = 1.01, where g ~ 1, wrong for larger sigma);
    4. it squashes the result with tanh, which hides samples that left [-1, 1].

    Args:
        score_fn: s_theta(x, t), the score estimate (pass the negative of a network that,
            like the original `snet`, outputs minus the score).
        sde: the VE SDE (the original uses VESDE(1.01)); gives the prior and g(t) = sigma^t.
        n, dim: number and dimension of the samples.
        T: the original's T: number of grid points (int >= 2), so T - 1 steps.
        eps: the last time (the original's EPS = 1e-5).
        generator: torch.Generator for the prior draw.
        apply_tanh: apply the final tanh (True in the original); False shows the raw output.
        return_path: if True, return the states before tanh, shape (T, n, dim).

    Returns:
        Samples of shape (n, dim), or the path.
    """
    _check_common(score_fn, sde, n, dim)
    check_positive_int(T, "T", minimum=2)
    ts = torch.linspace(1.0, check_eps(eps), T, dtype=torch.float64).tolist()
    delta = ts[0] - ts[1]
    with torch.no_grad():
        x = sde.sample_prior(n, dim, generator=generator)
        path = [x]
        for t in ts[1:]:
            g = float(sde.diffusion(t))  # g(t_{k+1}), not squared, at the destination time
            x = x + delta * 0.5 * g * score_fn(x, t)
            path.append(x)
        if return_path:
            return torch.stack(path)
        return torch.tanh(x) if apply_tanh else x
