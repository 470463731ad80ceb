"""sbgm_edu.solvers against closed forms (Gaussian and one-point data) and scipy's solve_ivp."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sbgm_edu.convergence import loglog_slope
from sbgm_edu.scores import diffused_mixture_score
from sbgm_edu.sde import VESDE, VPSDE, SubVPSDE, pf_ode_drift
from sbgm_edu.solvers import (
    EVALUATIONS_PER_STEP,
    SOLVERS,
    CountingScore,
    edm_time_grid,
    gaussian_pf_ode_flow,
    logsnr_time_grid,
    noise_level,
    solve,
    time_grid,
    time_of_noise_level,
    uniform_time_grid,
)
from tests.oracles import gaussian_flow, gaussian_problem

F64 = torch.float64
ALL_SDES = [VESDE(25.0), VPSDE(), SubVPSDE()]


def test_gaussian_flow_solves_the_pf_ode():
    # independent check of the closed form itself: scipy integrates the PF-ODE with the exact score
    sde = VESDE(25.0)
    mu, s, score, x1 = gaussian_problem(sde)
    f = pf_ode_drift(sde, score)
    fun = lambda t, y: f(torch.as_tensor(y, dtype=F64).reshape(x1.shape), float(t)).reshape(-1).numpy()  # noqa: E731
    ref = solve_ivp(fun, (1.0, 0.01), x1.reshape(-1).numpy(), rtol=1e-10, atol=1e-10).y[:, -1]
    flow = gaussian_pf_ode_flow(sde, mu, s, x1, 1.0, 0.01)
    assert np.allclose(flow.reshape(-1).numpy(), ref, atol=1e-7)
    assert torch.allclose(gaussian_flow(sde, mu, s, x1, 1.0, 0.01), flow, atol=1e-12)  # the tests' oracle too


@pytest.mark.parametrize(
    "name,order", [("euler", 1), ("heun", 2), ("euler_sigma", 1), ("heun_edm", 2), ("dpm_solver_2m", 2)]
)
def test_measured_convergence_orders_on_gaussian_data(name, order):
    # the flow of N(mu, s^2 I) data is known in closed form; the error slope against the step count
    # is -order once the steps are small (tolerance 0.25 on the fitted slope). On the EDM grid: on the
    # uniform t grid the multistep DPM-Solver++(2M) sees wildly varying step ratios in lambda near t = 1
    # and only reaches its order for much smaller steps.
    sde = VESDE(25.0)
    mu, s, score, x1 = gaussian_problem(sde)
    eps = 1e-3
    exact = gaussian_flow(sde, mu, s, x1, 1.0, eps)
    steps = [16, 32, 64]
    errors = [(solve(score, sde, x1, edm_time_grid(sde, n, eps), name) - exact).abs().max().item() for n in steps]
    slope = loglog_slope(steps, errors)
    assert abs(slope + order) < 0.25, (errors, slope)


@pytest.mark.parametrize("sde", ALL_SDES, ids=repr)
@pytest.mark.parametrize("name", ["euler_sigma", "heun_edm", "dpm_solver_2m"])
def test_sigma_solvers_are_exact_for_one_data_point(sde, name):
    # data = one point x*: D(x, t) = x* for every x and t, the flow is x_t = m_t x* + (sigma_t/sigma_1)(x_1 - m_1 x*)
    # (a straight line in x~, sigma~), and Euler in sigma~ follows a straight line exactly, in ONE step
    x_star = torch.tensor([[0.3, -0.7, 1.1]], dtype=F64)
    score = diffused_mixture_score(sde, x_star, torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64))
    x1 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    eps = 1e-3
    ts = torch.tensor([1.0, eps], dtype=F64)
    m1, me = sde.marginal_mean_coeff(1.0).item(), sde.marginal_mean_coeff(eps).item()
    ratio = sde.marginal_std(eps).item() / sde.marginal_std(1.0).item()
    exact = me * x_star + ratio * (x1 - m1 * x_star)
    got = solve(score, sde, x1, ts, name)
    # exact up to round-off; the VP and sub-VP noise levels run from sigma~_1 = 152 down to 1e-3 or less,
    # and Heun's correction multiplies differences of that size: measured 2e-10 (VP), 2e-8 (sub-VP)
    assert torch.allclose(got, exact, atol=1e-7, rtol=0)
    # while reverse-time Euler in t is far off in one step
    assert (solve(score, sde, x1, ts, "euler") - exact).abs().max() > 1e-2


@pytest.mark.parametrize("sde", [VPSDE(beta_min=0.1, beta_max=5.0), SubVPSDE(beta_min=0.5, beta_max=5.0)], ids=repr)
def test_heun_edm_matches_solve_ivp_on_a_mixture(sde):
    # the scaled-variable form is right for VP-type SDEs too: compare with a tight scipy solve in t
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64)
    score = diffused_mixture_score(sde, means, torch.tensor([0.2, 0.3], dtype=F64), torch.tensor([0.3, 0.7], dtype=F64))
    f = pf_ode_drift(sde, score)
    x1 = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    eps = 1e-2
    fun = lambda t, y: f(torch.as_tensor(y, dtype=F64).reshape(4, 2), float(t)).reshape(-1).numpy()  # noqa: E731
    ref = solve_ivp(fun, (1.0, eps), x1.reshape(-1).numpy(), method="DOP853", rtol=1e-10, atol=1e-10).y[:, -1]
    got = solve(score, sde, x1, edm_time_grid(sde, 100, eps), "heun_edm")
    # Heun's error at 100 steps is about 1e-4 here (measured); a wrong scaling by m_t would be off by O(0.1)
    assert np.allclose(got.reshape(-1).numpy(), ref, atol=1e-3)


def test_ve_time_of_noise_level_is_the_closed_form_inverse():
    sigma = 25.0
    sde = VESDE(sigma)
    st = torch.tensor([0.001, 0.1, 1.0, 5.0, 9.8], dtype=F64)
    want = torch.log(1 + 2 * math.log(sigma) * st**2) / (2 * math.log(sigma))
    assert torch.allclose(time_of_noise_level(sde, st), want, rtol=1e-12)


@pytest.mark.parametrize("sde", ALL_SDES, ids=repr)
def test_time_of_noise_level_inverts_noise_level(sde):
    t = torch.tensor([1e-5, 0.01, 0.3, 0.7, 1.0], dtype=F64)
    # sigma~_t = sigma_t / m_t in closed form, from the SDEs' parameters (B(t) = integral of beta):
    # VE sqrt((sigma^{2t} - 1) / (2 ln sigma)); VP sqrt(e^B - 1); sub-VP (1 - e^{-B}) e^{B/2} = 2 sinh(B/2)
    if isinstance(sde, VESDE):
        level = torch.sqrt((sde.sigma ** (2 * t) - 1) / (2 * math.log(sde.sigma)))
    else:
        big_b = sde.beta_min * t + (sde.beta_max - sde.beta_min) * t**2 / 2
        level = 2 * torch.sinh(big_b / 2) if isinstance(sde, SubVPSDE) else torch.sqrt(torch.expm1(big_b))
    assert torch.allclose(noise_level(sde, t), level, rtol=1e-12, atol=0)
    assert torch.allclose(time_of_noise_level(sde, level), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sde", ALL_SDES, ids=repr)
def test_edm_grid_endpoints_monotone_and_spacing(sde):
    eps, steps = 1e-5, 10
    ts = edm_time_grid(sde, steps, eps)
    assert ts.shape == (steps + 1,)
    assert ts[0].item() == 1.0 and ts[-1].item() == eps
    assert (ts[1:] < ts[:-1]).all()
    # sigma~^{1/rho} is uniformly spaced (Karras et al. eq. (5))
    root = noise_level(sde, ts) ** (1 / 7)
    assert torch.allclose(root[1:] - root[:-1], (root[-1] - root[0]) / steps * torch.ones(steps, dtype=F64))
    # rho = 1: uniform in sigma~ itself
    lv = noise_level(sde, edm_time_grid(sde, steps, eps, rho=1.0))
    assert torch.allclose(lv[1:] - lv[:-1], (lv[-1] - lv[0]) / steps * torch.ones(steps, dtype=F64))
    # log-SNR grid: uniform in ln sigma~
    ll = noise_level(sde, logsnr_time_grid(sde, steps, eps)).log()
    assert torch.allclose(ll[1:] - ll[:-1], (ll[-1] - ll[0]) / steps * torch.ones(steps, dtype=F64))


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_score_evaluations_per_step(name):
    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    counter = CountingScore(score)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 (used by the stochastic solvers only)
    path = solve(counter, sde, x1, edm_time_grid(sde, 7), name, generator=gen(), return_path=True)
    assert counter.calls == 7 * EVALUATIONS_PER_STEP[name]
    assert path.shape == (8, *x1.shape)
    assert torch.equal(path[0], x1)
    assert torch.allclose(path[-1], solve(score, sde, x1, edm_time_grid(sde, 7), name, generator=gen()))


def test_bad_arguments_raise():
    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    with pytest.raises(ValueError, match="solver"):
        solve(score, sde, x1, uniform_time_grid(4), "rk4")
    with pytest.raises(ValueError, match="steps"):
        edm_time_grid(sde, 0)
    with pytest.raises(ValueError, match="rho"):
        edm_time_grid(sde, 5, rho=0.0)
    with pytest.raises(ValueError, match="eps"):
        edm_time_grid(sde, 5, eps=1.5)
    with pytest.raises(ValueError, match="grid"):
        time_grid(sde, 5, grid="cosine")
    with pytest.raises(ValueError, match="ts"):
        solve(score, sde, x1, torch.tensor([1.0, 0.5, 0.7]), "euler_sigma")
    with pytest.raises(ValueError, match="x1"):
        solve(score, sde, x1[0], uniform_time_grid(4), "heun_edm")
    with pytest.raises(TypeError, match="sde"):
        edm_time_grid("ve", 5)
    with pytest.raises(ValueError, match="sigma"):
        time_of_noise_level(sde, -1.0)


def test_euler_sigma_is_ddim_for_vp():
    # deterministic DDIM (Song et al. 2021, eq. (12), eta = 0) in its own variables: with alpha-bar = m_t^2,
    # eps_hat = -sigma_t s(x, t), x0_hat = (x - sigma_t eps_hat) / m_t, x' = m' x0_hat + sigma' eps_hat
    sde = VPSDE()
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64)
    score = diffused_mixture_score(sde, means, torch.tensor([0.2, 0.3], dtype=F64), torch.tensor([0.3, 0.7], dtype=F64))
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    t, t_next = 0.6, 0.35
    m, sig = sde.marginal_mean_coeff(t).item(), sde.marginal_std(t).item()
    m2, sig2 = sde.marginal_mean_coeff(t_next).item(), sde.marginal_std(t_next).item()
    eps_hat = -sig * score(x, t)
    x0_hat = (x - sig * eps_hat) / m
    ddim = m2 * x0_hat + sig2 * eps_hat
    got = solve(score, sde, x, torch.tensor([t, t_next], dtype=F64), "ddim")
    assert torch.allclose(got, ddim, atol=1e-12)


def test_reference_problems_agree_with_a_fine_independent_solve():
    # The DOP853 reference of problem (b), and the closed form of (a), against 400 Heun (EDM) steps
    # on the log-SNR grid (second order: error ~ 1e-5 of the scale here).
    from sbgm_edu.solvers import reference_problems

    sde = VESDE(25.0)
    x1 = sde.sample_prior(20, 2, generator=torch.Generator().manual_seed(0)).double()
    for name, (score, exact, scale) in reference_problems(sde, x1).items():
        fine = solve(score, sde, x1, time_grid(sde, 400, 1e-5, "logsnr"), "heun_edm")
        assert (fine - exact).pow(2).mean().sqrt().item() / scale < 1e-3, name


def test_error_vs_nfe_counts_evaluations_and_errors_fall():
    from sbgm_edu.solvers import error_vs_nfe, reference_problems

    sde = VESDE(25.0)
    x1 = sde.sample_prior(20, 2, generator=torch.Generator().manual_seed(1)).double()
    problems = reference_problems(sde, x1)
    table = error_vs_nfe(problems, sde, x1, [("euler", "uniform"), ("dpm_solver_2m", "logsnr")], [8, 32])
    assert set(table) == {(p, s, g) for p in problems for s, g in [("euler", "uniform"), ("dpm_solver_2m", "logsnr")]}
    for rows in table.values():
        (n_small, e_small), (n_large, e_large) = rows
        assert (n_small, n_large) == (8, 32)  # counted calls equal the budgets for these solvers
        assert e_large < e_small


# ---------------------------------------------------------------------------
# issue 10: defects, each reproduced by a test that failed before its fix
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sde", ALL_SDES, ids=repr)
@pytest.mark.parametrize("name", ["euler_sigma", "heun_edm", "dpm_solver_2m"])
def test_noise_level_solvers_on_a_grid_ending_at_zero_take_the_last_euler_step(sde, name):
    # Karras et al.'s last-step rule: the step to sigma~ = 0 is an Euler step, which lands on D.
    # For one data point x*, D = x* exactly, so every such solver must return x* (no 0/0).
    from tests.oracles import gaussian_score

    point = torch.tensor([[0.3, -0.7]], dtype=F64)
    x1 = sde.prior_std() * torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = torch.cat([edm_time_grid(sde, 6)[:-1], torch.zeros(1, dtype=F64)])
    got = solve(gaussian_score(sde, point, 0.0), sde, x1, ts, name)
    assert torch.allclose(got, point.expand_as(got), atol=1e-9)


def test_noise_level_solvers_reject_a_start_at_noise_level_zero():
    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    for name in ("euler_sigma", "heun_edm", "dpm_solver_2m"):
        with pytest.raises(ValueError, match=r"ts\[0\] = 0.0 has noise level 0"):
            solve(score, sde, x1, torch.tensor([0.0, 0.5, 1.0], dtype=F64), name)


@pytest.mark.parametrize("grid", ["edm", "logsnr"])
def test_noise_level_grids_work_for_a_steep_vp_sde(grid):
    # VPSDE(0.1, 2000): sigma~_1 = sqrt(e^{B(1)} - 1) ~ 1.4e217, whose square overflows float64
    sde = VPSDE(0.1, 2000.0)
    ts = time_grid(sde, 10, 1e-5, grid)
    assert ts[0] == 1.0 and ts[-1] == 1e-5 and (ts[1:] < ts[:-1]).all()
    # the defining spacing: ln sigma~ uniform (log-SNR), sigma~^{1/7} uniform (EDM)
    spaced = noise_level(sde, ts).log() if grid == "logsnr" else noise_level(sde, ts) ** (1 / 7)
    gaps = spaced[1:] - spaced[:-1]
    assert torch.allclose(gaps, gaps.mean().expand_as(gaps), rtol=1e-6)


@pytest.mark.parametrize("sde", ALL_SDES, ids=repr)
def test_time_of_noise_level_is_finite_up_to_huge_noise_levels(sde):
    sigma = torch.tensor([1e-300, 1e100, 1e200, 1e300], dtype=F64)
    t = time_of_noise_level(sde, sigma)
    assert torch.isfinite(t).all() and (t[1:] > t[:-1]).all()
    if isinstance(sde, VESDE):  # t = ln(1 + a sigma^2) / a ~ (ln a + 2 ln sigma) / a for large sigma
        a = 2 * math.log(25.0)
        assert torch.allclose(t[1:], (math.log(a) + 2 * sigma[1:].log()) / a, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_a_score_of_the_wrong_shape_is_an_error_not_a_broadcast(name):
    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    with pytest.raises(ValueError, match=r"score_fn must return a tensor of shape \(8, 2\), got \(8, 1\)"):
        solve(lambda x, t: score(x, t)[:, :1], sde, x1, uniform_time_grid(4), name)


def test_counting_score_counts_calls_and_rows():
    from sbgm_edu.solver_study import CountingScore as StudyCountingScore

    assert StudyCountingScore is CountingScore  # the old import path still works
    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    counter = CountingScore(score)
    solve(counter, sde, x1, uniform_time_grid(5), "heun")
    assert counter.calls == 10 and counter.rows == 10 * x1.shape[0]


@pytest.mark.parametrize("nfe", [0, -4])
def test_error_vs_nfe_rejects_budgets_below_one(nfe):
    from sbgm_edu.solver_study import error_vs_nfe

    sde = VESDE(10.0)
    _, _, score, x1 = gaussian_problem(sde)
    with pytest.raises(ValueError, match="nfes entries must be an int >= 1"):
        error_vs_nfe({"g": (score, x1, 1.0)}, sde, x1, [("euler", "uniform")], [4, nfe])


def test_registry_views_and_solve_follow_registry_entries(monkeypatch):
    from sbgm_edu import solvers

    calls = []

    def noisy_solver(score_fn, sde, x1, ts, return_path=False, generator=None, scale=1.0):
        calls.append((generator, scale))
        return x1 * scale

    spec = solvers.SolverSpec(noisy_solver, 3, "a test solver", 1, stochastic=True)
    monkeypatch.setitem(solvers.REGISTRY, "test_solver", spec)
    assert SOLVERS["test_solver"] is noisy_solver and EVALUATIONS_PER_STEP["test_solver"] == 3
    assert "test_solver" in SOLVERS and len(SOLVERS) == len(solvers.REGISTRY)
    gen = torch.Generator()
    x1 = torch.ones(2, 2, dtype=F64)
    assert torch.equal(solve(None, VESDE(2.0), x1, uniform_time_grid(2), "test_solver", gen, scale=2.0), 2 * x1)
    assert calls == [(gen, 2.0)]
