"""Likelihood training: the weight lambda_t = g(t)^2 and importance sampling of t (sbgm_edu.likelihood)."""

import math

import pytest
import torch
from scipy.integrate import quad

from sbgm_edu.likelihood import likelihood_loss_weight, likelihood_time_density, likelihood_time_sampler
from sbgm_edu.sde import VESDE, VPSDE, SubVPSDE
from sbgm_edu.train import dsm_loss_per_example

F64 = torch.float64
EPS = 1e-5
SDES = [VESDE(25.0), VPSDE(), SubVPSDE()]


def closed_form_g2(sde, t):
    """g(t)^2 written out for each SDE (Song et al. 2021, eqs. 9, 11 and sub-VP)."""
    if isinstance(sde, VESDE):
        return sde.sigma ** (2 * t)
    beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)
    if isinstance(sde, SubVPSDE):
        big_b = sde.beta_min * t + 0.5 * (sde.beta_max - sde.beta_min) * t**2
        return beta * (1 - torch.exp(-2 * big_b))
    return beta


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_likelihood_weight_is_g_squared(sde):
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    got = likelihood_loss_weight(sde)(t)
    assert torch.allclose(got, closed_form_g2(sde, t), rtol=1e-10, atol=0)
    # and independently of the formulas of g: for dx = f(t) x dt + g dv, d(sigma_t^2 / m_t^2)/dt = g^2 / m_t^2
    h = 1e-5
    ratio = lambda s: (sde.marginal_std(s) / sde.marginal_mean_coeff(s)) ** 2  # noqa: E731
    derivative = (ratio(t + h) - ratio(t - h)) / (2 * h) * sde.marginal_mean_coeff(t) ** 2
    assert torch.allclose(got, derivative, rtol=1e-6, atol=0)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_importance_density_integrates_to_one(sde):
    total = quad(lambda s: likelihood_time_density(sde, torch.tensor(s), EPS).item(), EPS, 1.0,
                 points=[1e-4, 1e-3, 1e-2, 0.1], limit=200)[0]
    assert abs(total - 1.0) < 1e-6


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_sampled_times_follow_the_importance_density(sde):
    # the fraction of draws below a few times against the integral of q (scipy), 4 standard errors
    t, weight = likelihood_time_sampler(sde, EPS)(40_000, torch.Generator().manual_seed(0))
    assert t.shape == weight.shape == (40_000,)
    assert (t >= EPS).all() and (t <= 1).all()
    for cut in (1e-3, 0.05, 0.5):
        want = quad(lambda s: likelihood_time_density(sde, torch.tensor(s), EPS).item(), EPS, cut, limit=200)[0]
        got = (t <= cut).double().mean().item()
        assert abs(got - want) < 4 * math.sqrt(want * (1 - want) / t.shape[0])


def linear_score_problem(sde):
    """Data N(mu, s^2 I) in D = 4, and a deliberately wrong linear score -(x - mu') / (s'^2 + sigma_t^2)."""
    dim, mu, s, mu_wrong, s_wrong = 4, 0.3, 0.5, 0.1, 0.4

    def score(x, t):
        m = sde.marginal_mean_coeff(t)[:, None]
        return -(x - m * mu_wrong) / (m**2 * s_wrong**2 + sde.marginal_std(t)[:, None] ** 2)

    def expected_loss(t):
        """E over x_0 and x_1 of 1/2 g^2 ||s(x_t) + x_1 / sigma_t||^2 / D at time t, in closed form."""
        m, sig = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
        a = 1.0 / (m**2 * s_wrong**2 + sig**2)
        # s + x_1/sigma = -a m (x_0 - mu') + (1/sigma - a sigma) x_1, with x_0 and x_1 independent
        per_coordinate = (a * m) ** 2 * (s**2 + (mu - mu_wrong) ** 2) + (1 / sig - a * sig) ** 2
        return 0.5 * closed_form_g2(sde, torch.tensor(t, dtype=F64)).item() * per_coordinate

    return dim, mu, s, score, expected_loss


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE()], ids=repr)
def test_importance_sampling_keeps_the_expected_loss_and_lowers_its_variance(sde):
    dim, mu, s, score, expected_loss = linear_score_problem(sde)
    # the objective: the time average of the expected loss over t ~ U(eps, 1), by scipy
    want = quad(expected_loss, EPS, 1.0, points=[1e-4, 1e-3, 1e-2, 0.1], limit=200)[0] / (1 - EPS)
    n, gen = 100_000, torch.Generator().manual_seed(1)
    estimates = {}
    for name in ("uniform", "importance"):
        if name == "uniform":
            t, weight = EPS + (1 - EPS) * torch.rand(n, generator=gen, dtype=F64), torch.ones(n, dtype=F64)
        else:
            t, weight = likelihood_time_sampler(sde, EPS)(n, gen)
        x0 = mu + s * torch.randn(n, dim, generator=gen, dtype=F64)
        x1 = torch.randn(n, dim, generator=gen, dtype=F64)
        losses = weight * dsm_loss_per_example(score, x0, sde, t, x1, likelihood_loss_weight(sde))
        estimates[name] = (losses.mean().item(), losses.std().item() / math.sqrt(n), losses.var().item())
    for mean, standard_error, _ in estimates.values():
        assert abs(mean - want) < 4 * standard_error  # unbiased, Monte Carlo at 4 standard errors
    assert estimates["importance"][2] < 0.1 * estimates["uniform"][2]  # at least 10x less variance


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE()], ids=repr)
def test_covariance_scorenet_starts_as_the_diffused_full_covariance_gaussian(sde):
    # before training the correction is zero: the score is grad ln N(m_t mu, m_t^2 Sigma + sigma_t^2 I) (autograd)
    from sbgm_edu.nets import CovarianceScoreNet

    gen = torch.Generator().manual_seed(2)
    data = torch.randn(200, 5, generator=gen, dtype=F64) @ torch.randn(5, 5, generator=gen, dtype=F64) + 0.3
    model = CovarianceScoreNet.for_data(sde, data, extra_variance=0.01, hidden=16).double()
    mean = data.mean(0)
    cov = torch.cov(data.T, correction=0) + 0.01 * torch.eye(5, dtype=F64)
    x = torch.randn(4, 5, generator=gen, dtype=F64).requires_grad_(True)
    for t in (1e-3, 0.3, 1.0):
        m, s = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
        density = torch.distributions.MultivariateNormal(m * mean, m**2 * cov + s**2 * torch.eye(5, dtype=F64))
        (want,) = torch.autograd.grad(density.log_prob(x).sum(), x)
        assert torch.allclose(model(x.detach(), t), want, rtol=1e-4, atol=1e-6)


def test_load_pretrained_likelihood_loads_and_samples():
    from sbgm_edu.checkpoints import load_pretrained
    from sbgm_edu.sampling import sample

    model, sde = load_pretrained("likelihood")
    assert type(model).__name__ == "CovarianceScoreNet" and not model.training
    x = sample(model, sde, n=8, dim=64, steps=10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 64) and torch.isfinite(x).all()
    assert x.abs().max() < 3  # digits in [-1, 1], not the prior's spread of about 10


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="eps"):
        likelihood_time_sampler(VESDE(25.0), eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        likelihood_time_density(VESDE(25.0), torch.tensor([0.5]), eps=1.5)
    with pytest.raises(TypeError, match="sde"):
        likelihood_loss_weight("VE")
    with pytest.raises(ValueError, match="n"):
        likelihood_time_sampler(VPSDE())(0, None)
