"""Tests of sbgm_edu.diffusion against independent answers (plain products, Monte Carlo, autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbgm_edu.diffusion import (
    alpha_bar,
    forward_step,
    linear_beta_schedule,
    noise_from_score,
    noise_loss,
    sample_xt,
    score_from_noise,
    simulate_forward,
    x0_from_noise,
)


def test_linear_schedule_matches_numpy_linspace():
    betas = linear_beta_schedule(7, 1e-3, 0.2)
    assert betas.shape == (7,) and betas.dtype == torch.float64
    np.testing.assert_allclose(betas.numpy(), np.linspace(1e-3, 0.2, 7), rtol=1e-12)


def test_alpha_bar_is_the_plain_product():
    betas = torch.tensor([0.1, 0.25, 0.02, 0.5, 0.3], dtype=torch.float64)
    want = []
    running = 1.0
    for b in betas.tolist():
        running *= 1.0 - b
        want.append(running)
    np.testing.assert_allclose(alpha_bar(betas).numpy(), want, rtol=1e-14)
    # a hand-computed case: (1 - 0.5)(1 - 0.5) = 0.25
    assert alpha_bar(torch.tensor([0.5, 0.5])).tolist() == [0.5, 0.25]


def test_forward_step_hand_values():
    # sqrt(1 - 0.36) * 1 + sqrt(0.36) * 2 = 0.8 + 1.2 = 2.0; row-wise betas broadcast over D
    x = torch.ones(2, 3, dtype=torch.float64)
    noise = 2 * torch.ones(2, 3, dtype=torch.float64)
    out = forward_step(x, torch.tensor([0.36, 0.64], dtype=torch.float64), noise)
    torch.testing.assert_close(out[0], torch.full((3,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(out[1], torch.full((3,), 0.6 + 0.8 * 2, dtype=torch.float64))


def test_closed_form_marginal_matches_monte_carlo_of_the_chain():
    # x_T given x_0 should be N(sqrt(a_T) x_0, (1 - a_T) I). N = 20000 chains; sample mean has
    # standard error sqrt((1 - a)/N) and sample variance sqrt(2/(N-1)) (1 - a): allow 5 standard errors,
    # so a correct implementation fails with probability < 1e-5 per check.
    n = 20_000
    betas = linear_beta_schedule(40, 1e-3, 0.05)
    a = alpha_bar(betas)[-1].item()
    x0 = torch.tensor([[1.5, -0.7]], dtype=torch.float64).expand(n, 2).clone()
    xt = simulate_forward(x0, betas, generator=torch.Generator().manual_seed(0))
    mean_se = math.sqrt((1 - a) / n)
    var_se = (1 - a) * math.sqrt(2 / (n - 1))
    expected_mean = math.sqrt(a) * torch.tensor([1.5, -0.7], dtype=torch.float64)
    assert (xt.mean(0) - expected_mean).abs().max().item() < 5 * mean_se
    assert (xt.var(0) - (1 - a)).abs().max().item() < 5 * var_se
    # the two coordinates are independent: correlation within 5 / sqrt(N)
    corr = torch.corrcoef(xt.T)[0, 1].item()
    assert abs(corr) < 5 / math.sqrt(n)


def test_chain_variance_coefficients_sum_exactly_to_one_minus_alpha():
    # Unrolled, x_T = sqrt(a_T) x_0 + sum_k c_k eps_k with c_k = sqrt(beta_k) prod_{j>k} sqrt(1 - beta_j).
    # Feeding one-hot noise through the chain reads off c_k; sum c_k^2 must equal 1 - a_T exactly.
    betas = linear_beta_schedule(25, 1e-2, 0.3)
    coeffs = []
    for k in range(len(betas)):
        x = torch.zeros(1, 1, dtype=torch.float64)
        for j, beta in enumerate(betas.tolist()):
            noise = torch.full((1, 1), 1.0 if j == k else 0.0, dtype=torch.float64)
            x = forward_step(x, beta, noise)
        coeffs.append(x.item())
    total = sum(c * c for c in coeffs)
    assert total == pytest.approx(1 - alpha_bar(betas)[-1].item(), rel=1e-12)


def test_sample_xt_with_alpha_one_is_the_data_and_inversion_is_exact():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sample_xt(x0, 1.0, eps), x0)
    alphas = torch.tensor([1.0, 0.9, 0.5, 0.1, 1e-3, 0.7], dtype=torch.float64)
    xt = sample_xt(x0, alphas, eps)
    torch.testing.assert_close(x0_from_noise(xt, alphas, eps), x0, rtol=1e-10, atol=1e-10)
    # a scalar alpha too, with a hand check of one entry
    xt = sample_xt(x0, 0.64, eps)
    assert xt[0, 0].item() == pytest.approx(0.8 * x0[0, 0].item() + 0.6 * eps[0, 0].item(), rel=1e-12)
    torch.testing.assert_close(x0_from_noise(xt, 0.64, eps), x0)


def test_noise_loss_matches_torch_mse_summed_per_example():
    gen = torch.Generator().manual_seed(2)
    eps = torch.randn(10, 5, generator=gen)
    pred = torch.randn(10, 5, generator=gen)
    want = torch.nn.functional.mse_loss(pred, eps, reduction="sum") / 10
    torch.testing.assert_close(noise_loss(eps, pred), want)
    per = noise_loss(eps, pred, reduction="none")
    assert per.shape == (10,)
    by_hand = sum((e - p) ** 2 for e, p in zip(eps[3].tolist(), pred[3].tolist(), strict=True))
    assert per[3].item() == pytest.approx(by_hand, rel=1e-5)
    assert noise_loss(eps, eps).item() == 0.0


def test_score_from_noise_matches_autograd_of_gaussian_log_density():
    gen = torch.Generator().manual_seed(3)
    mean = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    std = torch.rand(8, generator=gen, dtype=torch.float64) + 0.1
    eps = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    x = (mean + std[:, None] * eps).requires_grad_(True)
    log_p = torch.distributions.Normal(mean, std[:, None]).log_prob(x).sum()
    (score,) = torch.autograd.grad(log_p, x)
    torch.testing.assert_close(score_from_noise(eps, std), score)
    torch.testing.assert_close(noise_from_score(score, std), eps)
    # float std
    x = (mean + 0.3 * eps).requires_grad_(True)
    (score,) = torch.autograd.grad(torch.distributions.Normal(mean, 0.3).log_prob(x).sum(), x)
    torch.testing.assert_close(score_from_noise(eps, 0.3), score)


def test_simulate_forward_path_shape_and_seed():
    x0 = torch.zeros(3, 2)
    betas = linear_beta_schedule(5)
    path = simulate_forward(x0, betas, generator=torch.Generator().manual_seed(4), return_path=True)
    assert path.shape == (6, 3, 2)
    torch.testing.assert_close(path[0], x0)
    last = simulate_forward(x0, betas, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(path[-1], last)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: linear_beta_schedule(0), ValueError, "n_steps"),
        (lambda: linear_beta_schedule(10, 0.0, 0.1), ValueError, "beta_min"),
        (lambda: linear_beta_schedule(10, 0.1, 1.0), ValueError, "beta_max"),
        (lambda: linear_beta_schedule(10, 0.2, 0.1), ValueError, "beta_min"),
        (lambda: alpha_bar(torch.tensor([0.1, 1.0])), ValueError, "betas"),
        (lambda: alpha_bar(torch.tensor([[0.1]])), ValueError, "betas"),
        (lambda: alpha_bar([0.1, 0.2]), TypeError, "betas"),
        (lambda: forward_step(torch.zeros(2, 2), 0.0, torch.zeros(2, 2)), ValueError, "beta"),
        (lambda: forward_step(torch.zeros(2, 2), 1.0, torch.zeros(2, 2)), ValueError, "beta"),
        (lambda: forward_step(torch.zeros(2, 2), 0.1, torch.zeros(3, 2)), ValueError, "noise"),
        (lambda: forward_step(torch.zeros(2, 2), torch.full((3,), 0.1), torch.zeros(2, 2)), ValueError, "beta"),
        (lambda: sample_xt(torch.zeros(2, 2), 1.5, torch.zeros(2, 2)), ValueError, "alpha_bar_t"),
        (lambda: x0_from_noise(torch.zeros(2, 2), 0.0, torch.zeros(2, 2)), ValueError, "alpha_bar_t"),
        (lambda: x0_from_noise(torch.zeros(2, 2), 0.5, torch.full((2, 2), float("nan"))), ValueError, "noise"),
        (lambda: noise_loss(torch.zeros(2, 2), torch.zeros(2, 3)), ValueError, "eps_pred"),
        (lambda: noise_loss(torch.zeros(2, 2), torch.zeros(2, 2), reduction="sum"), ValueError, "reduction"),
        (lambda: score_from_noise(torch.zeros(2, 2), 0.0), ValueError, "std"),
        (lambda: score_from_noise(torch.zeros(2, 2), torch.tensor([1.0, -1.0])), ValueError, "std"),
        (lambda: noise_from_score(torch.zeros(2, 2), "1"), TypeError, "std"),
        (lambda: simulate_forward(torch.zeros(2, 2), torch.tensor([0.0])), ValueError, "betas"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
