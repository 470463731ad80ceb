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
    check_float,
    check_positive_float,
    check_positive_int,
    check_tensor,
    check_time_grid,
    checked_score_fn,
)
from sbgm_edu.ode import euler, heun
from sbgm_edu.sde import SDE, ScoreFn, check_eta, check_sde, pf_ode_drift, reverse_drift

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
    natural grid of solvers in kappa = -ln sigma~; it is the limit rho -> infinity of
    `edm_time_grid`. Strictly decreasing float64, shape (steps + 1,), endpoints exactly 1 and eps.
    """
    check_sde(sde)
    check_positive_int(steps, "steps")
    eps = check_eps(eps)
    log_max, log_min = (math.log(sde.noise_level(t).item()) for t in (1.0, eps))
    sigmas = torch.exp(torch.linspace(log_max, log_min, steps + 1, dtype=torch.float64))
    return _times_of_noise_levels(sde, sigmas, eps)


def with_denoising_step(ts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Append t = 0 to a decreasing grid ending at t > 0: the final denoising step (eq. (ch9-denoise-step)).

    On the step to t = 0 (sigma~ = 0) the solvers of this module return the data prediction
    D(x, t_last), Karras et al. 2022's last step (Algorithm 1: an Euler step to sigma = 0 is exactly D):
    one more score evaluation. Returns float64 of shape (len(ts) + 1,).
    """
    ts = check_time_grid(ts)
    if not (ts[-1] < ts[0]) or ts[-1] <= 0:
        raise ValueError("ts must be decreasing and end at a time > 0 before a denoising step is appended")
    return torch.cat([ts, ts.new_zeros(1)])


def karras_time_grid(sde: SDE, steps: int, eps: float = 1e-5, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022's schedule (their eq. 5) with sigma_N = 0: `steps` steps, the last one the denoising step.

    The EDM grid (`edm_time_grid`) with steps - 1 steps from t = 1 to eps, then t = 0
    (`with_denoising_step`). `steps` >= 2. Shape (steps + 1,), float64.
    """
    check_positive_int(steps, "steps", minimum=2)
    return with_denoising_step(edm_time_grid(sde, steps - 1, eps, rho))


FITTED_SIGMA_LAST: float = 0.0838
"""The last positive noise level of `fitted_time_grid`, fitted by scripts/fit_time_grid.py at NFE 10 on
random 2-D Gaussian mixtures under VESDE(25) (data scale about 1; not on chapter 9's own problems)."""


def fitted_time_grid(sde: SDE, steps: int, eps: float = 1e-5, sigma_last: float = FITTED_SIGMA_LAST) -> torch.Tensor:
    """steps - 1 steps uniform in kappa = -ln sigma~ from sigma~_1 to sigma_last, then the denoising step.

    See eq. (ch9-fitted-grid).

    Ending the ODE early and jumping to t = 0 with D (`with_denoising_step`) spends the steps where
    D changes; the jump itself is off by a bias of order sigma_last^2 / s^2 for data of scale s, and the
    default sigma_last (`FITTED_SIGMA_LAST`) balances the two on random 2-D mixtures of scale about 1
    (scripts/fit_time_grid.py). sigma_last is in the units of the data: rescale it for other data.

    Args:
        steps: total number of steps (>= 2), the denoising step included.
        eps: the smallest time of the book's other grids; sigma_last must lie above its noise level.
        sigma_last: the last positive noise level, sigma~_eps < sigma_last < sigma~_1.
    Returns:
        float64 of shape (steps + 1,), from 1 to 0.
    """
    check_sde(sde)
    check_positive_int(steps, "steps", minimum=2)
    eps = check_eps(eps)
    log_max, log_min = (math.log(sde.noise_level(t).item()) for t in (1.0, eps))
    if isinstance(sigma_last, bool) or not isinstance(sigma_last, (int, float)) or not (
        log_min < math.log(sigma_last) < log_max if sigma_last > 0 else False
    ):
        bounds = f"({math.exp(log_min):.3g}, {math.exp(log_max):.3g})"
        raise ValueError(f"sigma_last must lie in {bounds}, got {sigma_last!r}")
    levels = torch.exp(torch.linspace(log_max, math.log(sigma_last), steps, dtype=torch.float64))
    ts = time_of_noise_level(sde, levels)
    ts[0] = 1.0
    return with_denoising_step(ts)


def _uniform_grid_of(sde: SDE, steps: int, eps: float) -> torch.Tensor:
    """`uniform_time_grid` with the (sde, steps, eps) signature of `TIME_GRIDS`."""
    check_sde(sde)
    return uniform_time_grid(steps, eps)


TIME_GRIDS: dict[str, Callable[[SDE, int, float], torch.Tensor]] = {
    "uniform": _uniform_grid_of,
    "edm": edm_time_grid,
    "logsnr": logsnr_time_grid,
    "karras": karras_time_grid,
    "fitted": fitted_time_grid,
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

    It solves the ODE in the noise level, eq. (ch9-sigma-ode).

    In the scaled variables (x~ = x / m_t, sigma~ = `SDE.noise_level`), with d(x~, sigma~) = (x~ - D)/sigma~:

        d_i = d(x~_i, sigma~_i);  x~' = x~_i + (sigma~_{i+1} - sigma~_i) d_i            (Euler predictor)
        if sigma~_{i+1} != 0:    x~_{i+1} = x~_i + (sigma~_{i+1} - sigma~_i)(d_i + d(x~', sigma~_{i+1}))/2

    Karras et al. skip the correction on the last step when it reaches sigma~ = 0 (a grid
    ending at t = 0), where it would divide by 0: that last step is Euler, 1 evaluation.
    On grids ending at t = eps > 0 the correction is always applied (2 score evaluations per
    step); the grid "karras" (`karras_time_grid`) ends at t = 0 as Karras et al.'s does.
    No stochastic churn (S_churn = 0, which is their Algorithm 2).
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
    """DPM-Solver++(2M): a second-order multistep method in kappa = -ln sigma~ (Lu et al. 2022b, Algorithm 2).

    One score evaluation per step, like `euler_sigma`, but it reuses the previous data
    prediction to extrapolate D linearly in kappa (h_i = kappa_{i+1} - kappa_i, r = h_{i-1}/h_i):

        D^ = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1};   x~_{i+1} = D^ + (sigma~_{i+1}/sigma~_i)(x~_i - D^).

    The first step has no previous D and is the `euler_sigma` (DDIM) step; so is a last step to
    sigma~ = 0 (kappa = infinity, where the extrapolation has no meaning): Karras et al.'s rule,
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
        h = math.log(s / s_next) if s_next > 0 else math.inf  # kappa_{i+1} - kappa_i > 0
        if d_prev is None or math.isinf(h):
            d_hat = d  # first step, or the last step to sigma~ = 0: DDIM
        else:
            r = h_prev / h
            d_hat = (1 + 0.5 / r) * d - (0.5 / r) * d_prev  # linear extrapolation of D in kappa
        x = m_next * (d_hat + (s_next / s) * (x / m - d_hat))
        d_prev, h_prev = d, h
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


# ---------------------------------------------------------------------------
# third-order multistep solvers in kappa = -ln sigma~ (DPM-Solver++(3M), UniPC)
# and the final denoising step. Every step from ell_i to ell_{i+1} = ell_i + h
# integrates the exact exponential-integrator identity (eq. (ch9-exp-integrator))
#     x~_{i+1} = e^{-h} x~_i + int_0^h e^{-(h-u)} D(ell_i + u) du
# with D replaced by a polynomial in kappa through the latest data predictions.
# A grid that ends at t = 0 (sigma~ = 0, `with_denoising_step`) makes the last
# step x = D: Karras et al.'s rule for the last step, one evaluation.
# ---------------------------------------------------------------------------


def exponential_integrator_weights(h: float) -> tuple[float, float, float]:
    """The weights of 1, u and u^2/2 in int_0^h e^{-(h-u)} P(u) du, for h > 0 (eq. (ch9-exp-integrator)).

        w0 = 1 - e^{-h},   w1 = h - 1 + e^{-h},   w2 = h^2/2 - h + 1 - e^{-h},

    computed with expm1 (they are O(h), O(h^2), O(h^3) for small h). The reference code
    (LuChengTHU/dpm-solver) writes them as -phi_1, h phi_2 and -h^2 phi_3.
    """
    em1 = math.expm1(-h)  # e^{-h} - 1
    w0 = -em1
    w1 = h + em1
    w2 = h * h / 2 - h - em1
    return w0, w1, w2


def _derivative_estimates(kappas: list[float], ds: list[torch.Tensor], order: int) -> list[torch.Tensor]:
    """[D, D', D''] at kappas[-1] from the last `order` data predictions (divided differences in kappa).

    order 1: [D]; order 2: D' = (D_i - D_{i-1}) / h_{i-1}; order 3: the derivatives of the
    quadratic through the last three points (D'' = 2 x second divided difference).
    """
    d0 = ds[-1]
    if order == 1:
        return [d0]
    h0 = kappas[-1] - kappas[-2]
    slope0 = (ds[-1] - ds[-2]) / h0
    if order == 2:
        return [d0, slope0]
    h1 = kappas[-2] - kappas[-3]
    slope1 = (ds[-2] - ds[-3]) / h1
    second = 2.0 * (slope0 - slope1) / (h0 + h1)  # D''
    return [d0, slope0 + 0.5 * h0 * second, second]  # D' at kappas[-1] = slope0 + h0 D''/2


def _steps_to_positive_noise(sde: SDE, ts: list[float]) -> int:
    """The number of steps of the grid that end at sigma~ > 0 (all but a final step to sigma~ = 0)."""
    return len(ts) - 1 - (sde.noise_level(ts[-1]).item() == 0.0)


def dpm_solver_3m(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False, lower_order_final: bool = True
) -> torch.Tensor:
    """DPM-Solver++(3M): third-order multistep exponential integrator in kappa = -ln sigma~ (eq. (ch9-multistep)).

    Lu et al. 2022b (Appendix, "multistep DPM-Solver++"). One score evaluation per step: D_i is
    evaluated at (x_i, t_i), then D is extrapolated in kappa by the polynomial through the last
    k <= 3 predictions and integrated exactly (`exponential_integrator_weights`):

        x~_{i+1} = e^{-h} x~_i + w0 D_i + w1 D'_i + w2 D''_i,      h = ell_{i+1} - ell_i.

    k = 1, 2, 3 on the first three steps (the first step is DDIM). `lower_order_final` (the
    reference code's option) also lowers k on the last two steps (k <= steps - i): at low NFE
    the extrapolation to a long last step is the least reliable one. A step to sigma~ = 0
    (`with_denoising_step`) returns D_i. Note: the reference code's third-order term
    (LuChengTHU/dpm-solver `multistep_dpm_solver_third_update`) uses half of D'' (its D2 is
    h^2 D''/2 where its weight needs h^2 D''): transcribed exactly its local error is O(h^3),
    not O(h^4) (book chapter 9 measures it). This function uses the full D''.

    Args/returns as every solver: x1 (N, D) at ts[0]; returns (N, D) at ts[-1], or the path.
    """
    return _multistep(score_fn, sde, x1, ts, return_path, max_order=3, lower_order_final=lower_order_final)


def _multistep(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool, max_order: int,
               lower_order_final: bool) -> torch.Tensor:
    """The loop shared by the exponential-integrator multistep solvers (see `dpm_solver_3m`)."""
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)
    steps = _steps_to_positive_noise(sde, ts)
    x, path, kappas, ds = x1, [x1], [], []
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        m, m_next = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(t_next).item()
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        ds.append(data_prediction(score_fn, sde, x, t))
        kappas.append(-math.log(s))
        if s_next == 0.0:  # the last step to sigma~ = 0: x = D (Karras et al.'s last step)
            x = m_next * ds[-1]
        else:
            h = math.log(s / s_next)
            k = min(max_order, len(ds), steps - i if lower_order_final else max_order)
            terms = _derivative_estimates(kappas, ds, k)
            x_scaled = math.exp(-h) * (x / m) + sum(w * d for w, d in zip(exponential_integrator_weights(h), terms))
            x = m_next * x_scaled
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def _unipc_coefficients(rks: list[float], h: float, variant: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """UniPC's linear system (Zhao et al. 2023, Algorithm 1 / eq. 10 with B(h)): R (p, p), b (p,), B(h).

    R[k, j] = r_j^k, b[k] = k! phi_{k+2}(-h)-type integrals / B(h), as in the reference code
    (wl-zhao/UniPC, `multistep_uni_pc_bh_update`, data prediction): with hh = -h,
    h phi_1 = e^{hh} - 1, h_phi_k starts at h phi_1 / hh - 1 and recurses h_phi_k / hh - 1/(k+1)!.
    B(h) = hh ("bh1") or e^{hh} - 1 ("bh2").
    """
    hh = -h
    h_phi_1 = math.expm1(hh)
    big_b = hh if variant == "bh1" else h_phi_1
    h_phi_k, factorial, rows, b = h_phi_1 / hh - 1.0, 1.0, [], []
    for k in range(1, len(rks) + 1):
        rows.append([r ** (k - 1) for r in rks])
        b.append(h_phi_k * factorial / big_b)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1.0 / factorial
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), big_b


def unipc(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False, order: int = 3,
    variant: str = "bh2", lower_order_final: bool = True,
) -> torch.Tensor:
    """UniPC: multistep predictor (UniP) and corrector (UniC) in kappa = -ln sigma~ (Zhao et al. 2023).

    One score evaluation per step, like DPM-Solver++(3M). Step i predicts x~_{i+1} with the
    last p data predictions (UniP-p), evaluates D_{i+1} at the PREDICTED point, and uses it to
    correct x~_{i+1} (UniC-p, order p + 1) before moving on; D_{i+1} is reused by the next
    predictor, so the corrector is free. The last step is not corrected (that would cost one more
    evaluation). With D_k = D at ell_k, r_k = (ell_{i-k} - ell_i)/h and hh = -h:

        x~' = e^{-h} x~_i + (1 - e^{-h}) D_i - B(h) sum_k a_k (D_{i-k} - D_i)/r_k          (UniP)
        x~_{i+1} = x~' - B(h) [sum_k c_k (D_{i-k} - D_i)/r_k + c_p (D_{i+1} - D_i)]   with x~' the
        first-order part only,                                                           (UniC)

    a = R[:-1,:-1]^{-1} b[:-1] and c = R^{-1} b (`_unipc_coefficients`); p = 2 uses a = 1/2 and
    p = 1 uses c = 1/2, as the reference code. p = min(order, steps taken), lowered on the last
    steps if `lower_order_final`. A step to sigma~ = 0 returns the latest D.

    Args:
        order: 1, 2 or 3 (the predictor's order); variant: "bh1" (B(h) = h) or "bh2" (B(h) = e^h - 1).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"variant must be 'bh1' or 'bh2', got {variant!r}")
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)
    steps = _steps_to_positive_noise(sde, ts)
    x = x1 / sde.marginal_mean_coeff(ts[0]).item()
    ds, kappas = [data_prediction(score_fn, sde, x1, ts[0])], [-math.log(sde.noise_level(ts[0]).item())]
    path = [x1]
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        if s_next == 0.0:  # the step to sigma~ = 0: x = D at the (uncorrected) last point
            x = data_prediction(score_fn, sde, sde.marginal_mean_coeff(t).item() * x, t)
        else:
            p = min(order, len(ds), steps - i if lower_order_final else order)
            x = _unipc_step(score_fn, sde, x, t_next, math.log(s / s_next), ds, kappas, p, variant,
                            correct=i < steps - 1)
        if return_path:
            path.append(sde.marginal_mean_coeff(t_next).item() * x)
    x = sde.marginal_mean_coeff(ts[-1]).item() * x
    return torch.stack(path) if return_path else x


def _unipc_step(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, t_next: float, h: float, ds: list[torch.Tensor],
                kappas: list[float], p: int, variant: str, correct: bool) -> torch.Tensor:
    """One UniPC step from x~_i (scaled) to t_next; appends D_{i+1} to `ds` when it corrects."""
    rks = [(kappas[-1 - k] - kappas[-1]) / h for k in range(1, p)] + [1.0]
    diffs = [(ds[-1 - k] - ds[-1]) / rks[k - 1] for k in range(1, p)]
    big_r, b, big_b = _unipc_coefficients(rks, h, variant)
    x_first = math.exp(-h) * x - math.expm1(-h) * ds[-1]  # the DDIM step
    if diffs:
        a = [0.5] if p == 2 else torch.linalg.solve(big_r[:-1, :-1], b[:-1]).tolist()
        x_pred = x_first - big_b * sum(ak * dk for ak, dk in zip(a, diffs))
    else:
        x_pred = x_first
    if not correct:
        return x_pred
    m_next = sde.marginal_mean_coeff(t_next).item()
    d_next = data_prediction(score_fn, sde, m_next * x_pred, t_next)
    c = [0.5] if p == 1 else torch.linalg.solve(big_r, b).tolist()
    correction = sum(ck * dk for ck, dk in zip(c[:-1], diffs)) + c[-1] * (d_next - ds[-1])
    ds.append(d_next)
    kappas.append(kappas[-1] + h)
    return x_first - big_b * correction


# ---------------------------------------------------------------------------
# stochastic samplers: the reverse-time SDE, Langevin correctors, EDM's Algorithm 2
# (chapter "The reverse-time SDE", book/ch10_reverse_sde.ipynb); each takes generator=None
# ---------------------------------------------------------------------------


def _reverse_em_step(
    drift: Callable[[torch.Tensor, float], torch.Tensor], sde: SDE, x: torch.Tensor, t: float, t_next: float,
    eta: float, generator: torch.Generator | None,
) -> torch.Tensor:
    """One Euler–Maruyama step of eq. (eta-family) from t to t_next < t: x + h b(x, t) + eta g(t) sqrt(|h|) z."""
    h = t_next - t  # negative: time runs backwards
    x_next = x + h * drift(x, t)
    if eta > 0:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_next = x_next + eta * sde.diffusion(t).item() * math.sqrt(-h) * z
    return x_next


def euler_maruyama_reverse(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, eta: float = 1.0,
    generator: torch.Generator | None = None, return_path: bool = False,
) -> torch.Tensor:
    """Euler–Maruyama on the reverse-time family of eq. (eta-family), from x1 at ts[0] down to ts[-1].

    Each step, with h = t_{k+1} - t_k < 0, b = `sbgm_edu.sde.reverse_drift(sde, score_fn, eta)` and
    z ~ N(0, I) drawn from `generator`:

        x_{k+1} = x_k + h b(x_k, t_k) + eta g(t_k) sqrt(|h|) z,                     eq. (reverse-em)

    eta = 1 is Anderson's reverse-time SDE (the "reverse diffusion" predictor of Song et al. 2021),
    eta = 0 is reverse-time Euler on the PF-ODE (`euler_t`; no random numbers are drawn).
    Every step adds its noise, the last one too, so the result targets p_{ts[-1]}; on a grid whose
    last step is short (the EDM grid) that noise is small. One score evaluation per step.

    Args:
        score_fn: s(x, t); sde: the forward SDE; x1: prior draws (N, D) at ts[0].
        ts: strictly decreasing times in [0, 1]; eta: noise scale, a float >= 0.
        generator: torch.Generator for the noise; return_path: return (len(ts), N, D).
    """
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    drift = reverse_drift(sde, score_fn, eta)
    eta = check_eta(eta)
    x, path = x1, [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = _reverse_em_step(drift, sde, x, t, t_next, eta, generator)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def langevin_step_size(score: torch.Tensor, noise: torch.Tensor, snr: float) -> float:
    """The signal-to-noise step rule of Song et al. 2021 (corrector algorithms, Appendix G), eq. (snr-step).

    step = 2 (snr |z| / |s|)^2, with |z| and |s| the Euclidean norms of the rows of `noise` and
    `score` (N, D), each averaged over the batch (as in the authors' code, `LangevinCorrector`).
    It makes the ratio |step s| / |sqrt(2 step) z| of the drift to the noise of a Langevin step equal snr.
    """
    score_norm = score.flatten(1).norm(dim=1).mean().item()
    noise_norm = noise.flatten(1).norm(dim=1).mean().item()
    return 2.0 * (snr * noise_norm / score_norm) ** 2


def langevin_corrector(
    score_fn: ScoreFn, x: torch.Tensor, t: float, snr: float = 0.16, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One Langevin step toward p_t with the step of `langevin_step_size`, eq. (langevin-step).

        x' = x + step s(x, t) + sqrt(2 step) z,    z ~ N(0, I),

    the unadjusted Langevin algorithm: for a small step it leaves p_t (nearly) invariant, and
    repeated, it pulls any start toward p_t. x has shape (N, D); one score evaluation.
    (Song et al. multiply the step by alpha_i = 1 - beta_i for the discretised VP SDE; we do not.)
    """
    score = score_fn(x, t)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    step = langevin_step_size(score, z, snr)
    return x + step * score + math.sqrt(2.0 * step) * z


def predictor_corrector(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, snr: float = 0.16, corrector_steps: int = 1,
    generator: torch.Generator | None = None, return_path: bool = False,
) -> torch.Tensor:
    """Predictor–corrector sampling (Song et al. 2021, section 4.2 and Appendix G), eq. (pc-sampler).

    At each grid time t_k: `corrector_steps` Langevin steps toward p_{t_k} (`langevin_corrector`, step
    rule eq. (snr-step) with signal-to-noise ratio snr), then one reverse Euler–Maruyama step (eta = 1,
    eq. (reverse-em)) to t_{k+1}. 1 + corrector_steps score evaluations per step. Song et al. use
    snr = 0.16 and one corrector step for VE models on CIFAR-10.

    Args:
        score_fn, sde, x1, ts, generator, return_path: as in `euler_maruyama_reverse`.
        snr: the signal-to-noise ratio r > 0 of the corrector; corrector_steps: an int >= 0 (0: no corrector).
    """
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    snr = check_positive_float(snr, "snr")
    check_positive_int(corrector_steps, "corrector_steps", minimum=0)
    drift = reverse_drift(sde, score_fn, 1.0)
    x, path = x1, [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        for _ in range(corrector_steps):
            x = langevin_corrector(score_fn, x, t, snr, generator)
        x = _reverse_em_step(drift, sde, x, t, t_next, 1.0, generator)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def annealed_langevin(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, langevin_steps: int = 100, step_ratio: float = 0.2,
    generator: torch.Generator | None = None, return_path: bool = False,
) -> torch.Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), eq. (annealed-langevin).

    For each noise level t_1, ..., t_N = ts[1:] (decreasing), `langevin_steps` Langevin steps at that level,

        x <- x + (alpha_i / 2) s(x, t_i) + sqrt(alpha_i) z,     alpha_i = step_ratio * sigma_{t_i}^2,

    Song & Ermon's alpha_i = epsilon sigma_i^2 / sigma_L^2 with step_ratio = epsilon / sigma_L^2
    (their epsilon = 2e-5, sigma_L = 0.01 give the default 0.2; they take 100 steps at each of 10 levels).
    No SDE is discretised: each level only runs a Markov chain toward p_{t_i}. `langevin_steps`
    score evaluations per level; the path holds the state after each level.
    """
    score_fn, ts = _solver_inputs(score_fn, sde, x1, ts)
    check_positive_int(langevin_steps, "langevin_steps")
    step_ratio = check_positive_float(step_ratio, "step_ratio")
    x, path = x1, [x1]
    for t in ts[1:]:
        alpha = step_ratio * sde.marginal_std(t).item() ** 2
        for _ in range(langevin_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + 0.5 * alpha * score_fn(x, t) + math.sqrt(alpha) * z
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def _churned_level(s: float, s_max: float, s_churn: float, s_tmin: float, s_tmax: float, steps: int) -> float:
    """sigma^ = (1 + gamma) sigma of Karras et al. 2022, Algorithm 2, capped at sigma~(t = 1) = s_max."""
    gamma = min(s_churn / steps, math.sqrt(2.0) - 1.0) if s_tmin <= s <= s_tmax else 0.0
    return min((1.0 + gamma) * s, max(s, s_max))


def edm_stochastic(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, s_churn: float = 40.0, s_tmin: float = 0.05,
    s_tmax: float = 50.0, s_noise: float = 1.003, generator: torch.Generator | None = None,
    return_path: bool = False,
) -> torch.Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) in the variables of `heun_edm`, eq. (edm-churn).

    Each step first raises the noise level from sigma~_i to sigma^ = (1 + gamma_i) sigma~_i by adding fresh
    noise, x^ = x~_i + sqrt(sigma^2 - sigma~_i^2) S_noise z, with gamma_i = min(S_churn / N, sqrt 2 - 1) for
    sigma~_i in [S_tmin, S_tmax] and 0 outside, then takes the Heun step of `heun_edm` from sigma^ to
    sigma~_{i+1}. Defaults: the ImageNet-64 settings of the paper (Table 5). Our SDEs end at t = 1, so
    sigma^ is capped at sigma~(1). 2 score evaluations per step.
    """
    score_fn, ts = _noise_level_solver_inputs(score_fn, sde, x1, ts)
    for value, name in ((s_churn, "s_churn"), (s_tmin, "s_tmin"), (s_tmax, "s_tmax"), (s_noise, "s_noise")):
        check_float(value, name, low=0.0)

    def slope(x_scaled: torch.Tensor, t: float, s: float) -> torch.Tensor:
        m = sde.marginal_mean_coeff(t).item()
        return (x_scaled - data_prediction(score_fn, sde, m * x_scaled, t)) / s  # dx~/dsigma~

    s_max = sde.noise_level(ts[0]).item()
    x = x1 / sde.marginal_mean_coeff(ts[0]).item()
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        s, s_next = sde.noise_level(t).item(), sde.noise_level(t_next).item()
        s_hat = _churned_level(s, s_max, s_churn, s_tmin, s_tmax, len(ts) - 1)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_hat = x + math.sqrt(s_hat**2 - s**2) * s_noise * z
        t_hat = t if s_hat == s else sde.time_of_noise_level(s_hat).item()
        d = slope(x_hat, t_hat, s_hat)
        x = x_hat + (s_next - s_hat) * d
        if s_next > 0:  # second-order correction, as in heun_edm
            x = x_hat + (s_next - s_hat) * 0.5 * (d + slope(x, t_next, s_next))
        if return_path:
            path.append(sde.marginal_mean_coeff(t_next).item() * x)
    x = sde.marginal_mean_coeff(ts[-1]).item() * x
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
    "dpm_solver_3m": SolverSpec(dpm_solver_3m, 1, "DPM-Solver++(3M)", 3),
    "unipc": SolverSpec(unipc, 1, "UniPC", 3),
    "euler_maruyama": SolverSpec(euler_maruyama_reverse, 1, "reverse SDE, Euler–Maruyama", 1, stochastic=True),
    "pc": SolverSpec(predictor_corrector, 2, "predictor–corrector (Langevin)", 1, stochastic=True),
    "annealed_langevin": SolverSpec(annealed_langevin, 100, "annealed Langevin", 0, stochastic=True),  # no SDE solved
    "edm_stochastic": SolverSpec(edm_stochastic, 2, "EDM stochastic (Alg. 2)", 1, stochastic=True),
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
    "predictor_corrector",
    "langevin_step_size",
    "langevin_corrector",
    "euler_maruyama_reverse",
    "edm_stochastic",
    "annealed_langevin",
    "EVALUATIONS_PER_STEP",
    "GRIDS",
    "REGISTRY",
    "SOLVERS",
    "TIME_GRIDS",
    "SolverSpec",
    "data_prediction",
    "distinct_solvers",
    "dpm_solver_2m",
    "dpm_solver_3m",
    "edm_time_grid",
    "euler_sigma",
    "euler_t",
    "FITTED_SIGMA_LAST",
    "exponential_integrator_weights",
    "fitted_time_grid",
    "heun_edm",
    "heun_t",
    "karras_time_grid",
    "logsnr_time_grid",
    "noise_level",
    "solve",
    "time_grid",
    "time_of_noise_level",
    "uniform_time_grid",
    "unipc",
    "with_denoising_step",
]
