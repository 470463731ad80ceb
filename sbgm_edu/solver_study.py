"""Chapter 9's experiments on solvers: exact reference problems, error against the number of score evaluations.

Chapter "Better solvers" (book/ch09_solvers.ipynb) and the benchmarks (`python -m benchmarks`).
The algorithms themselves are in `sbgm_edu.solvers`; this module measures them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from sbgm_edu._checks import (
    Time,
    check_choice,
    check_eps,
    check_float,
    check_positive_int,
    check_score_fn,
    check_tensor,
)
from sbgm_edu.sde import SDE, ScoreFn, check_sde, pf_ode_drift
from sbgm_edu.solvers import GRIDS, REGISTRY, solve, time_grid


class CountingScore:
    """Wrap a score function and count its evaluations: `calls` (number of calls) and `rows` (points scored).

    Use it to measure the number of function evaluations (NFE) of a solver rather than trusting a formula.
    """

    def __init__(self, score_fn: ScoreFn) -> None:
        check_score_fn(score_fn)
        self.score_fn = score_fn
        self.calls = 0
        self.rows = 0

    def __call__(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.score_fn(x, t)


def gaussian_pf_ode_flow(
    sde: SDE, mu: torch.Tensor, s: float, x_start: torch.Tensor, t_start: float, t_end: float
) -> torch.Tensor:
    """The exact PF-ODE flow for Gaussian data N(mu, s^2 I): map x at t_start to t_end, eq. (ch9-gaussian-flow).

    p_t = N(m_t mu, v_t I) with v_t = m_t^2 s^2 + sigma_t^2, and the PF-ODE moves each point along
    x_t = m_t mu + (x_start - m_start mu) sqrt(v_t / v_start). For VE (m = 1) this is
    x_t = mu + (x_1 - mu) sqrt((s^2 + sigma_t^2)/(s^2 + sigma_1^2)).

    Args:
        sde: the SDE; mu: the data mean, shape (1, D) or (D,); s >= 0: the data std.
        x_start: points at t_start, shape (N, D).
    """
    check_sde(sde)
    check_tensor(x_start, "x_start", ndim=2)
    check_tensor(mu, "mu")
    s = check_float(s, "s", low=0.0)
    m0, m1 = sde.marginal_mean_coeff(t_start).item(), sde.marginal_mean_coeff(t_end).item()
    v0 = m0**2 * s**2 + sde.marginal_std(t_start).item() ** 2
    v1 = m1**2 * s**2 + sde.marginal_std(t_end).item() ** 2
    mu = mu.to(x_start.dtype)
    return m1 * mu + (x_start - m0 * mu) * math.sqrt(v1 / v0)


COMPARED_METHODS: list[tuple[str, str]] = [
    ("euler", "uniform"), ("euler", "edm"), ("heun", "uniform"), ("euler_sigma", "uniform"), ("euler_sigma", "edm"),
    ("heun_edm", "edm"), ("dpm_solver_2m", "edm"), ("dpm_solver_2m", "logsnr"),
]
"""The (solver, grid) pairs that chapter 9 and the benchmarks compare."""

COMPARED_NFES: list[int] = [4, 6, 8, 10, 16, 32, 64]
"""The score-evaluation budgets of chapter 9's error-against-NFE table."""

ErrorProblem = tuple[ScoreFn, torch.Tensor, float]
"""(exact score_fn, exact end point x_eps for each prior draw (N, D), the data's scale)."""


def reference_problems(sde: SDE, x1: torch.Tensor, eps: float = 1e-5) -> dict[str, ErrorProblem]:
    """Chapter 9's two exact-score problems, solved exactly from the prior draws x1 (N, 2) at t = 1 to t = eps.

    (a) Gaussian data N(mu, s^2 I), mu = (0.5, -1), s = 0.5: exact end points from the closed-form
        flow (`gaussian_pf_ode_flow`); scale s.
    (b) the 2-D mixture of `sbgm_edu.data.toy_mixture_params`: end points from scipy's DOP853 with
        rtol = atol = 1e-10 on the PF-ODE with the exact score; scale the per-coordinate std of the mixture.
    Everything in float64.
    """
    from scipy.integrate import solve_ivp

    from sbgm_edu.data import toy_mixture_params
    from sbgm_edu.scores import diffused_mixture_score

    check_sde(sde)
    check_tensor(x1, "x1", ndim=2)
    eps = check_eps(eps)
    x1 = x1.to(torch.float64)
    mu, s = torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.5
    gauss_score = diffused_mixture_score(sde, mu, torch.tensor([s], dtype=torch.float64),
                                         torch.ones(1, dtype=torch.float64))
    gauss_exact = gaussian_pf_ode_flow(sde, mu, s, x1, 1.0, eps)

    params = {k: v.to(torch.float64) for k, v in toy_mixture_params().items()}
    mix_score = diffused_mixture_score(sde, **params)
    drift = pf_ode_drift(sde, mix_score)
    ref = solve_ivp(lambda t, y: drift(torch.as_tensor(y).reshape(x1.shape), float(t)).reshape(-1).numpy(),
                    (1.0, eps), x1.reshape(-1).numpy(), method="DOP853", rtol=1e-10, atol=1e-10)
    mix_exact = torch.as_tensor(ref.y[:, -1]).reshape(x1.shape)
    w, m, sd = params["weights"], params["means"], params["stds"]
    mix_mean = (w[:, None] * m).sum(0)
    mix_scale = math.sqrt((w * (sd**2 + ((m - mix_mean) ** 2).sum(1) / 2)).sum().item())  # per coordinate
    return {"(a) Gaussian": (gauss_score, gauss_exact, s), "(b) mixture": (mix_score, mix_exact, mix_scale)}


def error_vs_nfe(
    problems: dict[str, ErrorProblem],
    sde: SDE,
    x1: torch.Tensor,
    methods: Sequence[tuple[str, str]],
    nfes: Sequence[int],
    eps: float = 1e-5,
) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    """Error at t = eps against the number of score evaluations, for each problem and (solver, grid).

    For each NFE budget (an int >= 1) the solver takes max(1, NFE // evaluations per step) steps on the named grid;
    the NFE reported is the COUNTED number of score calls (`CountingScore`). The error is the RMS
    distance to the exact end point divided by the problem's data scale.

    Returns:
        {(problem, solver, grid): [(counted NFE, relative RMS error), ...]} in the order of `nfes`.
    """
    check_sde(sde)
    check_tensor(x1, "x1", ndim=2)
    nfes = [check_positive_int(nfe, "nfes entries") for nfe in nfes]
    eps = check_eps(eps)
    for solver, grid in methods:
        check_choice(solver, "methods solver", REGISTRY)
        check_choice(grid, "methods grid", GRIDS)
    x1 = x1.to(torch.float64)
    errors: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for pname, (score, exact, scale) in problems.items():
        for solver, grid in methods:
            rows = []
            for nfe in nfes:
                counter = CountingScore(score)
                steps = max(1, nfe // REGISTRY[solver].evaluations_per_step)
                x = solve(counter, sde, x1, time_grid(sde, steps, eps, grid), solver)
                rows.append((counter.calls, (x - exact).pow(2).mean().sqrt().item() / scale))
            errors[pname, solver, grid] = rows
    return errors


__all__ = [
    "COMPARED_METHODS",
    "COMPARED_NFES",
    "CountingScore",
    "ErrorProblem",
    "error_vs_nfe",
    "gaussian_pf_ode_flow",
    "reference_problems",
]
