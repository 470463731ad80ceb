"""Better PF-ODE solvers: Heun as in EDM, Euler in the noise level (DDIM), DPM-Solver++(2M), and time grids.

Chapter "Better solvers" (book/ch09_solvers.ipynb).

Every solver here has the same signature

    solve(score_fn, sde, x1, ts, return_path=False) -> x at ts[-1]

with x1 the prior draw at ts[0] (usually t = 1) and ts a decreasing time grid
(`uniform_time_grid` or `edm_time_grid`), so that `sbgm_edu.sampling.sample` can
dispatch to them by name (`SOLVERS`).

The noise-level variable. For each SDE of `sbgm_edu.sde` the kernel is
N(m_t x_0, sigma_t^2 I). In the scaled variables x~ = x / m_t and
sigma~ = sigma_t / m_t (the noise-to-signal ratio; sigma~ = sigma_t for the VE SDE,
where m_t = 1) the PF-ODE of every such SDE takes the one form of Karras et al. 2022,
eq. (euler-sigma):

    dx~/dsigma~ = (x~ - D(x~, sigma~)) / sigma~,     D = (x + sigma_t^2 s(x, t)) / m_t,

with D the data prediction (Tweedie's formula: D = E[x_0 | x_t]). For a single data
point x*, D = x* for every x and sigma~, and the flow is a straight line toward x*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from sbgm_edu._checks import check_eps, check_positive_int, check_score_fn, check_tensor, check_time_grid
from sbgm_edu.ode import euler, heun
from sbgm_edu.sde import SDE, VESDE, VPSDE, ScoreFn, SubVPSDE, check_eta, check_sde, pf_ode_drift, reverse_drift

Solver = Callable[..., torch.Tensor]
"""solve(score_fn, sde, x1, ts, return_path=False) -> (N, D), or the path (len(ts), N, D)."""


# ---------------------------------------------------------------------------
# noise levels and time grids
# ---------------------------------------------------------------------------


def noise_level(sde: SDE, t: float | torch.Tensor) -> torch.Tensor:
    """sigma~_t = sigma_t / m_t, the noise-to-signal ratio of the kernel of `sde` (= sigma_t for VE).

    t: a float or a 1-D tensor of times in [0, 1]. Returns float64 of t's shape.
    """
    check_sde(sde)
    t = torch.as_tensor(t, dtype=torch.float64)
    return (sde.marginal_std(t) / sde.marginal_mean_coeff(t)).to(torch.float64)


def time_of_noise_level(sde: SDE, sigma: float | torch.Tensor) -> torch.Tensor:
    """The inverse of `noise_level`: the time t at which sigma_t / m_t = sigma (float64, sigma's shape).

    VE: sigma_t^2 = expm1(a t) / a with a = 2 ln(sigma_VE), so t = log1p(a sigma^2) / a
        (= ln(1 + 2 ln sigma_VE * sigma^2) / (2 ln sigma_VE)).
    VP: sigma~^2 = e^{B(t)} - 1, so B = log1p(sigma^2); sub-VP: sigma~ = 2 sinh(B/2), so
        B = 2 asinh(sigma/2). Then t solves B(t) = beta_min t + (beta_max - beta_min) t^2 / 2.

    Args:
        sde: a VESDE, VPSDE or SubVPSDE.
        sigma: noise levels >= 0, float or tensor.
    """
    check_sde(sde)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not torch.isfinite(sigma).all() or (sigma < 0).any():
        raise ValueError("sigma must be finite and >= 0")
    if isinstance(sde, VESDE):
        a = sde._two_log_sigma
        return torch.log1p(a * sigma**2) / a
    if isinstance(sde, SubVPSDE):  # check before VPSDE: SubVPSDE is a subclass
        big_b = 2.0 * torch.asinh(sigma / 2.0)
    elif isinstance(sde, VPSDE):
        big_b = torch.log1p(sigma**2)
    else:
        raise TypeError(f"time_of_noise_level knows VESDE, VPSDE and SubVPSDE, got {type(sde).__name__}")
    b0, db = sde.beta_min, sde.beta_max - sde.beta_min
    if db == 0.0:
        return big_b / b0
    # positive root of (db/2) t^2 + b0 t - B = 0, written to avoid cancellation
    return 2.0 * big_b / (b0 + torch.sqrt(b0**2 + 2.0 * db * big_b))


def uniform_time_grid(steps: int, eps: float = 1e-5) -> torch.Tensor:
    """t_i = linspace(1, eps, steps + 1): the book's grid of eq. (ve-euler-sampler), float64."""
    check_positive_int(steps, "steps")
    return torch.linspace(1.0, check_eps(eps), steps + 1, dtype=torch.float64)


def edm_time_grid(sde: SDE, steps: int, eps: float = 1e-5, rho: float = 7.0) -> torch.Tensor:
    """The time grid of Karras et al. 2022 (EDM, eq. (5)), eq. (edm-grid): `steps` + 1 times from 1 to eps.

    Noise levels spaced uniformly in sigma~^{1/rho} (NVlabs/edm generate.py, `t_steps`):

        sigma_i = (sigma_max^{1/rho} + i/(N-1) (sigma_min^{1/rho} - sigma_max^{1/rho}))^rho,  i = 0..N-1,

    with N = steps + 1, sigma_max = sigma~_1 and sigma_min = sigma~_eps (`noise_level`), mapped back
    to times by `time_of_noise_level`. rho = 7 puts most steps at low noise, where the
    PF-ODE bends most; rho = 1 is uniform in sigma~. The endpoints are exactly 1 and eps.

    Returns:
        A strictly decreasing float64 tensor of shape (steps + 1,).
    """
    check_sde(sde)
    check_positive_int(steps, "steps")
    eps = check_eps(eps)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a float > 0, got {rho!r}")
    sigma_max = noise_level(sde, 1.0).item()
    sigma_min = noise_level(sde, eps).item()
    i = torch.arange(steps + 1, dtype=torch.float64)
    inv = 1.0 / rho
    sigmas = (sigma_max**inv + i / steps * (sigma_min**inv - sigma_max**inv)) ** rho
    ts = time_of_noise_level(sde, sigmas)
    ts[0], ts[-1] = 1.0, eps  # remove round-off at the ends
    return check_time_grid(ts)


def logsnr_time_grid(sde: SDE, steps: int, eps: float = 1e-5) -> torch.Tensor:
    """Times with ln sigma~ uniformly spaced from ln sigma~_1 to ln sigma~_eps, eq. (ch9-logsnr-grid).

    The "time-uniform log-SNR" grid of Lu et al. 2022 (DPM-Solver, section 3.3 / Appendix), the
    natural grid of solvers in lambda = -ln sigma~; it is the limit rho -> infinity of
    `edm_time_grid`. Strictly decreasing float64, shape (steps + 1,), endpoints exactly 1 and eps.
    """
    check_sde(sde)
    check_positive_int(steps, "steps")
    eps = check_eps(eps)
    log_max = math.log(noise_level(sde, 1.0).item())
    log_min = math.log(noise_level(sde, eps).item())
    ts = time_of_noise_level(sde, torch.exp(torch.linspace(log_max, log_min, steps + 1, dtype=torch.float64)))
    ts[0], ts[-1] = 1.0, eps
    return check_time_grid(ts)


GRIDS = ("uniform", "edm", "logsnr")


def time_grid(sde: SDE, steps: int, eps: float = 1e-5, grid: str = "uniform") -> torch.Tensor:
    """The time grid named `grid`: "uniform" (`uniform_time_grid`), "edm" (rho = 7) or "logsnr"."""
    if grid == "uniform":
        return uniform_time_grid(steps, eps)
    if grid == "edm":
        return edm_time_grid(sde, steps, eps)
    if grid == "logsnr":
        return logsnr_time_grid(sde, steps, eps)
    raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")


# ---------------------------------------------------------------------------
# solvers, all solve(score_fn, sde, x1, ts, return_path=False)
# ---------------------------------------------------------------------------


def _check_solver_args(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts) -> list[float]:
    check_score_fn(score_fn)
    check_sde(sde)
    check_tensor(x1, "x1", ndim=2)
    ts = check_time_grid(ts)
    if (ts < 0).any() or (ts > 1).any():
        raise ValueError("ts must lie in [0, 1]")
    return ts.tolist()


def data_prediction(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, t: float) -> torch.Tensor:
    """D(x, t) = (x + sigma_t^2 s(x, t)) / m_t: Tweedie's estimate of E[x_0 | x_t = x], shape (N, D)."""
    m = sde.marginal_mean_coeff(t).item()
    var = sde.marginal_std(t).item() ** 2
    return (x + var * score_fn(x, t)) / m


def euler_t(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Reverse-time Euler on the PF-ODE in t, eq. (euler-reverse): the book's sampler. 1 score evaluation per step."""
    ts = _check_solver_args(score_fn, sde, x1, ts)
    return euler(pf_ode_drift(sde, score_fn), x1, ts, return_path=return_path)


def heun_t(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Heun's method on the PF-ODE in t, eq. (heun-step) (`sbgm_edu.ode.heun`). 2 evaluations per step."""
    ts = _check_solver_args(score_fn, sde, x1, ts)
    return heun(pf_ode_drift(sde, score_fn), x1, ts, return_path=return_path)


def euler_sigma(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Euler in the noise level with the data prediction: DDIM = DPM-Solver-1, eq. (euler-sigma).

    One score evaluation per step. From (x_i, t_i) to t_{i+1}, with sigma~ = `noise_level`:

        D = D(x_i, t_i);   x~_{i+1} = D + (sigma~_{i+1} / sigma~_i) (x~_i - D);   x_{i+1} = m_{i+1} x~_{i+1},

    an Euler step of dx~/dsigma~ = (x~ - D)/sigma~ (Karras et al. 2022, eq. (4), Algorithm 1
    without its correction); the same update as deterministic DDIM (Song et al. 2021, eq. (12))
    and DPM-Solver-1 (Lu et al. 2022, eq. (3.7)). For VE (m = 1): x' = D + (sigma'/sigma)(x - D).
    If the data are one point x*, then D = x* and the step is exact however large it is.
    """
    ts = _check_solver_args(score_fn, sde, x1, ts)
    x = x1
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        m, m_next = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(t_next).item()
        s, s_next = noise_level(sde, t).item(), noise_level(sde, t_next).item()
        d = data_prediction(score_fn, sde, x, t)  # the denoised estimate, in x~ units
        x = m_next * (d + (s_next / s) * (x / m - d))  # move along the straight line from D through x~
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def heun_edm(score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, return_path: bool = False) -> torch.Tensor:
    """Heun's method in the noise level, Karras et al. 2022, Algorithm 1 (NVlabs/edm generate.py, deterministic).

    In the scaled variables (x~ = x / m_t, sigma~ = `noise_level`), with d(x~, sigma~) = (x~ - D)/sigma~:

        d_i = d(x~_i, sigma~_i);  x~' = x~_i + (sigma~_{i+1} - sigma~_i) d_i            (Euler predictor)
        if sigma~_{i+1} != 0:    x~_{i+1} = x~_i + (sigma~_{i+1} - sigma~_i)(d_i + d(x~', sigma~_{i+1}))/2

    Karras et al. skip the correction on the last step, where it would divide by sigma~ = 0;
    our grids end at t = eps > 0, so the correction is always applied (2 score evaluations
    per step; the check is kept for grids ending at t = 0). No stochastic churn (S_churn = 0).
    """
    ts = _check_solver_args(score_fn, sde, x1, ts)

    def slope(x_scaled: torch.Tensor, t: float, s: float) -> torch.Tensor:
        m = sde.marginal_mean_coeff(t).item()
        return (x_scaled - data_prediction(score_fn, sde, m * x_scaled, t)) / s  # dx~/dsigma~

    m1 = sde.marginal_mean_coeff(ts[0]).item()
    x = x1 / m1
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        s, s_next = noise_level(sde, t).item(), noise_level(sde, t_next).item()
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

    The first step has no previous D and is the `euler_sigma` (DDIM) step. Source: the
    reference code `dpm_solver_pytorch.py` (LuChengTHU/dpm-solver, `multistep_dpm_solver_second_update`,
    "dpmsolver++", solver_type "dpmsolver").
    """
    ts = _check_solver_args(score_fn, sde, x1, ts)
    x = x1
    path = [x1]
    d_prev, h_prev = None, None
    for t, t_next in zip(ts[:-1], ts[1:]):
        m, m_next = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(t_next).item()
        s, s_next = noise_level(sde, t).item(), noise_level(sde, t_next).item()
        d = data_prediction(score_fn, sde, x, t)
        h = math.log(s / s_next)  # lambda_{i+1} - lambda_i > 0
        if d_prev is None:
            d_hat = d  # first step: DDIM
        else:
            r = h_prev / h
            d_hat = (1 + 0.5 / r) * d - (0.5 / r) * d_prev  # linear extrapolation of D in lambda
        x = m_next * (d_hat + (s_next / s) * (x / m - d_hat))
        d_prev, h_prev = d, h
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


# ---------------------------------------------------------------------------
# stochastic samplers: the reverse-time SDE, Langevin correctors, EDM's Algorithm 2
# (chapter "The reverse-time SDE", book/ch_reverse_sde.ipynb); each takes generator=None
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
    ts = _check_solver_args(score_fn, sde, x1, ts)
    drift = reverse_drift(sde, score_fn, eta)
    eta = check_eta(eta)
    x, path = x1, [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = _reverse_em_step(drift, sde, x, t, t_next, eta, generator)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def langevin_step_size(score: torch.Tensor, noise: torch.Tensor, snr: float) -> float:
    """The signal-to-noise step rule of Song et al. 2021 (Algorithm 5), eq. (snr-step).

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


def _check_positive_float(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
    return float(value)


def predictor_corrector(
    score_fn: ScoreFn, sde: SDE, x1: torch.Tensor, ts, snr: float = 0.16, corrector_steps: int = 1,
    generator: torch.Generator | None = None, return_path: bool = False,
) -> torch.Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Algorithms 2, 4 and 5), eq. (pc-sampler).

    At each grid time t_k: `corrector_steps` Langevin steps toward p_{t_k} (`langevin_corrector`, step
    rule eq. (snr-step) with signal-to-noise ratio snr), then one reverse Euler–Maruyama step (eta = 1,
    eq. (reverse-em)) to t_{k+1}. 1 + corrector_steps score evaluations per step. Song et al. use
    snr = 0.16 and one corrector step for VE models on CIFAR-10.

    Args:
        score_fn, sde, x1, ts, generator, return_path: as in `euler_maruyama_reverse`.
        snr: the signal-to-noise ratio r > 0 of the corrector; corrector_steps: an int >= 0 (0: no corrector).
    """
    ts = _check_solver_args(score_fn, sde, x1, ts)
    snr = _check_positive_float(snr, "snr")
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
    ts = _check_solver_args(score_fn, sde, x1, ts)
    check_positive_int(langevin_steps, "langevin_steps")
    step_ratio = _check_positive_float(step_ratio, "step_ratio")
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
    ts = _check_solver_args(score_fn, sde, x1, ts)
    for value, name in ((s_churn, "s_churn"), (s_tmin, "s_tmin"), (s_tmax, "s_tmax"), (s_noise, "s_noise")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")

    def slope(x_scaled: torch.Tensor, t: float, s: float) -> torch.Tensor:
        m = sde.marginal_mean_coeff(t).item()
        return (x_scaled - data_prediction(score_fn, sde, m * x_scaled, t)) / s  # dx~/dsigma~

    s_max = noise_level(sde, ts[0]).item()
    x = x1 / sde.marginal_mean_coeff(ts[0]).item()
    path = [x1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        s, s_next = noise_level(sde, t).item(), noise_level(sde, t_next).item()
        s_hat = _churned_level(s, s_max, s_churn, s_tmin, s_tmax, len(ts) - 1)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_hat = x + math.sqrt(s_hat**2 - s**2) * s_noise * z
        t_hat = t if s_hat == s else time_of_noise_level(sde, s_hat).item()
        d = slope(x_hat, t_hat, s_hat)
        x = x_hat + (s_next - s_hat) * d
        if s_next > 0:  # second-order correction, as in heun_edm
            x = x_hat + (s_next - s_hat) * 0.5 * (d + slope(x, t_next, s_next))
        if return_path:
            path.append(sde.marginal_mean_coeff(t_next).item() * x)
    x = sde.marginal_mean_coeff(ts[-1]).item() * x
    return torch.stack(path) if return_path else x


SOLVERS: dict[str, Solver] = {
    "euler": euler_t,
    "heun": heun_t,
    "euler_sigma": euler_sigma,
    "ddim": euler_sigma,
    "heun_edm": heun_edm,
    "dpm_solver_2m": dpm_solver_2m,
}
"""Solvers by name; all have the signature solve(score_fn, sde, x1, ts, return_path=False)."""

EVALUATIONS_PER_STEP: dict[str, int] = {
    "euler": 1,
    "heun": 2,
    "euler_sigma": 1,
    "ddim": 1,
    "heun_edm": 2,
    "dpm_solver_2m": 1,
}
"""Score evaluations per step of each solver (on grids ending at t = eps > 0)."""


def solve(
    score_fn: ScoreFn,
    sde: SDE,
    x1: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    solver: str = "euler",
    return_path: bool = False,
) -> torch.Tensor:
    """Run the solver named `solver` (a key of `SOLVERS`) on the PF-ODE from x1 at ts[0] to ts[-1]."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    return SOLVERS[solver](score_fn, sde, x1, ts, return_path=return_path)


class CountingScore:
    """Wrap a score function and count its evaluations: `calls` (number of calls) and `rows` (points scored).

    Use it to measure the number of function evaluations (NFE) of a solver rather than trusting a formula.
    """

    def __init__(self, score_fn: ScoreFn) -> None:
        check_score_fn(score_fn)
        self.score_fn = score_fn
        self.calls = 0

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        self.calls += 1
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

    For each NFE budget the solver takes NFE // EVALUATIONS_PER_STEP[solver] steps on the named grid;
    the NFE reported is the COUNTED number of score calls (`CountingScore`). The error is the RMS
    distance to the exact end point divided by the problem's data scale.

    Returns:
        {(problem, solver, grid): [(counted NFE, relative RMS error), ...]} in the order of `nfes`.
    """
    x1 = x1.to(torch.float64)
    errors: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for pname, (score, exact, scale) in problems.items():
        for solver, grid in methods:
            rows = []
            for nfe in nfes:
                counter = CountingScore(score)
                steps = max(1, nfe // EVALUATIONS_PER_STEP[solver])
                x = solve(counter, sde, x1, time_grid(sde, steps, eps, grid), solver)
                rows.append((counter.calls, (x - exact).pow(2).mean().sqrt().item() / scale))
            errors[pname, solver, grid] = rows
    return errors


__all__ = [
    "EVALUATIONS_PER_STEP",
    "GRIDS",
    "SOLVERS",
    "COMPARED_METHODS",
    "COMPARED_NFES",
    "CountingScore",
    "data_prediction",
    "dpm_solver_2m",
    "edm_time_grid",
    "error_vs_nfe",
    "euler_sigma",
    "euler_t",
    "gaussian_pf_ode_flow",
    "heun_edm",
    "heun_t",
    "logsnr_time_grid",
    "noise_level",
    "reference_problems",
    "solve",
    "time_grid",
    "time_of_noise_level",
    "uniform_time_grid",
]
