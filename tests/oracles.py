"""Closed-form answers for Gaussian data N(mu, s^2 I), written once for every test file.

For an SDE with kernel N(m_t x_0, sigma_t^2 I) (eq. (perturbation-kernel)), Gaussian data stay
Gaussian: p_t = N(m_t mu, v_t I) with v_t = m_t^2 s^2 + sigma_t^2. From that:

- the score is grad ln p_t(x) = -(x - m_t mu) / v_t;
- the PF-ODE moves each point along the affine map x_t = m_t mu + (x_a - m_a mu) sqrt(v_t / v_a)
  (the flow preserves the standardised coordinate (x - m_t mu) / sqrt(v_t));
- ln p_t(x) = -D/2 ln(2 pi v_t) - |x - m_t mu|^2 / (2 v_t).

These are independent of `sbgm_edu.scores` and `sbgm_edu.solver_study`: they take m_t and sigma_t
from the SDE (each SDE's kernel is tested against its own formula in test_sde.py) and nothing else.
Chapter 11 could take its closed-form Gaussian log-likelihood from `gaussian_pf_ode_log_prob`.
"""

from __future__ import annotations

import math

import torch


def gaussian_marginal(sde, mu: torch.Tensor, s: float, t: float) -> tuple[torch.Tensor, float]:
    """(mean m_t mu, variance v_t = m_t^2 s^2 + sigma_t^2) of p_t for data N(mu, s^2 I); t a float."""
    m = float(sde.marginal_mean_coeff(float(t)))
    return m * mu, m**2 * s**2 + float(sde.marginal_std(float(t))) ** 2


def gaussian_score(sde, mu: torch.Tensor, s: float):
    """score_fn(x, t) = -(x - m_t mu) / v_t for data N(mu, s^2 I); x (N, D), t a float or one time per row (N,)."""

    def score(x: torch.Tensor, t) -> torch.Tensor:
        m, std = sde.marginal_mean_coeff(t).to(x.dtype), sde.marginal_std(t).to(x.dtype)
        if m.ndim == 1:  # one time per row
            m, std = m[:, None], std[:, None]
        return -(x - m * mu.to(x.dtype)) / (m**2 * s**2 + std**2)

    return score


def gaussian_flow(sde, mu: torch.Tensor, s: float, x_a: torch.Tensor, t_a: float, t_b: float) -> torch.Tensor:
    """The exact PF-ODE map from x_a at time t_a to time t_b for data N(mu, s^2 I), shape of x_a."""
    mean_a, var_a = gaussian_marginal(sde, mu.to(x_a.dtype), s, t_a)
    mean_b, var_b = gaussian_marginal(sde, mu.to(x_a.dtype), s, t_b)
    standardised = (x_a - mean_a) / math.sqrt(var_a)
    return mean_b + math.sqrt(var_b) * standardised


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """ln N(x; mean, var I) for each row of x (N, D) -> (N,)."""
    dim = x.shape[1]
    return -0.5 * dim * math.log(2 * math.pi * var) - 0.5 * ((x - mean) ** 2).sum(1) / var


def gaussian_pf_ode_log_prob(sde, mu: torch.Tensor, s: float, x: torch.Tensor, eps: float) -> torch.Tensor:
    """What `sbgm_edu.likelihood.log_prob` computes with the exact score, for data N(mu, s^2 I).

    ln p_eps(x) - ln p_1(x_1) + ln pi(x_1), with x_1 the PF-ODE image of x and pi = N(0, prior_std^2 I)
    the prior that stands in for p_1. Shape (N,).
    """
    mean_eps, var_eps = gaussian_marginal(sde, mu, s, eps)
    mean_1, var_1 = gaussian_marginal(sde, mu, s, 1.0)
    x_1 = gaussian_flow(sde, mu, s, x, eps, 1.0)
    prior = gaussian_log_density(x_1, torch.zeros_like(mean_1), sde.prior_std() ** 2)
    return gaussian_log_density(x, mean_eps, var_eps) - gaussian_log_density(x_1, mean_1, var_1) + prior


def gaussian_problem(sde, s: float = 0.5, n: int = 8, seed: int = 0):
    """Chapter 9's Gaussian test problem: (mu, s, exact score, n prior draws x1), float64, mu = (0.5, -1)."""
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    x1 = sde.prior_std() * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mu, s, gaussian_score(sde, mu, s), x1
