"""sbgm_edu.likelihood against closed forms (Gaussian data) and Monte Carlo (Hutchinson)."""

import math

import pytest
import torch

from sbgm_edu.likelihood import (
    bits_per_dim,
    dequantize,
    divergence_exact,
    divergence_hutchinson,
    log_prob,
    rademacher_like,
)
from sbgm_edu.scores import diffused_mixture_score, mixture_log_prob
from sbgm_edu.sde import VESDE, VPSDE, SubVPSDE, pf_ode_drift
from tests.oracles import gaussian_pf_ode_log_prob

F64 = torch.float64


def gaussian_problem(sde, dim=3):
    """Data N(mu, s^2 I): its diffused score is exact, so the PF-ODE model density is p_t itself."""
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=F64)[:, :dim]
    s = 0.7
    score = diffused_mixture_score(sde, mu, torch.tensor([s], dtype=F64), torch.ones(1, dtype=F64))
    return mu, s, score


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE(), SubVPSDE()], ids=repr)
def test_log_prob_matches_the_closed_form_gaussian(sde):
    # p_t = N(m_t mu, v_t I) with v_t = m_t^2 s^2 + sigma_t^2, and the PF-ODE flow is the affine map
    # x_1 = m_1 mu + (x_eps - m_eps mu) sqrt(v_1 / v_eps). log_prob replaces p_1 by the prior pi, so the
    # exact value of what it computes is ln p_eps(x) - ln p_1(x_1) + ln pi(x_1), all closed forms.
    eps = 1e-5
    mu, s, score = gaussian_problem(sde)
    x0 = mu + 1.5 * s * torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    want = gaussian_pf_ode_log_prob(sde, mu, s, x0, eps)
    got = log_prob(score, sde, x0, steps=20, eps=eps, grid="uniform")
    # RK4's global error at 20 steps is below 1e-3 nats here (it falls 16x per doubling: checked below)
    assert torch.allclose(got, want, atol=1e-3, rtol=0)


def test_log_prob_error_falls_like_rk4():
    # fourth order: doubling the steps divides the error by about 16
    sde = VESDE(25.0)
    eps = 1e-5
    mu, s, score = gaussian_problem(sde)
    x0 = mu + s * torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    want = gaussian_pf_ode_log_prob(sde, mu, s, x0, eps)
    errors = [
        (log_prob(score, sde, x0, steps=n, eps=eps, grid="uniform") - want).abs().max().item() for n in (4, 8, 16)
    ]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(10.0 < r < 24.0 for r in ratios), (errors, ratios)


def test_log_prob_is_accurate_in_64_dimensions():
    # a 3-component mixture in D = 64 (closed-form density); measured error 0.013 nats at 12 RK4 steps
    # (0.0009 at 24: fourth order), so 0.05 nats leaves room for round-off and platform differences
    sde = VESDE(25.0)
    gen = torch.Generator().manual_seed(6)
    means = torch.randn(3, 64, generator=gen, dtype=F64) * 0.5
    stds = torch.tensor([0.3, 0.4, 0.5], dtype=F64)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    score = diffused_mixture_score(sde, means, stds, weights)
    x0 = means[:2] + 0.3 * torch.randn(2, 64, generator=gen, dtype=F64)
    eps = 1e-5
    got, x1 = log_prob(score, sde, x0, steps=12, eps=eps, grid="uniform", return_latent=True)
    # what log_prob computes exactly: ln p_eps(x0) - ln p_1(x_1) + ln pi(x_1), with p_t the diffused mixture
    # (closed form) and x_1 the flow's end point; an error in x_1 of size e changes this by about
    # |x_1| e / sigma_1^2 only, so the check is dominated by the divergence integral
    p_eps = mixture_log_prob(x0, means, torch.sqrt(stds**2 + sde.marginal_std(eps) ** 2), weights)
    p_1 = mixture_log_prob(x1, means, torch.sqrt(stds**2 + sde.marginal_std(1.0) ** 2), weights)
    want = p_eps - p_1 + sde.prior_log_prob(x1)
    assert torch.allclose(got, want, atol=0.05, rtol=0), (got - want)
    # the default log-SNR grid converges too (measured 0.13 nats at 12 steps, 0.01 at 24)
    got = log_prob(score, sde, x0, steps=24, eps=eps)
    assert torch.allclose(got, want, atol=0.05, rtol=0), (got - want)


def test_latent_is_returned():
    sde = VESDE(5.0)
    _, _, score = gaussian_problem(sde)
    x0 = torch.zeros(2, 3, dtype=F64)
    logp, x1 = log_prob(score, sde, x0, steps=5, return_latent=True)
    assert logp.shape == (2,) and x1.shape == (2, 3)


def test_exact_divergence_matches_finite_differences():
    sde = VPSDE()
    mu = torch.tensor([[1.0, -1.0], [-1.0, 0.5]], dtype=F64)
    score = diffused_mixture_score(sde, mu, torch.tensor([0.3, 0.5], dtype=F64), torch.tensor([0.4, 0.6], dtype=F64))
    f = pf_ode_drift(sde, score)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    h = 1e-6
    fd = torch.zeros(5, dtype=F64)
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = h
        fd += (f(x + e, 0.3)[:, i] - f(x - e, 0.3)[:, i]) / (2 * h)  # central differences, error O(h^2)
    assert torch.allclose(divergence_exact(f, x, 0.3), fd, atol=1e-6)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    # a non-symmetric linear field f(x) = A x + nonlinearity: div f is known exactly by autograd
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, generator=gen, dtype=F64)

    def f(x, t):
        return x @ a.T + torch.sin(x).roll(1, dims=1) * t

    x = torch.randn(3, 4, generator=gen, dtype=F64)
    exact = divergence_exact(f, x, 0.7)
    k = 20000
    if probe == "rademacher":
        probes = rademacher_like(x, k, gen)
    else:
        probes = torch.randn(k, 3, 4, generator=gen, dtype=F64)
    est = divergence_hutchinson(f, x, 0.7, probes)  # the mean over k probes, shape (3,)
    # the k single-probe estimates, all in one call: row j of x repeated, one probe per copy
    single = divergence_hutchinson(f, x.repeat(k, 1), 0.7, probes.reshape(1, k * 3, 4)).reshape(k, 3)
    assert torch.allclose(single.mean(0), est)
    # 5 standard errors of the mean of k probes (the spread measured from the single-probe estimates)
    se = single.std(dim=0) / math.sqrt(k)
    assert ((est - exact).abs() <= 5 * se + 1e-12).all(), (est, exact, se)


def test_rademacher_probes_are_plus_minus_one():
    v = rademacher_like(torch.zeros(50, 10), 4, torch.Generator().manual_seed(0))
    assert v.shape == (4, 50, 10)
    assert set(v.unique().tolist()) == {-1.0, 1.0}
    assert abs(v.mean().item()) < 5 / math.sqrt(v.numel())  # mean 0 within 5 standard errors


def test_hutchinson_log_prob_is_close_to_exact_on_average():
    sde = VESDE(10.0)
    mu, s, score = gaussian_problem(sde)
    x0 = mu + s * torch.randn(2, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    exact, x1 = log_prob(score, sde, x0, steps=4, return_latent=True)
    prior = sde.prior_log_prob(x1)
    gen = torch.Generator().manual_seed(5)
    est = log_prob(score, sde, x0, steps=4, method="hutchinson", n_probes=400, generator=gen)
    # for an isotropic Gaussian the Jacobian is a multiple of I, so v^T J v = trace(J) for Rademacher v:
    # the estimate is exact up to round-off (zero variance), an independent check of the bookkeeping
    assert torch.allclose(est, exact, atol=1e-9)
    gauss = log_prob(score, sde, x0, steps=4, method="hutchinson", n_probes=400, generator=gen, probe="gaussian")
    # Gaussian probes: v^T J v = c |v|^2 with J = c I, so the estimated integral is the exact one times
    # the mean of |v_k|^2 / D over the 400 probes, whose std is sqrt(2/D)/20 = 0.041; allow 5 of them
    integral = exact - prior
    assert ((gauss - exact).abs() <= 5 * 0.041 * integral.abs()).all()
    assert not torch.allclose(gauss, exact, atol=1e-6)  # Gaussian probes do have variance here


def test_bits_per_dim_of_a_uniform_density_is_the_log_of_the_number_of_levels():
    # p uniform on [-1 - w/2, 1 + w/2]^D with 17 levels of width w = 2/16: P(k) = (1/17)^D exactly, and
    # Jensen is an equality for a constant density, so bits/dim = log2(17)
    w, d = 2 / 16, 64
    logp = torch.full((3,), -d * math.log(17 * w), dtype=F64)
    assert torch.allclose(bits_per_dim(logp, d, w), torch.full((3,), math.log2(17), dtype=F64))


def test_dequantize_stays_in_the_bin():
    x = torch.linspace(-1, 1, 17, dtype=F64).repeat(200, 1)
    y = dequantize(x, 2 / 16, torch.Generator().manual_seed(0))
    assert ((y - x).abs() <= 1 / 16).all()
    assert abs((y - x).mean().item()) < 5 * (1 / 16) / math.sqrt(3 * y.numel())  # U(-w/2, w/2) has std w/sqrt(12)


def test_bad_arguments_raise():
    sde = VESDE(5.0)
    _, _, score = gaussian_problem(sde)
    x0 = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(ValueError, match="steps"):
        log_prob(score, sde, x0, steps=0)
    with pytest.raises(ValueError, match="eps"):
        log_prob(score, sde, x0, steps=5, eps=0.0)
    with pytest.raises(ValueError, match="method"):
        log_prob(score, sde, x0, steps=5, method="rk45")
    with pytest.raises(ValueError, match="n_probes"):
        log_prob(score, sde, x0, steps=5, method="hutchinson", n_probes=0)
    with pytest.raises(ValueError, match="probe"):
        log_prob(score, sde, x0, steps=5, method="hutchinson", probe="sphere")
    with pytest.raises(ValueError, match="grid"):
        log_prob(score, sde, x0, steps=5, grid="cosine")
    with pytest.raises(ValueError, match="x0"):
        log_prob(score, sde, torch.zeros(3, dtype=F64), steps=5)
    with pytest.raises(TypeError, match="sde"):
        log_prob(score, "ve", x0, steps=5)
    with pytest.raises(ValueError, match="bin_width"):
        bits_per_dim(torch.zeros(2), 64, bin_width=0.0)
    with pytest.raises(ValueError, match="dim"):
        bits_per_dim(torch.zeros(2), 0)
    with pytest.raises(ValueError, match="probes"):
        divergence_hutchinson(lambda x, t: x, torch.zeros(2, 3), 0.5, torch.zeros(1, 2, 4))
