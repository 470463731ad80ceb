"""Stochastic differential equations dx = f(x, t) dt + g(t) dv on t in [0, 1].

One interface, several SDEs (after `sde_lib.py` in Song et al.'s score_sde code):
every SDE here says what its drift f and diffusion g are, and what the
Gaussian transition kernel p_0t(x_t | x_0) = N(m_t x_0, sigma_t^2 I) is
(eq. (perturbation-kernel)). Time runs from t = 0 (data) to t = 1 (noise).

Chapters: "SDEs" (book/ch03_sde.ipynb), "The probability-flow ODE"
(book/ch04_pf_ode.ipynb), "The VE SDE" (book/ch05_ve_sde.ipynb).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import torch

from sbgm_edu._checks import (
    Time,
    check_callable,
    check_float,
    check_noise_levels,
    check_positive_float,
    check_positive_int,
    check_tensor,
    check_time,
    checked_score_fn,
    time_column,
)
from sbgm_edu.ode import integrate

VE_SIGMA_MAX = math.exp(0.5 * math.log(torch.finfo(torch.float64).max))
"""VESDE(sigma) needs sigma below this (about 1.3e154), where sigma^2 overflows float64."""

VP_INTEGRATED_BETA_MAX = 2.0 * math.log(torch.finfo(torch.float64).max) - 2.0
"""VPSDE and SubVPSDE need B(1) = (beta_min + beta_max) / 2 at most this (about 1418): their noise level
sigma~_1 ~ e^{B(1)/2} must stay finite in float64 (with a margin for the grids' round-off)."""

ScoreFn = Callable[[torch.Tensor, Time], torch.Tensor]
"""score_fn(x, t) -> an estimate of grad_x ln p_t(x), shape of x (N, D)."""


def _as_time_tensor(t: Time) -> torch.Tensor:
    """A float becomes a float64 0-d tensor; a tensor keeps its dtype."""
    check_time(t)
    if isinstance(t, torch.Tensor):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    return torch.tensor(float(t), dtype=torch.float64)


class SDE(abc.ABC):
    """Interface shared by `VESDE`, `VPSDE`, `SubVPSDE` and any SDE a reader adds.

    A subclass defines `drift`, `diffusion`, `marginal_mean_coeff`, `marginal_std`,
    `prior_std` and `time_of_noise_level`; the rest (the noise level, perturbing data,
    the prior, the loss and likelihood weights) follows from those, and every sampler,
    loss and likelihood of `sbgm_edu` uses only this interface. Times are floats or
    tensors of shape (N,); batches x have shape (N, D).
    """

    @abc.abstractmethod
    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """f(x, t) of eq. (sde), shape (N, D)."""

    @abc.abstractmethod
    def diffusion(self, t: Time) -> torch.Tensor:
        """g(t) of eq. (sde): a 0-d tensor for float t, shape (N,) for tensor t."""

    @abc.abstractmethod
    def marginal_mean_coeff(self, t: Time) -> torch.Tensor:
        """m_t in p_0t(x_t | x_0) = N(m_t x_0, sigma_t^2 I), eq. (perturbation-kernel)."""

    @abc.abstractmethod
    def marginal_std(self, t: Time) -> torch.Tensor:
        """sigma_t in p_0t(x_t | x_0) = N(m_t x_0, sigma_t^2 I), eq. (perturbation-kernel)."""

    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the Gaussian prior pi = N(0, prior_std^2 I) used at t = 1."""

    @abc.abstractmethod
    def time_of_noise_level(self, sigma: float | torch.Tensor) -> torch.Tensor:
        """The inverse of `noise_level`: the time t with sigma_t / m_t = sigma, float64 of sigma's shape.

        sigma: noise levels >= 0 (float or tensor); must not overflow for any finite float64 sigma.
        """

    def noise_level(self, t: Time) -> torch.Tensor:
        """sigma~_t = sigma_t / m_t, the noise-to-signal ratio of the kernel (= sigma_t when m_t = 1).

        t: a float or a 1-D tensor of times in [0, 1]. Returns float64 of t's shape.
        """
        t = _as_time_tensor(t).to(torch.float64)
        return self.marginal_std(t) / self.marginal_mean_coeff(t)

    def perturb(self, x0: torch.Tensor, t: Time, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t from p_0t(x_t | x_0): x_t = m_t x0 + sigma_t noise, eq. (perturbation-kernel).

        x0 and noise have shape (N, D); noise is standard normal. Returns (N, D).
        """
        check_tensor(x0, "x0")
        check_tensor(noise, "noise")
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        mean = time_column(self.marginal_mean_coeff(t), x0)
        std = time_column(self.marginal_std(t), x0)
        return mean * x0 + std * noise

    def sample_prior(
        self, n: int, dim: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Draw n points x_1 ~ pi = N(0, prior_std^2 I) in dimension dim, shape (n, dim).

        dtype defaults to torch's default dtype; the draws depend on it (float64 draws are not
        float32 draws cast), so pass it to reproduce a float64 computation.
        """
        check_positive_int(n, "n")
        check_positive_int(dim, "dim")
        return self.prior_std() * torch.randn(n, dim, generator=generator, dtype=dtype)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """ln pi(x) for the Gaussian prior, one value per row of x (N, D) -> (N,)."""
        check_tensor(x, "x", ndim=2)
        var = self.prior_std() ** 2
        dim = x.shape[1]
        return -0.5 * dim * math.log(2 * math.pi * var) - 0.5 * (x**2).sum(dim=1) / var

    def loss_weight(self, t: Time) -> torch.Tensor:
        """lambda_t = sigma_t^2, the DSM weight of eq. (dsm-weight) (Song et al. 2021)."""
        return self.marginal_std(t) ** 2

    def likelihood_weight(self, t: Time) -> torch.Tensor:
        """lambda_t = g(t)^2, the DSM weight that makes the loss a bound on -ln p (Song et al. 2021a, Theorem 1)."""
        return self.diffusion(t) ** 2


class VESDE(SDE):
    """The Variance Exploding SDE dx = sigma^t dv, eq. (ve-sde).

    f = 0, g(t) = sigma^t, and p_0t(x_t | x_0) = N(x_0, sigma_t^2 I) with
    sigma_t^2 = (sigma^{2t} - 1) / (2 ln sigma), eq. (ve-sigma-t).

    Args:
        sigma: the VE parameter, a float > 1. Near 1 the formula is 0/0; it is
            computed with expm1/log1p so that sigma -> 1 gives the limit
            sigma_t^2 = t (Brownian motion) without cancellation.
    """

    def __init__(self, sigma: float) -> None:
        sigma = check_float(sigma, "sigma", low=1.0, low_open=True)
        # 2 ln sigma, accurate also for sigma = 1 + tiny
        two_log_sigma = 2.0 * math.log1p(sigma - 1.0)
        if two_log_sigma >= math.log(torch.finfo(torch.float64).max):
            raise ValueError(f"sigma must be < {VE_SIGMA_MAX:.4g}, so that sigma_1^2 = (sigma^2 - 1) / (2 ln sigma) "
                             f"is finite in float64; got {sigma:g}")
        self.sigma = sigma
        self.two_log_sigma = two_log_sigma

    def __repr__(self) -> str:
        return f"VESDE(sigma={self.sigma})"

    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """f(x, t) = 0 for the VE SDE, eq. (ve-sde). Shape (N, D)."""
        check_time(t)
        return torch.zeros_like(x)

    def diffusion(self, t: Time) -> torch.Tensor:
        """g(t) = sigma^t, eq. (ve-sde)."""
        t = _as_time_tensor(t)
        return torch.exp(0.5 * self.two_log_sigma * t)

    def marginal_mean_coeff(self, t: Time) -> torch.Tensor:
        """m_t = 1: the VE SDE adds noise and never shrinks the data."""
        return torch.ones_like(_as_time_tensor(t))

    def marginal_std(self, t: Time) -> torch.Tensor:
        """sigma_t = sqrt((sigma^{2t} - 1) / (2 ln sigma)), eq. (ve-sigma-t): the integral in eq. (ch3-ve-kernel).

        Written as sqrt(expm1(2 t ln sigma) / (2 ln sigma)), which stays accurate
        as sigma -> 1, where it tends to sqrt(t). Note d(sigma_t^2)/dt = g(t)^2.
        """
        t = _as_time_tensor(t)
        a = self.two_log_sigma
        return torch.sqrt(torch.expm1(a * t) / a)

    def prior_std(self) -> float:
        """sigma_1 = sqrt((sigma^2 - 1) / (2 ln sigma)), the prior of eq. (ve-prior)."""
        return float(self.marginal_std(1.0))

    def noise_level(self, t: Time) -> torch.Tensor:
        """sigma~_t = sigma_t (m_t = 1), float64 of t's shape."""
        return self.marginal_std(_as_time_tensor(t).to(torch.float64))

    def time_of_noise_level(self, sigma: float | torch.Tensor) -> torch.Tensor:
        """t = ln(1 + a sigma^2) / a with a = 2 ln(sigma_VE), the inverse of eq. (ve-sigma-t).

        Computed as logaddexp(0, ln a + 2 ln sigma) / a, so that no square overflows: any finite
        float64 sigma >= 0 gives a finite t (sigma = 0 gives t = 0).
        """
        sigma = check_noise_levels(sigma)
        a = self.two_log_sigma
        return torch.logaddexp(torch.zeros_like(sigma), math.log(a) + 2.0 * torch.log(sigma)) / a


class VPSDE(SDE):
    """The Variance Preserving SDE dx = -1/2 beta(t) x dt + sqrt(beta(t)) dv, eq. (vp-sde).

    beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021). With
    B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2, the kernel is
    N(m_t x_0, sigma_t^2 I) with m_t = exp(-B(t)/2) and sigma_t^2 = 1 - exp(-B(t)).
    The continuous-time limit of the DDPM forward process of chapter 1.

    Args:
        beta_min, beta_max: 0 < beta_min <= beta_max (defaults 0.1 and 20 as in Song et al.).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = check_positive_float(beta_min, "beta_min")
        self.beta_max = check_float(beta_max, "beta_max", low=self.beta_min)
        if 0.5 * (self.beta_min + self.beta_max) > VP_INTEGRATED_BETA_MAX:
            raise ValueError(f"beta_max must keep B(1) = (beta_min + beta_max) / 2 <= {VP_INTEGRATED_BETA_MAX:.0f}, "
                             "so that the noise level e^(B(1)/2) is finite in float64; "
                             f"got beta_min = {beta_min:g}, beta_max = {beta_max:g}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max})"

    def beta(self, t: Time) -> torch.Tensor:
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        t = _as_time_tensor(t)
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: Time) -> torch.Tensor:
        """B(t) = int_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / 2."""
        t = _as_time_tensor(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """f(x, t) = -1/2 beta(t) x, eq. (vp-sde). Shape (N, D)."""
        return -0.5 * time_column(self.beta(t), x) * x

    def diffusion(self, t: Time) -> torch.Tensor:
        """g(t) = sqrt(beta(t)), eq. (vp-sde)."""
        return torch.sqrt(self.beta(t))

    def marginal_mean_coeff(self, t: Time) -> torch.Tensor:
        """m_t = exp(-B(t) / 2)."""
        return torch.exp(-0.5 * self.integrated_beta(t))

    def marginal_std(self, t: Time) -> torch.Tensor:
        """sigma_t = sqrt(1 - exp(-B(t))), computed with expm1 so that small t keeps its digits."""
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def prior_std(self) -> float:
        """1: the prior is N(0, I), which p_1 matches up to m_1 = exp(-B(1)/2) (tiny for the defaults)."""
        return 1.0

    def integrated_beta_of_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """B with sigma~ = sqrt(e^B - 1): B = ln(1 + sigma^2) = logaddexp(0, 2 ln sigma), no overflow."""
        return torch.logaddexp(torch.zeros_like(sigma), 2.0 * torch.log(sigma))

    def time_of_integrated_beta(self, big_b: torch.Tensor) -> torch.Tensor:
        """The t >= 0 with B(t) = beta_min t + (beta_max - beta_min) t^2 / 2 = big_b."""
        b0, db = self.beta_min, self.beta_max - self.beta_min
        if db == 0.0:
            return big_b / b0
        # positive root of (db/2) t^2 + b0 t - B = 0, written to avoid cancellation
        return 2.0 * big_b / (b0 + torch.sqrt(b0**2 + 2.0 * db * big_b))

    def time_of_noise_level(self, sigma: float | torch.Tensor) -> torch.Tensor:
        """The time t with sigma~_t = sigma: B(t) from `integrated_beta_of_noise_level`, then t from B."""
        return self.time_of_integrated_beta(self.integrated_beta_of_noise_level(check_noise_levels(sigma)))


class SubVPSDE(VPSDE):
    """The sub-VP SDE dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 B(t)))) dv, eq. (subvp-sde).

    Same drift and mean as `VPSDE`, but a smaller diffusion, so that
    sigma_t = 1 - exp(-B(t)) (a standard deviation, below the VP one at every t).
    """

    def diffusion(self, t: Time) -> torch.Tensor:
        """g(t) = sqrt(beta(t) (1 - exp(-2 B(t)))), eq. (subvp-sde)."""
        return torch.sqrt(self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t)))

    def marginal_std(self, t: Time) -> torch.Tensor:
        """sigma_t = 1 - exp(-B(t))."""
        return -torch.expm1(-self.integrated_beta(t))

    def integrated_beta_of_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """B with sigma~ = (1 - e^{-B}) e^{B/2} = 2 sinh(B/2): B = 2 asinh(sigma / 2)."""
        return 2.0 * torch.asinh(sigma / 2.0)


def check_sde(sde: object) -> SDE:
    """Check that `sde` is one of this module's SDEs (VESDE, VPSDE, SubVPSDE, ...)."""
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an sbgm_edu.sde.SDE (e.g. VESDE), got {type(sde).__name__}")
    return sde


def euler_maruyama(
    drift: Callable[[torch.Tensor, float], torch.Tensor],
    diffusion: Callable[[float], torch.Tensor | float],
    x0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    generator: torch.Generator | None = None,
    return_path: bool = False,
) -> torch.Tensor:
    """Simulate dx = f(x, t) dt + g(t) dv with the Euler–Maruyama scheme, eq. (euler-maruyama).

    Each step: x_{k+1} = x_k + f(x_k, t_k) h_k + g(t_k) sqrt(|h_k|) z_k, with
    h_k = t_{k+1} - t_k and z_k ~ N(0, I). The Wiener increment over a step of
    length |h| is N(0, |h| I).

    Args:
        drift: f(x, t) -> shape of x; t is a float.
        diffusion: g(t) -> a scalar (float or 0-d tensor).
        x0: starting states, shape (N, D).
        ts: 1-D grid of at least 2 times, strictly increasing or decreasing.
        generator: a torch.Generator for reproducible noise.
        return_path: if True, return shape (len(ts), N, D).

    Returns:
        The states at ts[-1], shape (N, D) (or the whole path).

    Weak order 1. Strong order 1/2 in general, but 1 here: g depends on t only
    (additive noise), where Euler–Maruyama coincides with the Milstein scheme.
    """
    check_callable(drift, "drift", "drift(x, t)")
    check_callable(diffusion, "diffusion", "diffusion(t)")

    def em_step(f: Callable, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)  # the Wiener increment is sqrt|h| z
        return x + f(x, t) * h + diffusion(t) * math.sqrt(abs(h)) * z

    return integrate(em_step, drift, x0, ts, return_path)


def pf_ode_drift(sde: SDE, score_fn: ScoreFn) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The probability-flow ODE vector field, eq. (pf-ode); for the VE SDE, eq. (ve-pf-ode).

    Returns f(x, t) = drift(x, t) - 1/2 g(t)^2 score_fn(x, t); solving
    dx/dt = f(x, t) from t = 1 down to t ~ 0 turns prior samples into data
    samples, with the same marginals p_t as the SDE. x has shape (N, D).
    """
    check_sde(sde)
    score_fn = checked_score_fn(score_fn)

    def f(x: torch.Tensor, t: float) -> torch.Tensor:
        g = time_column(sde.diffusion(t), x)
        return sde.drift(x, t) - 0.5 * g**2 * score_fn(x, t)

    return f


def check_eta(eta: float) -> float:
    """Check the noise scale eta of the reverse-time family, eq. (eta-family): a finite float >= 0."""
    return check_float(eta, "eta", low=0.0)


def reverse_drift(sde: SDE, score_fn: ScoreFn, eta: float = 1.0) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The drift of the reverse-time family dx = [f - (1 + eta^2)/2 g^2 score] dt + eta g dw, eq. (eta-family).

    Returns b(x, t) = drift(x, t) - (1 + eta^2)/2 g(t)^2 score_fn(x, t), x of shape (N, D).
    Run backwards in time (dt < 0) with noise eta g(t) dw, every eta >= 0 has the marginals p_t
    of the forward SDE: eta = 0 is the probability-flow ODE (`pf_ode_drift`), eta = 1 is
    Anderson's reverse-time SDE, eq. (reverse-sde) (Anderson 1982; Song et al. 2021, eq. 6).
    """
    check_sde(sde)
    score_fn = checked_score_fn(score_fn)
    weight = 0.5 * (1.0 + check_eta(eta) ** 2)

    def b(x: torch.Tensor, t: float) -> torch.Tensor:
        g = time_column(sde.diffusion(t), x)
        return sde.drift(x, t) - weight * g**2 * score_fn(x, t)

    return b
