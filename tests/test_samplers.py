"""The third-order multistep samplers of chapter 9 (DPM-Solver++(3M), UniPC) and the final denoising step.

Independent answers: the closed-form Gaussian PF-ODE flow (orders), one-point data (exactness),
numpy.polyfit + scipy.integrate.quad (the exponential-integrator step of DPM-Solver++(3M), from its
definition), and a transcription of UniPC's reference update written in alpha_t, sigma_t, lambda_t.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sbgm_edu.convergence import loglog_slope
from sbgm_edu.scores import diffused_mixture_score
from sbgm_edu.sde import VESDE, VPSDE, SubVPSDE
from sbgm_edu.solver_study import CountingScore, gaussian_pf_ode_flow
from sbgm_edu.solvers import (
    _derivative_estimates,
    data_prediction,
    dpm_solver_3m,
    exponential_integrator_weights,
    fitted_time_grid,
    logsnr_time_grid,
    noise_level,
    solve,
    time_grid,
    time_of_noise_level,
    unipc,
    with_denoising_step,
)

F64 = torch.float64
NEW = ["dpm_solver_3m", "unipc"]


def gaussian(sde, s=0.5):
    mu = torch.tensor([[0.5, -1.0]], dtype=F64)
    score = diffused_mixture_score(sde, mu, torch.tensor([s], dtype=F64), torch.ones(1, dtype=F64))
    x1 = sde.prior_std() * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    return mu, s, score, x1


def test_exponential_integrator_weights_are_the_integrals():
    # w_k = int_0^h e^{-(h-u)} u^k / k! du, by quadrature, for small and large h
    for h in (1e-3, 0.3, 2.0, 9.0):
        want = [quad(lambda u, k=k, h=h: math.exp(-(h - u)) * u**k / math.factorial(k), 0, h, epsabs=1e-14)[0]
                for k in range(3)]
        assert np.allclose(exponential_integrator_weights(h), want, rtol=1e-9, atol=1e-15)


def test_dpm_solver_3m_local_error_is_fourth_order():
    # one step from EXACT history (points on the closed-form flow) has local error O(h^4) for a
    # third-order method; the published code's D2 (half the second derivative) gives O(h^3)
    sde = VESDE(25.0)
    mu, s, score, _ = gaussian(sde)
    x1 = torch.tensor([[5.0, 3.0]], dtype=F64)

    def on_flow(kappa):
        t = time_of_noise_level(sde, torch.tensor(math.exp(-kappa), dtype=F64)).item()
        return gaussian_pf_ode_flow(sde, mu, s, x1, 1.0, t), t

    errors, errors_published = [], []
    hs = [0.05, 0.025, 0.0125, 0.00625]
    for h in hs:
        kappas = [math.log(2.0) + k * h for k in range(4)]  # around sigma~ = 0.5 = s, where D bends most
        pts = [on_flow(e) for e in kappas]
        ds = [data_prediction(score, sde, x, t) for x, t in pts[:3]]
        d0, d1, d2 = _derivative_estimates(kappas[:3], ds, 3)
        w0, w1, w2 = exponential_integrator_weights(h)
        step = math.exp(-h) * pts[2][0] + w0 * d0 + w1 * d1 + w2 * d2
        published = math.exp(-h) * pts[2][0] + w0 * d0 + w1 * d1 + w2 * d2 / 2
        errors.append((step - pts[3][0]).abs().max().item())
        errors_published.append((published - pts[3][0]).abs().max().item())
    assert abs(loglog_slope(hs, errors) - 4) < 0.3, errors
    assert abs(loglog_slope(hs, errors_published) - 3) < 0.3, errors_published


def test_unipc_global_order_on_gaussian_data():
    # the closed-form flow of N(mu, s^2 I): the error falls at least like steps^-3 (UniC raises UniP-3's
    # order; measured slope about -3.7 on 32..128 steps)
    sde = VESDE(25.0)
    mu, s, score, x1 = gaussian(sde)
    eps = 1e-3
    exact = gaussian_pf_ode_flow(sde, mu, s, x1, 1.0, eps)
    steps = [32, 64, 128]
    errors = [(unipc(score, sde, x1, logsnr_time_grid(sde, n, eps), lower_order_final=False) - exact).abs().max().item()
              for n in steps]
    assert loglog_slope(steps, errors) < -2.75, errors


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE(), SubVPSDE()], ids=repr)
@pytest.mark.parametrize("name", NEW)
def test_new_solvers_are_exact_for_one_data_point(sde, name):
    # one data point x*: D = x* everywhere, every derivative estimate is 0 and the step is the exact line
    x_star = torch.tensor([[0.3, -0.7, 1.1]], dtype=F64)
    score = diffused_mixture_score(sde, x_star, torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64))
    x1 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    eps = 1e-3
    ts = logsnr_time_grid(sde, 6, eps)
    m1, me = sde.marginal_mean_coeff(1.0).item(), sde.marginal_mean_coeff(eps).item()
    exact = me * x_star + sde.marginal_std(eps).item() / sde.marginal_std(1.0).item() * (x1 - m1 * x_star)
    assert torch.allclose(solve(score, sde, x1, ts, name), exact, atol=1e-9, rtol=0)
    # with the final denoising step the sample is x* itself
    assert torch.allclose(solve(score, sde, x1, with_denoising_step(ts), name), x_star.expand(5, 3), atol=1e-12, rtol=0)


def _dpm_3m_by_quadrature(score, sde, x1, ts):
    """DPM-Solver++(3M) from its definition: per coordinate, the polynomial through the last (up to 3)
    (lambda, D) pairs (numpy.polyfit) times e^{-(lambda_next - lambda)}, integrated by scipy quad."""
    x = x1.clone()
    lams, ds = [], []
    steps = len(ts) - 1
    for i in range(steps):
        t, tn = float(ts[i]), float(ts[i + 1])
        alpha, alpha_n = sde.marginal_mean_coeff(t).item(), sde.marginal_mean_coeff(tn).item()
        sig, sig_n = sde.marginal_std(t).item(), sde.marginal_std(tn).item()
        lam, lam_n = math.log(alpha / sig), math.log(alpha_n / sig_n)
        lams.append(lam)
        ds.append((x + sig**2 * score(x, t)) / alpha)
        k = min(3, len(lams), steps - i)
        new = torch.empty_like(x)
        for idx in np.ndindex(*x.shape):
            coef = np.polyfit(lams[-k:], [d[idx].item() for d in ds[-k:]], k - 1)
            integrand = lambda v, c=coef, e=lam_n: math.exp(-(e - v)) * np.polyval(c, v)  # noqa: E731
            integral = quad(integrand, lam, lam_n, epsabs=1e-13)[0]
            new[idx] = sig_n / sig * x[idx].item() + alpha_n * integral
        x = new
    return x


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE(beta_min=0.1, beta_max=5.0)], ids=repr)
def test_dpm_solver_3m_matches_its_definition_by_quadrature(sde):
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64)
    score = diffused_mixture_score(sde, means, torch.tensor([0.2, 0.3], dtype=F64), torch.tensor([0.3, 0.7], dtype=F64))
    x1 = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * noise_level(sde, 1.0).item()
    ts = logsnr_time_grid(sde, 7, 1e-2)
    assert torch.allclose(dpm_solver_3m(score, sde, x1, ts), _dpm_3m_by_quadrature(score, sde, x1, ts), atol=1e-9)


def _unipc_reference(score, sde, x1, ts, order=3):
    """UniPC-bh2 (data prediction), written as the reference update in alpha_t, sigma_t, lambda_t."""
    def d_of(x, t):
        a, sg = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
        return (x + sg**2 * score(x, t)) / a

    def lam(t):
        return math.log(sde.marginal_mean_coeff(t).item() / sde.marginal_std(t).item())

    ts = [float(t) for t in ts]
    n = len(ts) - 1
    x, models, tprev = x1, [d_of(x1, ts[0])], [ts[0]]
    for i in range(1, n + 1):
        t, p = ts[i], min(order, i, n + 1 - i)
        h = lam(t) - lam(tprev[-1])
        rks = [(lam(tprev[-(k + 1)]) - lam(tprev[-1])) / h for k in range(1, p)] + [1.0]
        d1s = [(models[-(k + 1)] - models[-1]) / rks[k - 1] for k in range(1, p)]
        hh = -h
        h_phi_1 = math.expm1(hh)
        h_phi_k, fac, rows, b = h_phi_1 / hh - 1, 1, [], []
        for k in range(1, p + 1):
            rows.append([r ** (k - 1) for r in rks])
            b.append(h_phi_k * fac / h_phi_1)
            fac *= k + 1
            h_phi_k = h_phi_k / hh - 1 / fac
        big_r, b = np.array(rows), np.array(b)
        a_t, s_t = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
        s_prev = sde.marginal_std(tprev[-1]).item()
        x_t_ = s_t / s_prev * x - a_t * h_phi_1 * models[-1]
        rhos_p = [0.5] if p == 2 else (np.linalg.solve(big_r[:-1, :-1], b[:-1]) if p > 2 else [])
        x_t = x_t_ - a_t * h_phi_1 * sum(r * d for r, d in zip(rhos_p, d1s))
        if i < n:  # corrector, not on the last step
            model_t = d_of(x_t, t)
            rhos_c = [0.5] if p == 1 else np.linalg.solve(big_r, b)
            corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s))
            x_t = x_t_ - a_t * h_phi_1 * (corr + rhos_c[-1] * (model_t - models[-1]))
            models.append(model_t)
            tprev.append(t)
        x = x_t
    return x


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE(beta_min=0.1, beta_max=5.0), SubVPSDE()], ids=repr)
def test_unipc_matches_a_transcription_in_alpha_sigma(sde):
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64)
    score = diffused_mixture_score(sde, means, torch.tensor([0.2, 0.3], dtype=F64), torch.tensor([0.3, 0.7], dtype=F64))
    x1 = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=F64) * sde.marginal_std(1.0).item()
    ts = logsnr_time_grid(sde, 9, 1e-3)
    assert torch.allclose(unipc(score, sde, x1, ts), _unipc_reference(score, sde, x1, ts), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", NEW)
def test_denoising_step_costs_one_evaluation_and_returns_d(name):
    sde = VESDE(25.0)
    _, _, score, x1 = gaussian(sde)
    ts = logsnr_time_grid(sde, 6, 1e-3)
    counter = CountingScore(score)
    x = solve(counter, sde, x1, with_denoising_step(ts), name)
    assert counter.calls == 7
    last = solve(score, sde, x1, ts, name)
    assert torch.allclose(x, data_prediction(score, sde, last, 1e-3), atol=1e-12)


def test_bad_inputs():
    sde = VESDE(25.0)
    _, _, score, x1 = gaussian(sde)
    ts = logsnr_time_grid(sde, 4, 1e-3)
    with pytest.raises(ValueError, match="order"):
        unipc(score, sde, x1, ts, order=4)
    with pytest.raises(ValueError, match="variant"):
        unipc(score, sde, x1, ts, variant="bh3")
    with pytest.raises(ValueError, match="end at a time > 0"):
        with_denoising_step(with_denoising_step(ts))
    with pytest.raises(ValueError, match="decreasing"):
        with_denoising_step(ts.flip(0))
    with pytest.raises(ValueError, match="noise level 0"):
        dpm_solver_3m(score, sde, x1, torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    with pytest.raises(ValueError, match="x1"):
        dpm_solver_3m(score, sde, x1[0], ts)


@pytest.mark.parametrize("name", ["euler_sigma", "heun_edm", "dpm_solver_2m", "dpm_solver_3m", "unipc"])
def test_karras_grid_last_step_is_the_data_prediction(name):
    # Karras et al.'s rule: the step to sigma~ = 0 is one evaluation and returns D at the last positive level
    sde = VESDE(25.0)
    _, _, score, x1 = gaussian(sde)
    ts = time_grid(sde, 5, 1e-3, "karras")
    assert ts[-1].item() == 0.0 and noise_level(sde, ts[-2]).item() > 0
    counter = CountingScore(score)
    x = solve(counter, sde, x1, ts, name)
    per_step = 2 if name == "heun_edm" else 1
    assert counter.calls == per_step * 4 + 1
    before = solve(score, sde, x1, ts[:-1], name)
    assert torch.allclose(x, data_prediction(score, sde, before, ts[-2].item()), atol=1e-12)


def test_fitted_grid_is_log_uniform_down_to_sigma_last_then_zero():
    sde = VESDE(25.0)
    ts = fitted_time_grid(sde, 10, 1e-5, sigma_last=0.05)
    assert ts.shape == (11,) and ts[0].item() == 1.0 and ts[-1].item() == 0.0
    levels = noise_level(sde, ts[:-1]).log()
    assert math.isclose(levels[-1].exp().item(), 0.05, rel_tol=1e-9)
    steps = levels[1:] - levels[:-1]
    assert torch.allclose(steps, steps[0].expand(9), rtol=1e-9)
    assert torch.equal(time_grid(sde, 10, 1e-5, "fitted"), fitted_time_grid(sde, 10, 1e-5))
    for bad in (0.0, -0.1, 1e-4, 20.0, float("nan"), True):
        with pytest.raises(ValueError, match="sigma_last"):
            fitted_time_grid(sde, 10, 1e-5, sigma_last=bad)
    with pytest.raises(ValueError, match="steps"):
        fitted_time_grid(sde, 1)
