"""Better PF-ODE solvers: Heun as in EDM, Euler in the noise level (DDIM), DPM-Solver++(2M), time grids, and
the one registry of solvers.

Chapter "Better solvers" (book/ch09_solvers.ipynb). This module holds only algorithms; chapter 9's
experiments (error against NFE, the reference problems, `CountingScore`) live in `sbgm_edu.solver_study`.

Every solver here has the same signature

    solver(score_fn, sde, x1, ts, return_path=False) -> x at ts[-1]

with x1 the prior draw at ts[0] (usually t = 1) and ts a decreasing time grid
(`uniform_time_grid`, `edm_time_grid`, `logsnr_time_grid`). `REGISTRY` maps each name to a
`SolverSpec` (function, score evaluations per step, display label, order); `solve` and
`sbgm_edu.sampling.sample` dispatch through it. To add a solver, write its function and add
ONE entry to `REGISTRY`.

The noise-level variable. For each SDE the kernel is N(m_t x_0, sigma_t^2 I). In the scaled
variables x~ = x / m_t and sigma~ = sigma_t / m_t (`SDE.noise_level`, the noise-to-signal ratio;
sigma~ = sigma_t for the VE SDE, where m_t = 1) the PF-ODE of every such SDE takes the one form of
Karras et al. 2022, eq. 4, our eq. (euler-sigma):

    dx~/dsigma~ = (x~ - D(x~, sigma~)) / sigma~,     D = (x + sigma_t^2 s(x, t)) / m_t,

with D the data prediction (Tweedie's formula: D = E[x_0 | x_t]). For a single data
point x*, D = x* for every x and sigma~, and the flow is a straight line toward x*.
The solvers use only the `sbgm_edu.sde.SDE` interface, so they work for any SDE that defines it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from sbgm_edu._checks import (
    check_choice,
    check_eps,
    check_positive_float,
    check_positive_int,
    check_tensor,
    check_time_grid,
    checked_score_fn,
)
from sbgm_edu.ode import euler, heun
from sbgm_edu.sde import SDE, ScoreFn, check_sde, pf_ode_drift

Solver = Callable[..., torch.Tensor]
"""solver(score_fn, sde, x1, ts, return_path=False, **options) -> (N, D), or the path (len(ts), N, D)."""


# ---------------------------------------------------------------------------
# noise levels and time grids
# ---------------------------------------------------------------------------


def noise_level(sde: SDE, t: float | torch.Tensor) -> torch.Tensor:
    """sigma~_t = sigma_t / m_t of `sde` (`SDE.noise_level`): float64 of t's shape, t in [0, 1]."""
    return check_sde(sde).noise_level(t)


def time_of_noise_level(sde: SDE, sigma: float | torch.Tensor) -> torch.Tensor:
    """The inverse of `noise_level` (`SDE.time_of_noise_level`): float64 of sigma's shape, sigma >= 0."""
    return check_sde(sde).time_of_noise_level(sigma)


def uniform_time_grid(steps: int, eps: float = 1e-5) -> torch.Tensor:
    """t_i = linspace(1, eps, steps + 1): the book's grid of eq. (ve-euler-sampler), float64."""
    check_positive_int(steps, "steps")
    return torch.linspace(1.0, check_eps(eps), steps + 1, dtype=torch.float64)


def _times_of_noise_levels(sde: SDE, sigmas: torch.Tensor, eps: float) -> torch.Tensor:
    """Map decreasing noise levels sigma~_0 = sigma~_1 > ... > sigma~_eps back to times, ends exactly 1 and eps."""
    ts = sde.time_of_noise_level(sigmas)
    ts[0], ts[-1] = 1.0, eps  # remove round-off at the ends
    return check_time_grid(ts)


def edm_time_grid(sde: SDE, steps: int, eps: float = 1e-5, rho: float = 7.0) -> torch.Tensor:
    """The time grid of Karras et al. 2022 (EDM, eq. 5), eq. (edm-grid): `steps` + 1 times from 1 to eps.

    Noise levels spaced uniformly in sigma~^{1/rho} (NVlabs/edm generate.py, `t_steps`):

        sigma_i = (sigma_max^{1/rho} + i/(N-1) (sigma_min^{1/rho} - sigma_max^{1/rho}))^rho,  i = 0..N-1,

    with N = steps + 1, sigma_max = sigma~_1 and sigma_min = sigma~_eps (`SDE.noise_level`), mapped back
    to times by `SDE.time_of_noise_level`. rho = 7 puts most steps at low noise, where the
    PF-ODE bends most; rho = 1 is uniform in sigma~. The endpoints are exactly 1 and eps.

    Returns:
        A strictly decreasing float64 tensor of shape (steps + 1,).
    """
    check_sde(sde)
    check_positive_int(steps, "steps")
    eps = check_eps(eps)
    inv = 1.0 / check_positive_float(rho, "rho")
    sigma_max, sigma_min = (sde.noise_level(t).item() for t in (1.0, eps))
    i = torch.arange(steps + 1, dtype=torch.float64)
    sigmas = (sigma_max**inv + i / steps * (sigma_min**inv - sigma_max**inv)) ** rho
    return _times_of_noise_levels(sde, sigmas, eps)


def logsnr_time_grid(sde: SDE, steps: int, eps: float = 1e-5) -> torch.Tensor:
    """Times with ln sigma~ uniformly spaced from ln sigma~_1 to ln sigma~_eps, eq. (ch9-logsnr-grid).

    The "time-uniform log-SNR" grid of Lu et al. 2022 (DPM-Solver, section 3.3 / Appendix), the
    natural grid of solvers in lambda = -ln sigma~; it is the limit rho -> infinity of
    `edm_time_grid`. Strictly decreasing float64, shape (steps + 1,), endpoints exactly 1 and eps.
    """
    check_sde(sde)
    check_positive_int(steps, "steps")
    eps = check_eps(eps)
    log_max, log_min = (math.log(sde.noise_level(t).item()) for t in (1.0, eps))
    sigmas = torch.exp(torch.linspace(log_max, log_min, steps + 1, dtype=torch.float64))
    return _times_of_noise_levels(sde, sigmas, eps)


def _uniform_grid_of(sde: SDE, steps: int, eps: float) -> torch.Tensor:
    """`uniform_time_grid` with the (sde, steps, eps) signature of `TIME_GRIDS`."""
    check_sde(sde)
    return uniform_time_grid(steps, eps)


TIME_GRIDS: dict[str, Callable[[SDE, int, float], torch.Tensor]] = {
    "uniform": _uniform_grid_of,
    "edm": edm_time_grid,
    "logsnr": logsnr_time_grid,
}
"""Time grids by name; each is grid(sde, steps, eps) -> decreasing float64 times from 1 to eps."""

GRIDS = TIME_GRIDS.keys()
"""The grid names (a live view of `TIME_GRIDS`)."""


def time_grid(sde: SDE, steps: int, eps: float = 1e-5, grid: str = "uniform") -> torch.Tensor:
    """The time grid named `grid` (a key of `TIME_GRIDS`): "uniform", "edm" (rho = 7) or "logsnr"."""
    return TIME_GRIDS[check_choice(grid, "grid", GRIDS)](sde, steps, eps)


# ---------------------------------------------------------------------------
# solvers, all solver(score_fn, sde, x1, ts, return_path=False)
# ---------------------------------------------------------------------------


def _solver_inputs(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts) -> tuple[ScoreFn, list[float]]:
    """Check a solver's arguments once; return the shape-checked score and ts as a list of floats in [0, 1]."""
    check_sde(sde)
    check_tensor(x1, "x1", ndim=2)
    ts = check_time_grid(ts)
    if (ts < 0).any() or (ts > 1).any():
        raise ValueError("ts must lie in [0, 1]")
    return checked_score_fn(score_fn), ts.tolist()


def _noise_level_solver_inputs(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts) -> tuple[ScoreFn, list[float]]:
    """`_solver_inputs` for solvers in sigma~: the start must have sigma~ > 0 (the slope is 0/0 at sigma~ = 0)."""
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    if sde.noise_level(ts[0]).item() == 0.0:
        raise ValueError(f"ts[0] = {ts[0]} has noise level 0: a solver in the noise level cannot start "
                         "there (its slope (x~ - D) / sigma~ is 0/0); start at a time with sigma~ > 0")
    return score_fn, ts


def data_prediction(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, t: float) -> torch.Tensor:
    """D(x, t) = (x + sigma_t^2 s(x, t)) / m_t: Tweedie's estimate of E[x_0 | x_t = x], shape (N, D)."""
    m = sde.marginal_mean_coeff(t).item()
    var = sde.marginal_std(t).item() ** 2
    return (x + var * checked_score_fn(score_fn)(x, t)) / m


def euler_t(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Reverse-time Euler on the PF-ODE in t, eq. (euler-reverse): the book's sampler. 1 score evaluation per step."""
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    return euler(pf_ode_drift(sde, score_fn), x1, ts, return_path=return_path)


def heun_t(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Heun's method on the PF-ODE in t, eq. (heun-step) (`sbgm_edu.ode.heun`). 2 evaluations per step."""
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    return heun(pf_ode_drift(sde, score_fn), x1, ts, return_path=return_path)


def euler_sigma(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Euler in the noise level with the data prediction: DDIM = DPM-Solver-1, eq. (euler-sigma).

    One score evaluation per step. From (x_i, t_i) to t_{i+1}, with sigma~ = `SDE.noise_level`:

        D = D(x_i, t_i);   x~_{i+1} = D + (sigma~_{i+1} / sigma~_i) (x~_i - D);   x_{i+1} = m_{i+1} x~_{i+1},

    an Euler step of dx~/dsigma~ = (x~ - D)/sigma~ (Karras et al. 2022, eq. 4, Algorithm 1
    without its correction); the same update as deterministic DDIM (Song et al. 2021, eq. 12)
    and DPM-Solver-1 (Lu et al. 2022, eq. 3.7). For VE (m = 1): x' = D + (sigma'/sigma)(x - D).
    If the data are one point x*, then D = x* and the step is exact however large it is.
    A step to sigma~ = 0 (a grid ending at t = 0) lands on D.
    """
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)
    x = x1
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        m, m_next = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(t_next).item()
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        d = data_prediction(score_fn, sde, x, t)  # the denoised estimate, in x~ units
        x = m_next * (d + (s_next / s) * (x / m - d))  # move along the straight line from D through x~
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def heun_edm(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Heun's method in the noise level, Karras et al. 2022, Algorithm 1 (NVlabs/edm generate.py, deterministic).

    In the scaled variables (x~ = x / m_t, sigma~ = `SDE.noise_level`), with d(x~, sigma~) = (x~ - D)/sigma~:

        d_i = d(x~_i, sigma~_i);  x~' = x~_i + (sigma~_{i+1} - sigma~_i) d_i            (Euler predictor)
        if sigma~_{i+1} != 0:    x~_{i+1} = x~_i + (sigma~_{i+1} - sigma~_i)(d_i + d(x~', sigma~_{i+1}))/2

    Karras et al. skip the correction on the last step when it reaches sigma~ = 0 (a grid
    ending at t = 0), where it would divide by 0: that last step is Euler, 1 evaluation.
    Our grids end at t = eps > 0, so the correction is always applied (2 score evaluations
    per step). No stochastic churn (S_churn = 0).
    """
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)

    def slope(x_scaled: torch.Tensor, t: float, s: float) -> torch.Tensor:
        m = sde.marginal_mean_coeff(t).item()
        return (x_scaled - data_prediction(score_fn, sde, m * x_scaled, t)) / s  # dx~/dsigma~

    x = x1 / sde.marginal_mean_coeff(ts[0]).item()
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        d = slope(x, t, s)
        x_pred = x + (s_next - s) * d
        if s_next > 0:  # second-order correction (trapezoid rule in sigma~)
            x = x + (s_next - s) * 0.5 * (d + slope(x_pred, t_next, s_next))
        else:
            x = x_pred
        if return_path:
            path.append(sde.marginal_mean_coeff(t_next).item() * x)
    x = sde.marginal_mean_coeff(ts[-1]).item() * x
    return torch.stack(path) if return_path else x


def dpm_solver_2m(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M): a second-order multistep method in lambda = -ln sigma~ (Lu et al. 2022b, Algorithm 2).

    One score evaluation per step, like `euler_sigma`, but it reuses the previous data
    prediction to extrapolate D linearly in lambda (h_i = lambda_{i+1} - lambda_i, r = h_{i-1}/h_i):

        D^ = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1};   x~_{i+1} = D^ + (sigma~_{i+1}/sigma~_i)(x~_i - D^).

    The first step has no previous D and is the `euler_sigma` (DDIM) step; so is a last step to
    sigma~ = 0 (lambda = infinity, where the extrapolation has no meaning): Karras et al.'s rule,
    it lands on D_i. Source: the reference code `dpm_solver_pytorch.py` (LuChengTHU/dpm-solver,
    `multistep_dpm_solver_second_update`, "dpmsolver++", solver_type "dpmsolver").
    """
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)
    x = x1
    path = [x1]
    d_prev, h_prev = None, None
    for t, t_next in zip(ts[:-1], ts[1:]):
        m, m_next = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(t_next).item()
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        d = data_prediction(score_fn, sde, x, t)
        h = math.log(s / s_next) if s_next > 0 else math.inf  # lambda_{i+1} - lambda_i > 0
        if d_prev is None or math.isinf(h):
            d_hat = d  # first step, or the last step to sigma~ = 0: DDIM
        else:
            r = h_prev / h
            d_hat = (1 + 0.5 / r) * d - (0.5 / r) * d_prev  # linear extrapolation of D in lambda
        x = m_next * (d_hat + (s_next / s) * (x / m - d_hat))
        d_prev, h_prev = d, h
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


# ---------------------------------------------------------------------------
# the registry: add a solver = write its function above + ONE entry here
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SolverSpec:
    """What `solve`, `sbgm_edu.sampling.sample`, chapter 9 and the benchmarks need to know about a solver."""

    function: Solver
    """function(score_fn, sde, x1, ts, return_path=False, **options) -> x at ts[-1]."""
    evaluations_per_step: int
    """Score evaluations per step (on grids ending at t = eps > 0)."""
    label: str
    """Display label for tables and figures (may hold MyST math, e.g. "Euler in $t$")."""
    order: int
    """Order of the deterministic solver (weak order if stochastic)."""
    stochastic: bool = False
    """True: the function also takes generator=None (a torch.Generator for its noise)."""


REGISTRY: dict[str, SolverSpec] = {
    "euler": SolverSpec(euler_t, 1, "Euler in $t$", 1),
    "heun": SolverSpec(heun_t, 2, "Heun in $t$", 2),
    "euler_sigma": SolverSpec(euler_sigma, 1, "Euler in $\\sigma$ (DDIM)", 1),
    "ddim": SolverSpec(euler_sigma, 1, "Euler in $\\sigma$ (DDIM)", 1),
    "heun_edm": SolverSpec(heun_edm, 2, "Heun in $\\sigma$ (EDM)", 2),
    "dpm_solver_2m": SolverSpec(dpm_solver_2m, 1, "DPM-Solver++(2M)", 2),
}
"""Every solver by name. "ddim" is another name for "euler_sigma" (the same function)."""


class _RegistryView(Mapping):
    """A read-only, live view of one field of `REGISTRY`: name -> getattr(spec, field)."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __getitem__(self, name: str):
        return getattr(REGISTRY[name], self.field)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


SOLVERS: Mapping[str, Solver] = _RegistryView("function")
"""Solvers by name: a read-only view of `REGISTRY` (kept for older code)."""

EVALUATIONS_PER_STEP: Mapping[str, int] = _RegistryView("evaluations_per_step")
"""Score evaluations per step of each solver: a read-only view of `REGISTRY`."""


def distinct_solvers() -> list[str]:
    """The names of `REGISTRY` without aliases (the first name of each function), in registry order."""
    seen, names = set(), []
    for name, spec in REGISTRY.items():
        if spec.function not in seen:
            seen.add(spec.function)
            names.append(name)
    return names


def solve(
    score_fn: ScoreFn,
    sde: SDE,
    x1: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    name: str = "euler",
    generator: torch.Generator | None = None,
    return_path: bool = False,
    **options,
) -> torch.Tensor:
    """Run the solver `name` (a key of `REGISTRY`) on the PF-ODE (or reverse SDE) from x1 at ts[0] to ts[-1].

    generator is passed to stochastic solvers only (deterministic ones have no randomness);
    options go to the solver's function. Returns (N, D), or the path (len(ts), N, D).
    """
    spec = REGISTRY[check_choice(name, "name", REGISTRY)]
    if spec.stochastic:
        options["generator"] = generator
    return spec.function(score_fn, sde, x1, ts, return_path=return_path, **options)


_MOVED_TO_SOLVER_STUDY = ("COMPARED_METHODS", "COMPARED_NFES", "CountingScore", "ErrorProblem",
                          "error_vs_nfe", "gaussian_pf_ode_flow", "reference_problems")


def __getattr__(name: str):
    """Chapter 9's experiment helpers moved to `sbgm_edu.solver_study`; the old import path keeps working."""
    if name in _MOVED_TO_SOLVER_STUDY:
        from sbgm_edu import solver_study

        return getattr(solver_study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EVALUATIONS_PER_STEP",
    "GRIDS",
    "REGISTRY",
    "SOLVERS",
    "TIME_GRIDS",
    "SolverSpec",
    "data_prediction",
    "distinct_solvers",
    "dpm_solver_2m",
    "edm_time_grid",
    "euler_sigma",
    "euler_t",
    "heun_edm",
    "heun_t",
    "logsnr_time_grid",
    "noise_level",
    "solve",
    "time_grid",
    "time_of_noise_level",
    "uniform_time_grid",
]
