"""Exact scores against scipy densities and autograd."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sbgm_edu.scores import diffused_mixture_score, empirical_score, mixture_log_prob, mixture_score
from sbgm_edu.sde import VESDE

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]], dtype=torch.float64)
STDS = torch.tensor([0.5, 1.0, 0.3], dtype=torch.float64)
WEIGHTS = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)


def scipy_mixture_logpdf(x: np.ndarray, means, stds, weights) -> np.ndarray:
    dens = sum(
        w * multivariate_normal(m, s**2 * np.eye(len(m))).pdf(x)
        for m, s, w in zip(means.numpy(), stds.numpy(), weights.numpy())
    )
    return np.log(dens)


def test_mixture_log_prob_matches_scipy():
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    want = scipy_mixture_logpdf(x.numpy(), MEANS, STDS, WEIGHTS)
    assert np.allclose(mixture_log_prob(x, MEANS, STDS, WEIGHTS).numpy(), want, rtol=1e-10)


def test_mixture_score_matches_autograd_of_the_log_density():
    x = (torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2).requires_grad_()
    (grad,) = torch.autograd.grad(mixture_log_prob(x, MEANS, STDS, WEIGHTS).sum(), x)
    assert torch.allclose(mixture_score(x.detach(), MEANS, STDS, WEIGHTS), grad, rtol=1e-9, atol=1e-12)


def test_diffused_mixture_score_matches_autograd_of_the_widened_mixture():
    # p_t for VE is the mixture with variances s_k^2 + sigma_t^2: differentiate its log density with autograd.
    sde = VESDE(10.0)
    score = diffused_mixture_score(sde, MEANS, STDS, WEIGHTS)
    x = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    for t in (0.05, 0.4, 1.0):
        widened = torch.sqrt(STDS**2 + sde.marginal_std(t) ** 2)
        xg = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(mixture_log_prob(xg, MEANS, widened, WEIGHTS).sum(), xg)
        assert torch.allclose(score(x, t), grad, rtol=1e-9, atol=1e-12)


def test_score_with_one_time_per_row_equals_score_row_by_row():
    sde = VESDE(10.0)
    score = diffused_mixture_score(sde, MEANS, STDS, WEIGHTS)
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.tensor([0.01, 0.1, 0.3, 0.5, 0.8, 1.0], dtype=torch.float64)
    rowwise = torch.cat([score(x[i : i + 1], t[i].item()) for i in range(6)])
    assert torch.allclose(score(x, t), rowwise, rtol=1e-12)


def test_empirical_score_matches_autograd_of_the_data_mixture():
    # p_t of a finite data set = (1/M) sum_i N(x_i, sigma_t^2 I); its log density written out directly.
    sde = VESDE(25.0)
    data = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = 0.3
    var = sde.marginal_std(t).item() ** 2
    x = torch.randn(10, 3, dtype=torch.float64).requires_grad_()
    sq = ((x[:, None, :] - data[None]) ** 2).sum(-1)
    log_p = torch.logsumexp(-0.5 * sq / var, dim=1)  # constants dropped: they don't change the gradient
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    assert torch.allclose(empirical_score(sde, data)(x.detach(), t), grad, rtol=1e-9, atol=1e-12)


def test_empirical_score_near_t0_points_at_the_nearest_data_point():
    # At small sigma_t the ideal denoiser snaps to the nearest point: score ~ (x_nearest - x) / sigma_t^2.
    sde = VESDE(25.0)
    data = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[0.1, -0.05]], dtype=torch.float64)
    t = 0.01
    var = sde.marginal_std(t).item() ** 2
    assert torch.allclose(empirical_score(sde, data)(x, t), (data[:1] - x) / var, rtol=1e-6)


def test_bad_mixture_arguments_raise():
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="weights must be > 0 and sum to 1"):
        mixture_score(x, MEANS, STDS, torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="stds and weights must have shape"):
        mixture_log_prob(x, MEANS, STDS[:2], WEIGHTS)
    with pytest.raises(ValueError, match="x has dimension 3 but means have dimension 2"):
        mixture_log_prob(torch.zeros(2, 3, dtype=torch.float64), MEANS, STDS, WEIGHTS)
    with pytest.raises(ValueError, match="stds must all be > 0"):
        mixture_score(x, MEANS, torch.zeros(3, dtype=torch.float64), WEIGHTS)
    with pytest.raises(ValueError, match="means must be finite"):
        mixture_score(x, MEANS * float("nan"), STDS, WEIGHTS)
    with pytest.raises(ValueError, match="t must be > 0"):
        empirical_score(VESDE(25.0), MEANS)(x, 0.0)


def test_empirical_score_of_an_empty_data_set_is_rejected():
    # issue 10: data of shape (0, D) ended in a ZeroDivisionError inside the weights
    with pytest.raises(ValueError, match="data must hold at least 1 row"):
        empirical_score(VESDE(5.0), torch.zeros(0, 2))
