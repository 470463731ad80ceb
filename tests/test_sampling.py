"""Tests of sbgm_edu.sampling against closed forms of the PF-ODE for Gaussian data.

For data N(mu, s^2 I) diffused by the VE SDE, p_t = N(mu, (s^2 + sigma_t^2) I), and the PF-ODE
flow started at x_1 is x_t = mu + (x_1 - mu) sqrt((s^2 + sigma_t^2) / (s^2 + sigma_1^2))
(DESIGN.md §4). The samplers are compared with that flow for the same x_1 (same generator).
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad

from sbgm_edu.sampling import original_sample, sample, sampling_grid, tile_digits
from sbgm_edu.scores import diffused_mixture_score, empirical_score
from sbgm_edu.sde import VESDE
from tests.oracles import gaussian_flow

MU = torch.tensor([[0.7, -1.3]])
S = 0.5
EPS = 1e-3


def gaussian_score(sde):
    return diffused_mixture_score(sde, MU, torch.tensor([S]), torch.tensor([1.0]))


def exact_flow(sde, x1, t):
    """Closed-form PF-ODE flow from t = 1 to t for Gaussian data (`tests.oracles.gaussian_flow`)."""
    return gaussian_flow(sde, MU, S, x1, 1.0, t)


def prior_draw(sde, n, seed):
    return sde.sample_prior(n, 2, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("solver, order", [("euler", 1), ("heun", 2)])
def test_sampler_converges_to_closed_form_flow(solver, order):
    sde = VESDE(10.0)
    score = gaussian_score(sde)
    x1 = prior_draw(sde, 64, seed=3)
    want = exact_flow(sde, x1, EPS)
    errors = []
    for steps in (25, 50, 100, 200):
        got = sample(score, sde, 64, 2, steps, solver=solver, eps=EPS, generator=torch.Generator().manual_seed(3))
        errors.append((got - want).abs().max().item())
    ratios = [a / b for a, b in zip(errors[:-1], errors[1:], strict=True)]
    # halving the step divides the global error by 2 (Euler, O(1/steps)) or 4 (Heun, O(1/steps^2))
    for r in ratios:
        assert 2**order * 0.8 < r < 2**order * 1.25, (errors, ratios)
    assert errors[-1] < 0.05


def test_sample_statistics_match_pushed_forward_prior():
    """x_1 ~ N(0, sigma_1^2 I) pushed through the exact flow is N(mu (1 - r), r^2 sigma_1^2 I) with
    r = sqrt((s^2 + sigma_eps^2) / (s^2 + sigma_1^2)): close to the data N(mu, s^2) only as far as the
    prior matches p_1 (the prior mismatch of chapter 5)."""
    sde = VESDE(10.0)
    n = 4000
    x = sample(gaussian_score(sde), sde, n, 2, 200, eps=EPS, generator=torch.Generator().manual_seed(0))
    r = math.sqrt((S**2 + float(sde.marginal_std(EPS)) ** 2) / (S**2 + sde.prior_std() ** 2))
    mean, std = MU[0] * (1 - r), r * sde.prior_std()
    # tolerance: 5 Monte Carlo standard errors, plus 0.01 for the Euler bias at 200 steps
    # (the convergence test above measures it below 0.01)
    assert torch.allclose(x.mean(0), mean, atol=5 * std / math.sqrt(n) + 0.01)
    assert torch.allclose(x.var(0), torch.full((2,), std**2), atol=5 * std**2 * math.sqrt(2 / (n - 1)) + 0.01)
    # and the data distribution N(mu, s^2) itself, up to the prior mismatch |mu| r
    assert torch.allclose(x.mean(0), MU[0], atol=5 * std / math.sqrt(n) + 0.01 + MU.abs().max().item() * r)
    assert abs(std - S) < 0.01


def test_shapes_path_and_determinism():
    sde = VESDE(5.0)
    score = gaussian_score(sde)
    x = sample(score, sde, 7, 2, 5, generator=torch.Generator().manual_seed(1))
    assert x.shape == (7, 2)
    path = sample(score, sde, 7, 2, 5, generator=torch.Generator().manual_seed(1), return_path=True)
    assert path.shape == (6, 7, 2)
    assert torch.equal(path[-1], x)
    assert torch.equal(path[0], prior_draw(sde, 7, seed=1))  # path starts at x_1 from the prior
    assert not path.requires_grad


def test_euler_step_evaluates_drift_at_start_of_step():
    """One step by hand: x_eps = x_1 + (1 - eps) * 1/2 * sigma^2 * s(x_1, 1), eq. (ve-euler-sampler)."""
    sde = VESDE(4.0)
    score = gaussian_score(sde)
    x1 = prior_draw(sde, 5, seed=2)
    by_hand = x1 + (1 - EPS) * 0.5 * 4.0**2 * (-(x1 - MU) / (S**2 + sde.prior_std() ** 2))
    got = sample(score, sde, 5, 2, 1, eps=EPS, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(got, by_hand, atol=1e-5)


def test_sampling_grid():
    ts = sampling_grid(4, eps=0.2)
    assert torch.allclose(ts, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2], dtype=torch.float64))


def test_original_sampler_converges_to_the_wrong_ode():
    """With g instead of g^2, the original solves dx/dt = -1/2 g(t) s(x, t): for Gaussian data
    x_eps - mu = (x_1 - mu) exp(-int_eps^1 1/2 g / (s^2 + sigma_t^2) dt), computed here with scipy."""
    sde = VESDE(3.0)
    integrand = lambda t: 0.5 * 3.0**t / (S**2 + float(sde.marginal_std(t)) ** 2)  # noqa: E731
    factor = math.exp(-quad(integrand, EPS, 1.0)[0])
    x1 = prior_draw(sde, 32, seed=4)
    want = MU + (x1 - MU) * factor
    score = gaussian_score(sde)
    errors = []
    for T in (51, 101, 201):
        got = original_sample(score, sde, 32, 2, T=T, eps=EPS, generator=torch.Generator().manual_seed(4),
                              apply_tanh=False)
        errors.append((got - want).abs().max().item())
    assert errors[0] / errors[1] > 1.6 and errors[1] / errors[2] > 1.6, errors  # first order
    assert errors[-1] < 0.02
    # and that is not the right flow: the true PF-ODE endpoint is far away
    assert (want - exact_flow(sde, x1, EPS)).abs().max() > 0.1


def test_original_sampler_steps_tanh_and_path():
    sde = VESDE(1.01)
    score = gaussian_score(sde)
    raw = original_sample(score, sde, 9, 2, T=20, generator=torch.Generator().manual_seed(5), apply_tanh=False)
    squashed = original_sample(score, sde, 9, 2, T=20, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(squashed, torch.tanh(raw))
    assert squashed.abs().max() < 1
    path = original_sample(score, sde, 9, 2, T=20, generator=torch.Generator().manual_seed(5), return_path=True)
    assert path.shape == (20, 9, 2)  # T grid points = T - 1 steps
    assert torch.equal(path[-1], raw)


def test_original_sampler_one_step_uses_destination_time_and_g():
    sde = VESDE(4.0)
    score = gaussian_score(sde)
    x1 = prior_draw(sde, 5, seed=6)
    t1 = 0.5  # T = 3: grid 1, 0.5, 0 -> with eps = 1e-5 close to that
    grid = torch.linspace(1.0, 1e-5, 3, dtype=torch.float64).tolist()
    delta = grid[0] - grid[1]
    x = x1.clone()
    for t in grid[1:]:
        var = S**2 + float(sde.marginal_std(t)) ** 2
        x = x + delta * 0.5 * 4.0**t * (-(x - MU) / var)
    got = original_sample(score, sde, 5, 2, T=3, generator=torch.Generator().manual_seed(6), apply_tanh=False)
    assert grid[1] == pytest.approx(t1, abs=1e-5)
    assert torch.allclose(got, x, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"n": 0}, ValueError, "n must"),
        ({"dim": -1}, ValueError, "dim"),
        ({"dim": 3.0}, TypeError, "dim"),
        ({"solver": "rk4"}, ValueError, "solver must be one of .*euler.*heun"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"eps": 1.5}, ValueError, "eps"),
        ({"sde": "VE"}, TypeError, "sde"),
        ({"score_fn": 3}, TypeError, "score_fn"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    sde = VESDE(2.0)
    args = {"score_fn": gaussian_score(sde), "sde": sde, "n": 4, "dim": 2, "steps": 3}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sample(**args)


def test_original_bad_arguments_raise():
    sde = VESDE(1.01)
    with pytest.raises(ValueError, match="T must"):
        original_sample(gaussian_score(sde), sde, 4, 2, T=1)
    with pytest.raises(ValueError, match="n must"):
        original_sample(gaussian_score(sde), sde, 0, 2)


def test_unknown_solver_lists_the_allowed_names():
    sde = VESDE(10.0)
    with pytest.raises(ValueError, match=r"solver must be one of .*'euler'.*'heun'"):
        sample(gaussian_score(sde), sde, 2, 2, 3, solver="rk4")


@pytest.mark.parametrize("solver", ["euler_sigma", "heun_edm", "dpm_solver_2m"])
def test_chapter_9_solvers_by_name_converge_to_the_closed_form_flow(solver):
    """Solvers of sbgm_edu.solvers, called by name through `sample`, converge to the exact PF-ODE endpoint
    (Gaussian data) on the uniform grid: 4x the steps cut the error by more than 2.5x (at least first order)."""
    sde = VESDE(10.0)
    score = gaussian_score(sde)
    want = exact_flow(sde, prior_draw(sde, 64, seed=7), EPS)
    errors = []
    for steps in (50, 200):
        got = sample(score, sde, 64, 2, steps, solver=solver, eps=EPS, generator=torch.Generator().manual_seed(7))
        errors.append((got - want).abs().max().item())
    assert errors[0] / errors[1] > 2.5, errors
    assert errors[1] < 0.03, errors


def test_tile_digits_places_each_image():
    x = torch.arange(5 * 4, dtype=torch.float32).reshape(5, 4)  # five 2x2 images
    grid = tile_digits(x, ncols=2, pad=1, side=2, fill=-7.0)
    assert grid.shape == (3 * 3 - 1, 2 * 3 - 1)
    assert torch.equal(grid[0:2, 3:5], x[1].reshape(2, 2))  # image 1: row 0, column 1
    assert torch.equal(grid[6:8, 0:2], x[4].reshape(2, 2))  # image 4: row 2, column 0
    assert (grid[6:8, 3:5] == -7.0).all()  # empty cell
    assert (grid[2, :] == -7.0).all()  # padding row
    with pytest.raises(ValueError, match="x must be a tensor of shape"):
        tile_digits(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="ncols"):
        tile_digits(torch.zeros(3, 64), ncols=0)


@pytest.mark.parametrize("grid", ["uniform", "edm", "logsnr"])
def test_euler_sigma_recovers_a_single_data_point_on_every_grid(grid):
    # For data = one point mu, the PF-ODE in sigma is x_sigma = mu + (sigma / sigma_1)(x_1 - mu): a straight
    # line, which Euler in sigma (DDIM) follows exactly on any grid; the endpoint is mu + sigma_eps/sigma_1 (x_1 - mu).
    sde = VESDE(25.0)
    mu = torch.tensor([[0.3, -0.7, 0.1]], dtype=torch.float64)
    score = empirical_score(sde, mu)
    gen = torch.Generator().manual_seed(5)
    x = sample(score, sde, 4, 3, 3, solver="euler_sigma", grid=grid, generator=gen).to(torch.float64)
    x1 = sde.sample_prior(4, 3, generator=torch.Generator().manual_seed(5)).to(torch.float64)
    ratio = sde.marginal_std(1e-5).item() / sde.prior_std()
    assert torch.allclose(x, mu + ratio * (x1 - mu), atol=1e-5)


def test_unknown_grid_raises():
    sde = VESDE(25.0)
    with pytest.raises(ValueError, match="grid must be one of"):
        sample(lambda x, t: -x, sde, 2, 2, 3, grid="cosine")


def test_sample_draws_in_the_dtype_of_the_network():
    # issue 10: a float32 network could only be sampled in torch's default dtype; a float64 draw
    # gave a raw matmul error. sample() takes dtype, and a mismatch is reported naming dtype.
    sde = VESDE(10.0)
    torch.manual_seed(0)
    net32 = torch.nn.Linear(2, 2)
    score32 = lambda x, t: net32(x)  # noqa: E731
    x = sample(score32, sde, 4, 2, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32
    net64 = torch.nn.Linear(2, 2).double()
    x = sample(lambda x, t: net64(x), sde, 4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64
    with pytest.raises(TypeError, match="dtype"):
        sample(score32, sde, 4, 2, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        sample(score32, sde, 4, 2, 3, dtype=torch.int64)
