"""Exact scores grad_x ln p(x) of distributions where we know them.

With an exact score we can test samplers without training anything. Used in
"The probability-flow ODE" (book/ch04_pf_ode.ipynb) and "Better solvers".

An isotropic Gaussian mixture p(x) = sum_k w_k N(x; mu_k, s_k^2 I) diffused by
an SDE with kernel N(m_t x_0, sigma_t^2 I) stays a Gaussian mixture, with means
m_t mu_k and variances m_t^2 s_k^2 + sigma_t^2 (eq. (diffused-mixture)). A
finite data set is the special case s_k = 0 (a mixture of point masses).
"""

from __future__ import annotations

import math

import torch

from sbgm_edu._checks import Time, check_nonempty, check_tensor, time_column
from sbgm_edu.sde import SDE, ScoreFn


def _check_mixture(means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor, density: bool = False) -> None:
    """Check a mixture (means (K, D), stds (K,), weights (K,)); density=True also needs every std > 0."""
    check_tensor(means, "means", ndim=2)
    check_tensor(stds, "stds", ndim=1)
    check_tensor(weights, "weights", ndim=1)
    k = means.shape[0]
    if stds.shape[0] != k or weights.shape[0] != k:
        raise ValueError(
            f"means has {k} components, so stds and weights must have shape ({k},); "
            f"got {tuple(stds.shape)} and {tuple(weights.shape)}"
        )
    if (stds < 0).any() or (density and (stds == 0).any()):
        raise ValueError(f"stds must all be {'> 0 for a density' if density else '>= 0'}")
    if (weights <= 0).any() or abs(weights.sum().item() - 1.0) > 1e-5:
        raise ValueError(f"weights must be > 0 and sum to 1, got sum {weights.sum().item():.6g}")


def _check_points(x: torch.Tensor, means: torch.Tensor) -> None:
    check_tensor(x, "x", ndim=2)
    if x.shape[1] != means.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} but means have dimension {means.shape[1]}; they must match")


def _log_joint(
    x: torch.Tensor, m: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """ln(w_k N(x; m mu_k, v_k I)) for each row of x and each component k: shape (N, K).

    m is a scalar tensor or has shape (N, 1) (one time per row); variances has
    shape (K,) or (N, K).
    """
    dim = x.shape[1]
    # |x - m mu|^2 expanded, so that no (N, K, D) tensor is formed
    sq_dist = (x**2).sum(1, keepdim=True) - 2 * m * (x @ means.T) + m**2 * (means**2).sum(1)
    sq_dist = sq_dist.clamp_min(0.0)
    return torch.log(weights) - 0.5 * dim * torch.log(2 * math.pi * variances) - 0.5 * sq_dist / variances


def _score(
    x: torch.Tensor, m: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """sum_k p(k | x) (m mu_k - x) / v_k: the responsibility-weighted component scores, (N, D)."""
    r = torch.softmax(_log_joint(x, m, means, variances, weights), dim=1)  # (N, K) = p(k | x)
    r_over_v = r / variances
    return m * (r_over_v @ means) - r_over_v.sum(dim=1, keepdim=True) * x


def mixture_log_prob(
    x: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """ln p(x) of the isotropic Gaussian mixture sum_k w_k N(mu_k, s_k^2 I), eq. (mixture).

    Args:
        x: points, shape (N, D).
        means: component means mu_k, shape (K, D).
        stds: component standard deviations s_k > 0, shape (K,).
        weights: mixing weights w_k > 0 summing to 1, shape (K,).

    Returns:
        ln p(x), shape (N,), computed with logsumexp for stability.
    """
    _check_mixture(means, stds, weights, density=True)
    _check_points(x, means)
    one = torch.ones((), dtype=x.dtype)
    return torch.logsumexp(_log_joint(x, one, means, stds**2, weights), dim=1)


def mixture_score(
    x: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """grad_x ln p(x) of the isotropic Gaussian mixture of eq. (mixture).

    The responsibility-weighted sum of the component scores:
    sum_k p(k | x) (mu_k - x) / s_k^2, eq. (mixture-score).
    Shapes as in `mixture_log_prob`; returns shape (N, D).
    """
    _check_mixture(means, stds, weights, density=True)
    _check_points(x, means)
    return _score(x, torch.ones((), dtype=x.dtype), means, stds**2, weights)


def diffused_mixture_score(
    sde: SDE, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> ScoreFn:
    """The exact score grad_x ln p_t(x) when p_0 is a Gaussian mixture, eq. (diffused-mixture).

    p_t = sum_k w_k N(m_t mu_k, (m_t^2 s_k^2 + sigma_t^2) I) for the kernel of `sde`.

    Args:
        sde: the forward SDE (e.g. `VESDE`).
        means (K, D), stds (K,) >= 0, weights (K,): the data mixture at t = 0.
            A zero std is a point mass (see `empirical_score`).

    Returns:
        score_fn(x, t) with x of shape (N, D) and t a float or (N,) tensor; it
        needs t > 0 when some s_k = 0 (the density is not defined there).
    """
    _check_mixture(means, stds, weights)

    def score_fn(x: torch.Tensor, t: Time) -> torch.Tensor:
        _check_points(x, means)
        m = time_column(sde.marginal_mean_coeff(t), x)  # () or (N, 1)
        std = time_column(sde.marginal_std(t), x)
        variances = m**2 * stds.to(x.dtype) ** 2 + std**2  # (K,) or (N, K)
        if (variances <= 0).any():
            raise ValueError("t must be > 0 when a component has std 0 (p_t has no density at t = 0)")
        return _score(x, m, means.to(x.dtype), variances, weights.to(x.dtype))

    return score_fn


def empirical_score(sde: SDE, data: torch.Tensor) -> ScoreFn:
    """The exact score of a finite data set diffused by `sde`, eq. (empirical-score).

    p_t = (1/N) sum_i N(m_t x_i, sigma_t^2 I), whose score is
    (m_t D(x, t) - x) / sigma_t^2, with D(x, t) the softmax-weighted average of
    the data points (the ideal denoiser). Sampling with it reproduces training
    points: this is the score that denoising score matching converges to on a
    finite data set.

    Args:
        sde: the forward SDE.
        data: the data set, shape (M, D).

    Returns:
        score_fn(x, t), x of shape (N, D), t > 0 a float or (N,) tensor.
    """
    check_nonempty(check_tensor(data, "data", ndim=2), "data")
    n = data.shape[0]
    weights = torch.full((n,), 1.0 / n, dtype=data.dtype)
    return diffused_mixture_score(sde, data, torch.zeros(n, dtype=data.dtype), weights)
