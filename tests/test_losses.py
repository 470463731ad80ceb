"""Tests of sbgm_edu.losses: the DSM loss against closed forms, the validation loss and the proxy."""

import math

import numpy as np
import pytest
import torch
from dsm_oracles import expected_loss_of_exact_score, gaussian_score, sigma_t_numpy
from scipy.integrate import quad

from sbgm_edu.data import load_digits
from sbgm_edu.losses import dsm_loss, log_prob_proxy, validation_loss
from sbgm_edu.sde import VESDE


def test_dsm_loss_matches_hand_computation_for_fixed_seed():
    sigma, eps, n, d = 3.0, 1e-5, 4, 3
    sde = VESDE(sigma)
    x0 = torch.tensor([[0.5, -1.0, 0.0], [1.0, 1.0, 1.0], [-0.5, 0.2, 0.3], [0.0, 0.0, -2.0]])
    score_fn = lambda x, t: -x / 2.0 + t[:, None]  # noqa: E731  (any fixed function will do)
    got = dsm_loss(score_fn, x0, sde, eps, torch.Generator().manual_seed(7))

    # by hand: the documented draws, u first (N,), then x_1 (N, D), from the same seed
    g = torch.Generator().manual_seed(7)
    u = torch.rand(n, generator=g).numpy().astype(np.float64)
    x1 = torch.randn(n, d, generator=g).numpy().astype(np.float64)
    t = eps + (1 - eps) * u
    st = sigma_t_numpy(sigma, t)[:, None]
    xt = x0.numpy() + st * x1
    s = -xt / 2.0 + t[:, None]
    want = np.mean(0.5 * st[:, 0] ** 2 * np.mean((s + x1 / st) ** 2, axis=1))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_dsm_loss_of_exact_score_has_closed_form_mean():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 50_000, 2
    sde = VESDE(sigma)
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.3, -0.7], dtype=torch.float64)
    x0 = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    losses = dsm_loss(gaussian_score(mu, s, sde), x0, sde, eps, g, reduction="none")
    assert losses.shape == (n,)
    want = expected_loss_of_exact_score(sigma, s, eps)
    standard_error = losses.std().item() / math.sqrt(n)
    assert abs(losses.mean().item() - want) < 5 * standard_error  # 5 standard errors


def test_exact_score_minimises_dsm_loss_on_gaussian_data():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 20_000, 2
    sde = VESDE(sigma)
    mu = torch.tensor([0.3, -0.7], dtype=torch.float64)
    x0 = mu + s * torch.randn(n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = gaussian_score(mu, s, sde)
    shift = torch.tensor([0.2, -0.1], dtype=torch.float64)
    candidates = {
        "shifted": lambda x, t: exact(x, t) + shift,
        "scaled": lambda x, t: 1.1 * exact(x, t),
        "wrong variance": gaussian_score(mu, 0.8 * s, sde),
        "wrong mean": gaussian_score(mu + 0.3, s, sde),
    }

    def loss(fn):  # common random numbers: every candidate sees the same t and x_1
        return dsm_loss(fn, x0, sde, eps, torch.Generator().manual_seed(2), reduction="none")

    base = loss(exact)
    for name, fn in candidates.items():
        diff = loss(fn) - base
        assert diff.mean() > 5 * diff.std() / math.sqrt(n), name  # worse by more than 5 standard errors
    # For a constant shift c the excess is exactly 1/2 E[lambda_t] |c|^2 / D in expectation (the cross
    # term has mean zero): E[sigma_t^2] over U(eps, 1) by quadrature.
    mean_lambda = quad(lambda t: sigma_t_numpy(sigma, t) ** 2, eps, 1.0)[0] / (1 - eps)
    diff = loss(candidates["shifted"]) - base
    want = 0.5 * mean_lambda * (shift**2).mean().item()
    assert abs(diff.mean().item() - want) < 5 * diff.std().item() / math.sqrt(n)


def test_validation_loss_is_deterministic_and_matches_closed_form():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 4000, 2
    sde = VESDE(sigma)
    mu = torch.zeros(d, dtype=torch.float64)
    x0 = s * torch.randn(n, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = gaussian_score(mu, s, sde)
    a = validation_loss(exact, sde, x0, steps=50, eps=eps, generator=torch.Generator().manual_seed(4))
    b = validation_loss(exact, sde, x0, steps=50, eps=eps, generator=torch.Generator().manual_seed(4))
    assert a == b
    # midpoint rule with 50 cells vs the integral: the integrand is smooth, and the Monte Carlo
    # error of 50 x 4000 x 2 draws of a quantity with relative spread ~1 is about 0.2 %; allow 3 %
    assert a == pytest.approx(expected_loss_of_exact_score(sigma, s, eps), rel=0.03)


def test_log_prob_proxy_is_the_original_summed_noise_loss():
    # The original: for t in linspace(EPS, 1, T): x_pred = -sigma_t snet(...) = sigma_t s_theta,
    # proxy += 1/2 lambda_t mean((x_pred + x_1)^2) with lambda_t = sigma_t^2. Recompute it by hand.
    sigma, eps, steps = 1.01, 1e-5, 20
    sde = VESDE(sigma)
    x0 = load_digits("val")[:16].double()
    score_fn = lambda x, t: -x  # noqa: E731
    got = log_prob_proxy(score_fn, sde, x0, steps, eps, torch.Generator().manual_seed(5), reduction="none")
    g = torch.Generator().manual_seed(5)
    want = np.zeros(16)
    for t in np.linspace(eps, 1.0, steps):
        x1 = torch.randn(x0.shape, generator=g, dtype=torch.float64).numpy()
        st = sigma_t_numpy(sigma, t)
        x_pred = st * -(x0.numpy() + st * x1)
        want += 0.5 * st**2 * np.mean((x_pred + x1) ** 2, axis=1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert log_prob_proxy(score_fn, sde, x0, steps, eps, torch.Generator().manual_seed(5)).item() == pytest.approx(
        want.mean()
    )


def test_loss_bad_arguments_raise():
    sde = VESDE(25.0)
    fn = lambda x, t: -x  # noqa: E731
    with pytest.raises(ValueError, match="x0 must have 2"):
        dsm_loss(fn, torch.zeros(4), sde)
    with pytest.raises(ValueError, match="eps"):
        dsm_loss(fn, torch.zeros(4, 2), sde, eps=0.0)
    with pytest.raises(TypeError, match="sde must be"):
        dsm_loss(fn, torch.zeros(4, 2), 25.0)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(fn, torch.zeros(4, 2), sde, reduction="sum")
    with pytest.raises(ValueError, match="steps"):
        log_prob_proxy(fn, sde, torch.zeros(4, 2), steps=1)




def test_time_sampler_with_importance_weight_keeps_the_expected_loss():
    # t = eps + (1 - eps) v^2 with v ~ U(0, 1) has density 1 / (2 sqrt(w) (1 - eps)), w = (t - eps) / (1 - eps);
    # weighting by uniform density / this density = 2 sqrt(w) = 2 v keeps E[loss] equal to the uniform draw's,
    # which has the closed form of `expected_loss_of_exact_score`.
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 50_000, 2
    sde = VESDE(sigma)

    def squared_uniform(m, generator):
        v = torch.rand(m, generator=generator, dtype=torch.float64)
        return eps + (1 - eps) * v**2, 2 * v

    g = torch.Generator().manual_seed(10)
    mu = torch.zeros(d, dtype=torch.float64)
    x0 = s * torch.randn(n, d, generator=g, dtype=torch.float64)
    losses = dsm_loss(gaussian_score(mu, s, sde), x0, sde, eps, g, time_sampler=squared_uniform, reduction="none")
    want = expected_loss_of_exact_score(sigma, s, eps)
    assert abs(losses.mean().item() - want) < 5 * losses.std().item() / math.sqrt(n)


def test_time_sampler_output_is_checked():
    sde, x0, fn = VESDE(25.0), torch.zeros(4, 2), lambda x, t: -x
    bad = {
        "shape": lambda m, g: (torch.full((m, 1), 0.5), torch.ones(m)),
        "in \\(0, 1\\]": lambda m, g: (torch.zeros(m), torch.ones(m)),
        "weights >= 0": lambda m, g: (torch.full((m,), 0.5), -torch.ones(m)),
        "non-finite": lambda m, g: (torch.full((m,), 0.5), torch.full((m,), float("nan"))),
    }
    for message, sampler in bad.items():
        with pytest.raises(ValueError, match=message):
            dsm_loss(fn, x0, sde, time_sampler=sampler)
