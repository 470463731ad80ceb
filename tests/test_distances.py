"""Tests of sbgm_edu.distances against closed forms, torch.distributions and Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from sbgm_edu.distances import gaussian_kl, prior_gap_kl, wasserstein2_empirical
from sbgm_edu.scores import mixture_log_prob
from sbgm_edu.sde import VESDE


def _random_spd(dim: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(dim, dtype=torch.float64)


def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    for dim in (1, 3, 6):
        m0, m1 = (torch.randn(dim, generator=gen, dtype=torch.float64) for _ in range(2))
        c0, c1 = _random_spd(dim, gen), _random_spd(dim, gen)
        want = kl_divergence(MultivariateNormal(m0, c0), MultivariateNormal(m1, c1)).item()
        assert gaussian_kl(m0, c0, m1, c1) == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_gaussian_kl_of_equal_gaussians_is_zero_and_1d_closed_form():
    c = torch.tensor([[2.0]], dtype=torch.float64)
    m = torch.tensor([0.5], dtype=torch.float64)
    assert gaussian_kl(m, c, m, c) == pytest.approx(0.0, abs=1e-14)
    # 1-D: ln(s1/s0) + (s0^2 + (m0 - m1)^2) / (2 s1^2) - 1/2
    s0, s1, d = 0.7, 1.9, 0.4
    want = math.log(s1 / s0) + (s0**2 + d**2) / (2 * s1**2) - 0.5
    got = gaussian_kl(torch.tensor([d]), torch.tensor([[s0**2]]), torch.tensor([0.0]), torch.tensor([[s1**2]]))
    assert got == pytest.approx(want, rel=1e-6)


def test_prior_gap_kl_two_points_closed_form():
    # data {-a, +a} in 1-D: mean 0, variance a^2, so p_1 has variance a^2 + sigma_1^2 and
    # the bound is 1/2 (a^2 / sigma_1^2 - ln(1 + a^2 / sigma_1^2)).
    a = 1.5
    data = torch.tensor([[-a], [a]], dtype=torch.float64)
    for sigma in (1.01, 2.0, 25.0):
        sde = VESDE(sigma)
        r = a**2 / sde.prior_std() ** 2
        assert prior_gap_kl(data, sde) == pytest.approx(0.5 * (r - math.log1p(r)), rel=1e-10)


def test_prior_gap_kl_matches_kl_of_moment_matched_gaussian():
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(50, 4, generator=gen, dtype=torch.float64) * torch.tensor([0.3, 1.0, 2.0, 0.1]) + 0.7
    sde = VESDE(5.0)
    var1 = sde.prior_std() ** 2
    cov = torch.cov(data.T, correction=0) + var1 * torch.eye(4, dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    want = kl_divergence(MultivariateNormal(data.mean(0), cov), MultivariateNormal(0 * data[0], var1 * eye)).item()
    assert prior_gap_kl(data, sde) == pytest.approx(want, rel=1e-9)


def test_prior_gap_kl_is_a_lower_bound_on_the_true_kl():
    # Monte Carlo KL(p_1 || pi) = E_{p_1}[ln p_1 - ln pi] with p_1 the diffused data set.
    # 20000 samples: the standard error printed below is about 0.01 nats; we allow 5 of them.
    gen = torch.Generator().manual_seed(2)
    data = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 3.0]], dtype=torch.float64)
    sde = VESDE(2.0)
    s1 = sde.prior_std()
    n = 20000
    idx = torch.randint(0, 3, (n,), generator=gen)
    x1 = data[idx] + s1 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    log_ratio = mixture_log_prob(
        x1, data, torch.full((3,), s1, dtype=torch.float64), torch.full((3,), 1 / 3, dtype=torch.float64)
    ) - sde.prior_log_prob(x1)
    kl_mc, se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(n)
    bound = prior_gap_kl(data, sde)
    assert bound > 0.1  # not trivially small for this spread-out data
    assert bound <= kl_mc + 5 * se


def test_wasserstein2_translation_and_1d_sorting():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    shift = torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64)
    # a translated copy: the identity coupling is optimal, W2 = |shift|
    assert wasserstein2_empirical(x, x + shift) == pytest.approx(shift.norm().item(), rel=1e-9)
    # in 1-D the optimal coupling pairs sorted values
    a = torch.randn(300, 1, generator=gen, dtype=torch.float64)
    b = 2 * torch.rand(300, 1, generator=gen, dtype=torch.float64)
    want = ((a.sort(0).values - b.sort(0).values) ** 2).mean().sqrt().item()
    assert wasserstein2_empirical(a, b) == pytest.approx(want, rel=1e-9)


def test_bad_inputs_raise():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="same shape"):
        wasserstein2_empirical(x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="data"):
        prior_gap_kl(torch.zeros(1, 2), VESDE(2.0))
    with pytest.raises(TypeError, match="sde"):
        prior_gap_kl(x, 2.0)
    eye = torch.eye(2)
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_kl(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2), eye)
    with pytest.raises(ValueError, match="cov1"):
        gaussian_kl(torch.zeros(2), eye, torch.zeros(2), torch.eye(3))


def test_non_symmetric_covariances_and_empty_clouds_are_rejected():
    # issue 10: a non-symmetric "covariance" was accepted (Cholesky reads one triangle) and gave 0;
    # an empty cloud gave W2 = NaN.
    mean = torch.zeros(2, dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="cov0 must be symmetric"):
        gaussian_kl(mean, cov, mean, torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="cov1 must be symmetric"):
        gaussian_kl(mean, torch.eye(2, dtype=torch.float64), mean, cov)
    empty = torch.zeros(0, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="x must hold at least 1 row"):
        wasserstein2_empirical(empty, empty)
