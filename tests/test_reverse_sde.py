"""The reverse-time SDE family and the stochastic samplers of sbgm_edu.solvers, against independent answers.

Independent answers: the Fokker–Planck equation of Gaussian data, evaluated by finite differences of
the closed-form density; the closed-form moments of Gaussian data N(mu, s^2 I) diffused by the VE and VP
SDEs; the closed-form stationary variance of the unadjusted Langevin algorithm on a Gaussian; the closed
form of the sliced 2-Wasserstein distance between isotropic Gaussians. Monte Carlo tolerances are stated
in units of the standard error (SE) of the estimate.
"""

import math

import pytest
import torch

from sbgm_edu.distances import sliced_wasserstein2
from sbgm_edu.scores import diffused_mixture_score
from sbgm_edu.sde import VESDE, VPSDE, SubVPSDE, pf_ode_drift, reverse_drift
from sbgm_edu.solvers import (
    CountingScore,
    annealed_langevin,
    edm_stochastic,
    edm_time_grid,
    euler_maruyama_reverse,
    heun_edm,
    langevin_corrector,
    langevin_step_size,
    predictor_corrector,
    solve,
    uniform_time_grid,
)

F64 = torch.float64
MU = torch.tensor([[0.5, -1.0]], dtype=F64)
S = 0.5


def gaussian_score(sde):
    return diffused_mixture_score(sde, MU, torch.tensor([S], dtype=F64), torch.ones(1, dtype=F64))


def marginal_var(sde, t):
    """Variance per coordinate of p_t for data N(mu, s^2 I): m_t^2 s^2 + sigma_t^2."""
    return sde.marginal_mean_coeff(t).item() ** 2 * S**2 + sde.marginal_std(t).item() ** 2


def exact_p1_draws(sde, n, seed):
    """n exact draws of p_1 (not of the prior): m_1 mu + sqrt(m_1^2 s^2 + sigma_1^2) z."""
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return sde.marginal_mean_coeff(1.0).item() * MU + math.sqrt(marginal_var(sde, 1.0)) * z


def gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE(), SubVPSDE()])
def test_eta_zero_is_the_pf_ode_drift(sde):
    score = gaussian_score(sde)
    x = torch.randn(16, 2, generator=gen(), dtype=F64)
    for t in (1e-3, 0.3, 1.0):
        assert torch.allclose(reverse_drift(sde, score, eta=0.0)(x, t), pf_ode_drift(sde, score)(x, t), atol=1e-12)


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE()])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0, 2.0])
def test_eta_family_satisfies_the_fokker_planck_equation_of_the_marginals(sde, eta):
    # 1-D Gaussian data: p_t = N(m_t mu, v_t) in closed form. Run backwards in time with noise eta g, the
    # family moves densities by  d p_t / dt = -d/dx (b_eta p_t) - 1/2 eta^2 g^2 d^2 p_t / dx^2.
    # Both sides by central finite differences of the closed-form density (h_t = h_x = 1e-4).
    mu, s = 0.7, 0.5
    score = diffused_mixture_score(sde, torch.tensor([[mu]], dtype=F64), torch.tensor([s], dtype=F64),
                                   torch.ones(1, dtype=F64))

    def density(x, t):
        m, sd = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
        v = m**2 * s**2 + sd**2
        return torch.exp(-0.5 * (x - m * mu) ** 2 / v) / math.sqrt(2 * math.pi * v)

    b = reverse_drift(sde, score, eta)
    x = torch.linspace(-3.0, 4.0, 71, dtype=F64)[:, None]
    h = 1e-4
    for t in (0.1, 0.4, 0.8):
        g2 = sde.diffusion(t).item() ** 2
        dp_dt = (density(x, t + h) - density(x, t - h)) / (2 * h)
        d_flux = (b(x + h, t) * density(x + h, t) - b(x - h, t) * density(x - h, t)) / (2 * h)
        d2p = (density(x + h, t) - 2 * density(x, t) + density(x - h, t)) / h**2
        rhs = -d_flux - 0.5 * eta**2 * g2 * d2p
        assert torch.allclose(dp_dt, rhs, atol=2e-4 * dp_dt.abs().max().item() + 1e-6), (t, (dp_dt - rhs).abs().max())


def test_the_reverse_drift_weights_the_score_by_one_plus_eta_squared_over_two():
    # with a constant "score" c and VE (f = 0): b = -(1 + eta^2)/2 sigma^{2t} c, read off by hand
    sde = VESDE(25.0)
    c = torch.tensor([[1.0, -2.0]], dtype=F64)
    b = reverse_drift(sde, lambda x, t: c.expand_as(x), eta=0.5)
    assert torch.allclose(b(torch.zeros(3, 2, dtype=F64), 0.5), -(1 + 0.25) / 2 * 25.0 * c.expand(3, 2))


SAMPLERS = {
    "reverse SDE, eta = 1": lambda sc, sde, x1, ts, g: euler_maruyama_reverse(sc, sde, x1, ts, generator=g),
    "eta = 1/2": lambda sc, sde, x1, ts, g: euler_maruyama_reverse(sc, sde, x1, ts, eta=0.5, generator=g),
    "predictor-corrector": lambda sc, sde, x1, ts, g: predictor_corrector(sc, sde, x1, ts, generator=g),
    "EDM Algorithm 2": lambda sc, sde, x1, ts, g: edm_stochastic(sc, sde, x1, ts, generator=g),
}


@pytest.mark.parametrize("sde", [VESDE(25.0), VPSDE()])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samples_of_gaussian_data_have_its_mean_and_std(sde, name):
    # 8000 samples from exact draws of p_1, 100 steps on the EDM grid to t = 1e-3. SE of a mean
    # coordinate: 0.5 / sqrt(8000) = 0.0056; tolerance 0.03 (about 5 SE, with room for the
    # discretisation bias, measured below 1 % at 100 steps). SE of a relative std: 1/sqrt(16000) = 0.8 %;
    # tolerance 4 %. Without the noise term (or with the score weight of the PF-ODE) the std is off by far more.
    eps = 1e-3
    x1 = exact_p1_draws(sde, 8000, seed=0)
    x = SAMPLERS[name](gaussian_score(sde), sde, x1, edm_time_grid(sde, 100, eps), gen())
    m_eps = sde.marginal_mean_coeff(eps).item()
    assert (x.mean(0) - m_eps * MU[0]).abs().max() < 0.03
    assert (x.std(0) / math.sqrt(marginal_var(sde, eps)) - 1).abs().max() < 0.04


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_a_wrong_start_is_forgotten_at_the_closed_form_rate(eta):
    # VE, Gaussian data, exact (linear) score: the mean error e_t = E[x_t] - mu of the family obeys
    # de/dt = w g^2 e / v_t with w = (1 + eta^2)/2 and dv_t/dt = g^2, so e_eps = e_1 (v_eps / v_1)^w.
    # Euler-Maruyama multiplies it by (1 - |h| w g(t_k)^2 / v_{t_k}) per step (its mean is exact for a
    # linear drift); check that product to 6 SE, and that it is within 10 % of the continuous rate
    # after 200 uniform steps. Start 200 units off in x, 4000 points (SE 0.5 / sqrt(4000) = 0.008).
    sde, eps, w = VESDE(25.0), 1e-3, (1 + eta**2) / 2
    x1 = exact_p1_draws(sde, 4000, seed=2) + torch.tensor([200.0, 0.0], dtype=F64)
    ts = uniform_time_grid(200, eps)
    x = euler_maruyama_reverse(gaussian_score(sde), sde, x1, ts, eta=eta, generator=gen())
    measured = (x.mean(0) - MU[0])[0].item()
    scheme = 200.0
    for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist()):
        scheme *= 1 - (t - t_next) * w * sde.diffusion(t).item() ** 2 / marginal_var(sde, t)
    continuous = 200.0 * (marginal_var(sde, eps) / marginal_var(sde, 1.0)) ** w
    assert abs(measured - scheme) < 6 * 0.5 / math.sqrt(4000), (measured, scheme)
    assert abs(scheme / continuous - 1) < 0.1, (scheme, continuous)


def test_eta_zero_is_reverse_euler_and_draws_no_noise():
    sde = VESDE(25.0)
    score, x1, ts = gaussian_score(sde), exact_p1_draws(sde, 64, seed=3), uniform_time_grid(10)
    g = gen(7)
    x = euler_maruyama_reverse(score, sde, x1, ts, eta=0.0, generator=g)
    assert torch.allclose(x, solve(score, sde, x1, ts, "euler"), atol=1e-12)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=gen(7)))  # generator untouched


def test_edm_stochastic_without_churn_is_heun_edm():
    sde = VPSDE()
    score, x1, ts = gaussian_score(sde), exact_p1_draws(sde, 64, seed=4), edm_time_grid(sde, 12)
    x = edm_stochastic(score, sde, x1, ts, s_churn=0.0, generator=gen())
    assert torch.allclose(x, heun_edm(score, sde, x1, ts), atol=1e-12)


@pytest.mark.parametrize("t", [0.05, 0.5, 1.0])
def test_langevin_corrector_leaves_the_marginal_invariant_and_pulls_toward_it(t):
    # p_t = N(mu, v I), v = s^2 + sigma_t^2 (VE). (a) exact draws stay exact after one step (up to the
    # O(step^2) bias of the unadjusted algorithm, about (2 snr^2)^2 = 0.3 % of v here); (b) a start far
    # off (mean +3 sqrt(v), std 2 sqrt(v)) reaches p_t after 300 steps: the corrector is not the identity
    # (its stationary std is sqrt(v / (1 - step / (2 v))), about 1.3 % above sqrt(v) for snr = 0.16). From
    # farther away it is slow: the rule of eq. (snr-step) shrinks the step where the score is large.
    # 4000 points; tolerances: mean 6 SE, std 4 % (SE 1.1 %).
    sde = VESDE(25.0)
    score, v = gaussian_score(sde), marginal_var(sde, t)
    z = torch.randn(4000, 2, generator=gen(5), dtype=F64)
    g = gen(6)
    for x, steps in ((MU + math.sqrt(v) * z, 1), (MU + math.sqrt(v) * (3.0 + 2.0 * z), 300)):
        for _ in range(steps):
            x = langevin_corrector(score, x, t, snr=0.16, generator=g)
        assert (x.mean(0) - MU[0]).abs().max() < 6 * math.sqrt(v / 4000)
        assert (x.std(0) / math.sqrt(v) - 1).abs().max() < 0.04


def test_langevin_step_size_gives_the_requested_signal_to_noise_ratio():
    # for one point, |step * s| / |sqrt(2 step) z| = snr: the definition of the rule of Song et al.
    score, noise = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    step = langevin_step_size(score, noise, snr=0.16)
    assert math.isclose(step * 5.0 / (math.sqrt(2 * step) * 1.0), 0.16, rel_tol=1e-12)


def test_annealed_langevin_reaches_the_stationary_law_of_its_chain():
    # one noise level t, many steps with alpha = r sigma_t^2: the chain x + alpha/2 s + sqrt(alpha) z on
    # N(mu, v) has stationary variance v / (1 - alpha / (4 v)) (solve V = (1 - a/(2v))^2 V + a).
    sde, t, r = VESDE(25.0), 0.5, 0.2
    v, alpha = marginal_var(sde, t), r * sde.marginal_std(t).item() ** 2
    x1 = sde.sample_prior(8000, 2, generator=gen(8), dtype=F64)
    x = annealed_langevin(gaussian_score(sde), sde, x1, [1.0, t], langevin_steps=200, step_ratio=r, generator=gen())
    assert (x.mean(0) - MU[0]).abs().max() < 6 * math.sqrt(v / 8000)
    assert (x.var(0) / (v / (1 - alpha / (4 * v))) - 1).abs().max() < 0.06  # SE of a variance: 1.6 %


@pytest.mark.parametrize(
    "name,call,per_step",
    [
        ("euler_maruyama_reverse", lambda sc, sde, x1, ts, g: euler_maruyama_reverse(sc, sde, x1, ts, generator=g), 1),
        ("predictor_corrector", lambda sc, sde, x1, ts, g: predictor_corrector(sc, sde, x1, ts, corrector_steps=2,
                                                                             generator=g), 3),
        ("annealed_langevin", lambda sc, sde, x1, ts, g: annealed_langevin(sc, sde, x1, ts, langevin_steps=4,
                                                                         generator=g), 4),
        ("edm_stochastic", lambda sc, sde, x1, ts, g: edm_stochastic(sc, sde, x1, ts, generator=g), 2),
    ],
)
def test_same_generator_same_samples_and_counted_evaluations(name, call, per_step):
    sde = VESDE(25.0)
    x1, ts = exact_p1_draws(sde, 32, seed=9), edm_time_grid(sde, 6)
    counter = CountingScore(gaussian_score(sde))
    a = call(counter, sde, x1, ts, gen(11))
    assert counter.calls == 6 * per_step, name
    assert torch.equal(a, call(counter, sde, x1, ts, gen(11)))
    assert not torch.allclose(a, call(counter, sde, x1, ts, gen(12)))


@pytest.mark.parametrize("eta", [-0.1, float("nan"), float("inf")])
def test_bad_eta_is_rejected(eta):
    sde = VESDE(25.0)
    with pytest.raises(ValueError, match="eta"):
        reverse_drift(sde, gaussian_score(sde), eta=eta)
    with pytest.raises(ValueError, match="eta"):
        euler_maruyama_reverse(gaussian_score(sde), sde, torch.zeros(2, 2), uniform_time_grid(3), eta=eta)


def test_bad_arguments_are_rejected():
    sde = VESDE(25.0)
    score, x1, ts = gaussian_score(sde), torch.zeros(2, 2, dtype=F64), uniform_time_grid(3)
    with pytest.raises(TypeError, match="eta"):
        reverse_drift(sde, score, eta="1")
    with pytest.raises(ValueError, match="snr"):
        predictor_corrector(score, sde, x1, ts, snr=0.0)
    with pytest.raises(ValueError, match="corrector_steps"):
        predictor_corrector(score, sde, x1, ts, corrector_steps=-1)
    with pytest.raises(ValueError, match="step_ratio"):
        annealed_langevin(score, sde, x1, ts, step_ratio=float("nan"))
    with pytest.raises(ValueError, match="s_churn"):
        edm_stochastic(score, sde, x1, ts, s_churn=-1.0)
    with pytest.raises(ValueError, match="x1"):
        euler_maruyama_reverse(score, sde, x1[0], ts)


def test_sliced_wasserstein2_of_isotropic_gaussians_matches_the_closed_form():
    # theta.x ~ N(theta.m1, s1^2) for a unit theta, so W_2^2 of the projections is (theta.(m1 - m2))^2 + (s1 - s2)^2,
    # and its mean over the sphere in D dimensions is |m1 - m2|^2 / D + (s1 - s2)^2. With 1000 directions the
    # direction noise is about 0.9 % of SW_2 (var of cos^2 in 3-D: 4/45), the sample noise smaller; tolerance 3 %.
    n, d = 4000, 3
    m1, m2 = torch.zeros(d, dtype=F64), torch.tensor([1.0, -0.5, 0.25], dtype=F64)
    x = m1 + 1.0 * torch.randn(n, d, generator=gen(1), dtype=F64)
    y = m2 + 1.5 * torch.randn(n, d, generator=gen(2), dtype=F64)
    exact = math.sqrt(float((m1 - m2).pow(2).sum()) / d + 0.5**2)
    assert math.isclose(sliced_wasserstein2(x, y, projections=1000, generator=gen(3)), exact, rel_tol=0.03)
    assert sliced_wasserstein2(x, x[torch.randperm(n, generator=gen(4))], generator=gen(3)) < 1e-12
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein2(x, y[:10])


@pytest.mark.parametrize("solver", ["euler_maruyama", "pc", "edm_stochastic"])
def test_sample_runs_the_stochastic_solvers_by_name_with_one_generator(solver):
    # sampling.sample draws x_1 and the solver's noise from the one generator: same seed, same samples.
    # 4000 samples of Gaussian data started from the prior: mean within 6 SE plus the prior-mismatch bias,
    # at most |mu| (v_eps / v_1)^(1/2) = 0.06 (the eta = 0 value of eq. (rsde-start-contraction)); std within 6 %.
    from sbgm_edu.sampling import sample

    sde = VESDE(25.0)
    score = gaussian_score(sde)
    a = sample(score, sde, 4000, 2, 60, solver=solver, grid="edm", eps=1e-3, generator=gen(3), dtype=F64)
    b = sample(score, sde, 4000, 2, 60, solver=solver, grid="edm", eps=1e-3, generator=gen(3), dtype=F64)
    assert torch.equal(a, b)
    assert (a.mean(0) - MU[0]).abs().max() < 6 * S / math.sqrt(4000) + 0.06
    assert (a.std(0) / S - 1).abs().max() < 0.06
