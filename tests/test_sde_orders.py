"""Tests of sbgm_edu.sde_orders against closed forms, Monte Carlo (stated tolerances) and sbgm_edu.sde."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbgm_edu.convergence import loglog_slope
from sbgm_edu.sde import euler_maruyama
from sbgm_edu.sde_orders import (
    brownian_increments,
    coarsen_increments,
    euler_maruyama_driven,
    gbm_em_errors,
    gbm_exact,
)


def test_brownian_increments_have_variance_dt_and_are_uncorrelated():
    # 50 steps x 4000 paths = 200000 increments N(0, 0.02). Standard error of the sample variance
    # is dt sqrt(2/(n-1)); of the lag-1 correlation 1/sqrt(n). Allow 5 standard errors.
    dv = brownian_increments(50, (4000,), t_end=1.0, generator=torch.Generator().manual_seed(0))
    assert dv.shape == (50, 4000)
    n = dv.numel()
    dt = 1.0 / 50
    assert abs(dv.var().item() - dt) < 5 * dt * math.sqrt(2 / (n - 1))
    assert abs(dv.mean().item()) < 5 * math.sqrt(dt / n)
    lag1 = (dv[1:] * dv[:-1]).mean().item() / dt
    assert abs(lag1) < 5 / math.sqrt(dv[1:].numel())
    # v(1) = sum of increments is N(0, 1)
    v1 = dv.sum(0)
    assert abs(v1.var().item() - 1.0) < 5 * math.sqrt(2 / 3999)


def test_coarsen_increments_hand_example_and_same_path():
    dv = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    torch.testing.assert_close(coarsen_increments(dv, 2), torch.tensor([[3.0], [7.0]], dtype=torch.float64))
    fine = brownian_increments(8, (5,), generator=torch.Generator().manual_seed(1))
    coarse = coarsen_increments(fine, 4)
    # the coarse path visits the fine path at every 4th time
    torch.testing.assert_close(coarse.cumsum(0), fine.cumsum(0)[3::4])


def test_driven_scheme_matches_sbgm_edu_euler_maruyama_on_the_same_noise():
    # additive noise: dx = -x dt + (1 + t) dv. sbgm_edu.sde.euler_maruyama draws z_k ~ N(0, I) once per step
    # from the generator; rebuilding those draws as increments sqrt(h) z_k must give the same end point.
    x0 = torch.linspace(-2, 2, 12, dtype=torch.float64).reshape(6, 2)
    steps = 16
    ts = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    want = euler_maruyama(lambda x, t: -x, lambda t: 1 + t, x0, ts, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    draws = [torch.randn(x0.shape, generator=gen, dtype=x0.dtype) for _ in range(steps)]
    dv = math.sqrt(1 / steps) * torch.stack(draws)
    got = euler_maruyama_driven(lambda x, t: -x, lambda x, t: 1 + t, x0, dv)
    torch.testing.assert_close(got, want)


def test_euler_maruyama_mean_on_gbm_is_one_plus_mu_h_to_the_k():
    # E[x_{k+1}] = (1 + mu h) E[x_k] exactly for EM on GBM. 40000 paths; tolerance 5 standard errors.
    mu, s, k = 0.8, 0.6, 8
    dv = brownian_increments(k, (40_000,), generator=torch.Generator().manual_seed(3))
    x = euler_maruyama_driven(lambda x, t: mu * x, lambda x, t: s * x, torch.ones(40_000, dtype=torch.float64), dv)
    se = x.std().item() / math.sqrt(x.numel())
    assert abs(x.mean().item() - (1 + mu / k) ** k) < 5 * se


def test_gbm_exact_moments_match_closed_form():
    # E x(t) = x0 e^{mu t}, Var x(t) = x0^2 e^{2 mu t} (e^{s^2 t} - 1). 200000 draws; 5 standard errors
    # (for the variance, the standard error uses the fourth moment estimated from the sample).
    mu, s, t, x0 = 0.5, 0.4, 0.7, 2.0
    v_t = math.sqrt(t) * torch.randn(200_000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = gbm_exact(torch.tensor(x0, dtype=torch.float64), mu, s, t, v_t)
    mean = x0 * math.exp(mu * t)
    var = x0**2 * math.exp(2 * mu * t) * math.expm1(s**2 * t)
    n = x.numel()
    assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / n)
    c = x - x.mean()
    var_se = math.sqrt(((c**2 - c.var()) ** 2).mean().item() / n)
    assert abs(x.var().item() - var) < 5 * var_se


def test_observed_orders_are_one_half_strong_and_one_weak():
    # Theory (Kloeden & Platen; Sarkka & Solin ch. 8): strong 1/2, weak 1 for EM on GBM. With 20000 paths and
    # dt = 1/4 ... 1/256 the fitted slopes fall within +-0.15 of theory: over seeds 0-5 the strong slope measured
    # 0.467-0.473 and the weak slope 0.88-1.09 (the weak error is a small difference of means, hence noisier).
    r = gbm_em_errors([4, 8, 16, 32, 64, 128, 256], n_paths=20_000, generator=torch.Generator().manual_seed(0))
    assert np.all(np.diff(r["strong"]) < 0)
    assert abs(loglog_slope(r["dt"], r["strong"]) - 0.5) < 0.15
    assert abs(loglog_slope(r["dt"], r["weak"]) - 1.0) < 0.15


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: brownian_increments(0, (3,)), ValueError, "steps must be an int"),
        (lambda: brownian_increments(4, (3,), t_end=0.0), ValueError, "t_end"),
        (lambda: coarsen_increments(torch.zeros(5, 2), 2), ValueError, "factor"),
        (lambda: euler_maruyama_driven(lambda x, t: x, lambda x, t: x, torch.zeros(3), torch.zeros(4, 2)), ValueError,
         "dv"),
        (lambda: gbm_exact(torch.ones(2), float("nan"), 1.0, 1.0, torch.zeros(2)), ValueError, "mu"),
        (lambda: gbm_em_errors([4, 6], 100), ValueError, "steps_list entries must divide"),
        (lambda: gbm_em_errors([4], 1), ValueError, "n_paths"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
