"""Property-based tests (Hypothesis) of the bad-input contract of issue 10.

1. For each public function of sde, solvers, solver_study, sampling, likelihood, distances, scores, metrics,
   ode, convergence and sde_orders, generated bad values of one argument (wrong type, out of range, NaN,
   inf, unknown name, wrong shape) raise ValueError or TypeError whose message names that argument.
2. Finite, valid inputs never give NaN (or inf) silently.

Each property runs a few dozen generated examples; the whole file stays under about 20 s.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbgm_edu import likelihood, solvers
from sbgm_edu.convergence import convergence_order, final_time_error, loglog_slope, uniform_grid
from sbgm_edu.distances import gaussian_kl, prior_gap_kl, wasserstein2_empirical
from sbgm_edu.metrics import (
    coverage,
    fit_pca,
    frechet_distance,
    gaussian_frechet_distance,
    nearest_rmse,
    pairwise_rmse,
    table_text,
)
from sbgm_edu.ode import euler, heun
from sbgm_edu.sampling import sample, sampling_grid
from sbgm_edu.scores import diffused_mixture_score, empirical_score, mixture_log_prob, mixture_score
from sbgm_edu.sde import VESDE, VP_INTEGRATED_BETA_MAX, VPSDE, SubVPSDE, euler_maruyama, pf_ode_drift
from sbgm_edu.sde_orders import (
    brownian_increments,
    coarsen_increments,
    euler_maruyama_driven,
    gbm_em_errors,
    gbm_exact,
)
from sbgm_edu.solver_study import CountingScore, error_vs_nfe, gaussian_pf_ode_flow, reference_problems
from tests.oracles import gaussian_score

F64 = torch.float64
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VE = VESDE(10.0)
MU = torch.tensor([[0.5, -1.0]], dtype=F64)
SCORE = gaussian_score(VE, MU, 0.5)
X = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
TS = solvers.uniform_time_grid(3)
ZERO2, EYE2 = torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)

# ---------------------------------------------------------------------------
# bad values, by kind of argument
# ---------------------------------------------------------------------------

not_a_number = st.one_of(st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2), st.booleans())
bad_positive_int = st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), not_a_number)
bad_positive_float = st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), not_a_number)
bad_eps = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan), not_a_number)
bad_time = st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(math.nan), not_a_number)
bad_noise_level = st.one_of(st.floats(max_value=-1e-300), st.just(math.nan), st.just(math.inf),
                            st.none(), st.text(max_size=3))
KNOWN_NAMES = {*solvers.REGISTRY, *solvers.TIME_GRIDS, "exact", "hutchinson", "rademacher", "gaussian"}
bad_name = st.one_of(st.text(max_size=8).filter(lambda s: s not in KNOWN_NAMES), st.none(), st.integers())
bad_ve_sigma = st.one_of(st.floats(max_value=1.0), st.floats(min_value=1.35e154), st.just(math.nan), not_a_number)


@st.composite
def bad_matrix(draw, rows: int = 3, cols: int = 2, kinds: tuple[str, ...] = ("1d", "3d", "nan", "inf", "int", "list")):
    """A tensor that is not a finite float (rows, cols) matrix: wrong ndim, NaN/inf entry, int dtype or not a tensor."""
    kind = draw(st.sampled_from(kinds))
    if kind == "1d":
        return torch.zeros(rows, dtype=F64)
    if kind == "3d":
        return torch.zeros(1, rows, cols, dtype=F64)
    if kind in ("nan", "inf"):
        x = torch.zeros(rows, cols, dtype=F64)
        x[draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))] = math.nan if kind == "nan" else -math.inf
        return x
    if kind == "int":
        return torch.zeros(rows, cols, dtype=torch.int64)
    return [[0.0] * cols] * rows


@st.composite
def non_symmetric_covariance(draw):
    """An SPD matrix plus an antisymmetric part large enough to be unmistakable."""
    a = draw(st.floats(0.5, 3.0))
    skew = draw(st.floats(1e-3, 1.0)) * draw(st.sampled_from([-1.0, 1.0]))
    return torch.tensor([[a, skew], [0.0, a]], dtype=F64)


@st.composite
def bad_time_grid(draw, kinds: tuple[str, ...] = ("short", "flat", "zigzag", "nan", "outside")):
    """Time grids that are not 1-D, strictly monotone, finite and (for the PF-ODE solvers) inside [0, 1]."""
    kind = draw(st.sampled_from(kinds))
    return {
        "short": torch.tensor([0.5], dtype=F64),
        "flat": torch.tensor([1.0, 0.5, 0.5], dtype=F64),
        "zigzag": torch.tensor([1.0, 0.2, 0.6], dtype=F64),
        "nan": torch.tensor([1.0, math.nan, 0.1], dtype=F64),
        "outside": torch.tensor([draw(st.floats(1.001, 5.0)), 0.5, 0.1], dtype=F64),
    }[kind]


# ---------------------------------------------------------------------------
# 1. bad arguments raise ValueError/TypeError naming the argument
# ---------------------------------------------------------------------------

CASES = [
    # sde
    ("VESDE", "sigma", bad_ve_sigma, lambda v: VESDE(v)),
    ("VPSDE", "beta_min", bad_positive_float, lambda v: VPSDE(beta_min=v)),
    ("SubVPSDE", "beta_max", st.one_of(st.floats(max_value=0.09), not_a_number), lambda v: SubVPSDE(0.1, v)),
    ("marginal_std", "t", bad_time, lambda v: VE.marginal_std(v)),
    ("perturb", "x0", bad_matrix(), lambda v: VE.perturb(v, 0.5, torch.zeros(3, 2, dtype=F64))),
    ("sample_prior", "n", bad_positive_int, lambda v: VE.sample_prior(v, 2)),
    ("prior_log_prob", "x", bad_matrix(), lambda v: VE.prior_log_prob(v)),
    # solvers
    ("noise_level", "t", bad_time, lambda v: solvers.noise_level(VE, v)),
    ("time_of_noise_level", "sigma", bad_noise_level, lambda v: solvers.time_of_noise_level(VPSDE(), v)),
    ("uniform_time_grid", "steps", bad_positive_int, lambda v: solvers.uniform_time_grid(v)),
    ("uniform_time_grid", "eps", bad_eps, lambda v: solvers.uniform_time_grid(4, v)),
    ("edm_time_grid", "rho", bad_positive_float, lambda v: solvers.edm_time_grid(VE, 4, rho=v)),
    ("edm_time_grid", "eps", bad_eps, lambda v: solvers.edm_time_grid(VE, 4, v)),
    ("logsnr_time_grid", "steps", bad_positive_int, lambda v: solvers.logsnr_time_grid(VE, v)),
    ("time_grid", "grid", bad_name, lambda v: solvers.time_grid(VE, 4, grid=v)),
    ("solve", "name", bad_name, lambda v: solvers.solve(SCORE, VE, X, TS, v)),
    ("solve", "ts", bad_time_grid(), lambda v: solvers.solve(SCORE, VE, X, v, "heun_edm")),
    ("solve", "x1", bad_matrix(), lambda v: solvers.solve(SCORE, VE, v, TS, "dpm_solver_2m")),
    ("solve", "score_fn", st.sampled_from([None, 3.0, "score"]), lambda v: solvers.solve(v, VE, X, TS, "euler")),
    ("error_vs_nfe", "nfes", st.integers(max_value=0),
     lambda v: error_vs_nfe({"g": (SCORE, X, 1.0)}, VE, X, [("euler", "uniform")], [v])),
    ("gaussian_pf_ode_flow", "s", st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), not_a_number),
     lambda v: gaussian_pf_ode_flow(VE, MU, v, X, 1.0, 0.5)),
    ("reference_problems", "eps", bad_eps, lambda v: reference_problems(VE, X, v)),
    # sampling
    ("sample", "n", bad_positive_int, lambda v: sample(SCORE, VE, v, 2, 2)),
    ("sample", "steps", bad_positive_int, lambda v: sample(SCORE, VE, 2, 2, v)),
    ("sample", "solver", bad_name, lambda v: sample(SCORE, VE, 2, 2, 2, solver=v)),
    ("sample", "grid", bad_name, lambda v: sample(SCORE, VE, 2, 2, 2, grid=v)),
    ("sample", "eps", bad_eps, lambda v: sample(SCORE, VE, 2, 2, 2, eps=v)),
    ("sample", "dtype", st.sampled_from([torch.int64, torch.bool, "float32", 32]),
     lambda v: sample(SCORE, VE, 2, 2, 2, dtype=v)),
    # likelihood
    ("log_prob", "steps", bad_positive_int, lambda v: likelihood.log_prob(SCORE, VE, X, v)),
    ("log_prob", "eps", bad_eps, lambda v: likelihood.log_prob(SCORE, VE, X, 2, eps=v)),
    ("log_prob", "method", bad_name, lambda v: likelihood.log_prob(SCORE, VE, X, 2, method=v)),
    ("log_prob", "n_probes", bad_positive_int,
     lambda v: likelihood.log_prob(SCORE, VE, X, 2, method="hutchinson", n_probes=v)),
    ("log_prob", "x0", bad_matrix(), lambda v: likelihood.log_prob(SCORE, VE, v, 2)),
    ("bits_per_dim", "bin_width", bad_positive_float, lambda v: likelihood.bits_per_dim(torch.zeros(2), 4, v)),
    ("dequantize", "bin_width", bad_positive_float, lambda v: likelihood.dequantize(X, v)),
    # distances and metrics
    ("gaussian_kl", "cov0", non_symmetric_covariance(),
     lambda v: gaussian_kl(ZERO2, v, ZERO2, EYE2)),
    ("gaussian_frechet_distance", "cov_b", non_symmetric_covariance(),
     lambda v: gaussian_frechet_distance(ZERO2, EYE2, ZERO2, v)),
    ("wasserstein2_empirical", "x", bad_matrix(), lambda v: wasserstein2_empirical(v, X)),
    ("prior_gap_kl", "data", bad_matrix(), lambda v: prior_gap_kl(v, VE)),
    ("pairwise_rmse", "a", bad_matrix(), lambda v: pairwise_rmse(v, X)),
    ("coverage", "k", bad_positive_int, lambda v: coverage(X, X, v)),
    ("fit_pca", "dims", bad_positive_int, lambda v: fit_pca(X, v)),
    # scores
    ("mixture_log_prob", "stds", st.floats(max_value=0.0),
     lambda v: mixture_log_prob(X, MU, torch.tensor([v], dtype=F64), torch.ones(1, dtype=F64))),
    ("empirical_score", "data", bad_matrix(), lambda v: empirical_score(VE, v)),
    ("mixture_score", "stds", st.floats(max_value=0.0),
     lambda v: mixture_score(X, MU, torch.tensor([v], dtype=F64), torch.ones(1, dtype=F64))),
    ("diffused_mixture_score", "weights", st.floats(max_value=0.99),
     lambda v: diffused_mixture_score(VE, MU, torch.ones(1, dtype=F64), torch.tensor([v], dtype=F64))),
    # likelihood internals, sde helpers
    ("rademacher_like", "n_probes", bad_positive_int, lambda v: likelihood.rademacher_like(X, v)),
    ("divergence_exact", "f", st.sampled_from([None, 1.0, "f"]), lambda v: likelihood.divergence_exact(v, X, 0.5)),
    ("divergence_hutchinson", "probes", bad_matrix(kinds=("1d", "nan", "inf", "int", "list")),
     lambda v: likelihood.divergence_hutchinson(SCORE, X, 0.5, v)),
    ("euler_maruyama", "diffusion", st.sampled_from([None, 1.0, "g"]),
     lambda v: euler_maruyama(VE.drift, v, X, TS)),
    ("pf_ode_drift", "score_fn", st.sampled_from([None, 1.0, "s"]), lambda v: pf_ode_drift(VE, v)),
    ("pf_ode_drift", "sde", st.sampled_from([None, 1.0, "ve"]), lambda v: pf_ode_drift(v, SCORE)),
    ("CountingScore", "score_fn", st.sampled_from([None, 1.0, "s"]), lambda v: CountingScore(v)),
    ("sampling_grid", "steps", bad_positive_int, lambda v: sampling_grid(v)),
    ("frechet_distance", "features_a", bad_matrix(), lambda v: frechet_distance(v, X)),
    ("nearest_rmse", "reference", bad_matrix(), lambda v: nearest_rmse(X, v)),
    ("table_text", "fmt", bad_name, lambda v: table_text(["a"], [["1"]], v)),
    # ode, convergence, sde_orders
    ("euler", "f", st.sampled_from([None, 1.0, "f"]), lambda v: euler(v, X, TS)),
    ("final_time_error", "steps", bad_positive_int,
     lambda v: final_time_error(euler, lambda x, t: -x, X, 0.0, 1.0, X, v)),
    ("convergence_order", "steps_list", st.one_of(st.just([4]), st.just([3, 3]), st.just("48"), st.just([0, 4])),
     lambda v: convergence_order(euler, lambda x, t: -x, X, 0.0, 1.0, X, v)),
    ("coarsen_increments", "factor", bad_positive_int, lambda v: coarsen_increments(torch.zeros(4, 2), v)),
    ("euler_maruyama_driven", "t_end", bad_positive_float,
     lambda v: euler_maruyama_driven(lambda x, t: x, lambda x, t: x, torch.zeros(2), torch.zeros(4, 2), v)),
    ("gbm_exact", "s", st.one_of(st.just(math.nan), st.just(math.inf), not_a_number),
     lambda v: gbm_exact(torch.ones(2), 1.0, v, 1.0, torch.zeros(2))),
    ("euler", "ts", bad_time_grid(("short", "flat", "zigzag", "nan")), lambda v: euler(lambda x, t: -x, X, v)),
    ("heun", "x0", bad_matrix(kinds=("nan", "inf", "int", "list")), lambda v: heun(lambda x, t: -x, v, TS)),
    ("uniform_grid", "t1", st.one_of(st.just(math.nan), st.just(math.inf), not_a_number),
     lambda v: uniform_grid(0.0, v, 4)),
    ("loglog_slope", "xs", st.lists(st.floats(max_value=0.0), min_size=2, max_size=4),
     lambda v: loglog_slope(v, [1.0] * len(v))),
    ("brownian_increments", "steps", bad_positive_int, lambda v: brownian_increments(v, (3,))),
    ("brownian_increments", "t_end", bad_positive_float, lambda v: brownian_increments(4, (3,), v)),
    ("gbm_em_errors", "n_paths", st.one_of(st.integers(max_value=1), not_a_number), lambda v: gbm_em_errors([2, 4], v)),
]


@pytest.mark.parametrize("function, argument, values, call", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_bad_argument_raises_an_error_naming_it(function, argument, values, call):
    @FEW
    @given(values)
    def check(value):
        with pytest.raises((ValueError, TypeError), match=re.escape(argument)):
            call(value)

    check()


def test_a_score_of_the_wrong_shape_is_reported_by_every_entry_point():
    flat = lambda x, t: x[:, :1]  # noqa: E731  (N, 1) instead of (N, D): would broadcast silently
    for call in (lambda: sample(flat, VE, 4, 2, 2), lambda: likelihood.log_prob(flat, VE, X, 2),
                 lambda: solvers.solve(flat, VE, X, TS, "heun_edm")):
        with pytest.raises(ValueError, match="score_fn must return a tensor of shape"):
            call()


# ---------------------------------------------------------------------------
# 2. finite, valid inputs never give NaN or inf silently
# ---------------------------------------------------------------------------


@FEW
@given(st.floats(1.0 + 1e-9, 1e150), st.floats(0.0, 1.0))
def test_ve_formulas_are_finite_for_every_accepted_sigma(sigma, t):
    sde = VESDE(sigma)
    values = [sde.prior_std(), sde.marginal_std(t).item(), sde.diffusion(t).item(), sde.noise_level(t).item()]
    assert all(math.isfinite(v) for v in values)
    assert sde.time_of_noise_level(sde.noise_level(t)).item() == pytest.approx(t, rel=1e-6, abs=1e-9)


@FEW
@given(st.sampled_from([VESDE(25.0), VESDE(1.0001), VPSDE(), SubVPSDE(), VPSDE(0.1, 2000.0)]),
       st.floats(0.0, 1.7e308))
def test_time_of_noise_level_is_finite_for_every_finite_level(sde, sigma):
    t = solvers.time_of_noise_level(sde, sigma)
    assert torch.isfinite(t) and t >= 0


@FEW
@given(st.floats(1e-3, 10.0), st.floats(0.0, 2826.0), st.sampled_from(["uniform", "edm", "logsnr"]),
       st.integers(1, 30), st.sampled_from([1e-5, 1e-3, 0.1]))
def test_time_grids_are_finite_and_decreasing_for_every_vp_sde(beta_min, extra, grid, steps, eps):
    # every accepted VP SDE: B(1) = beta_min + extra / 2 up to the limit ~1418 where sigma~_1 overflows
    if beta_min + extra / 2 > VP_INTEGRATED_BETA_MAX:
        with pytest.raises(ValueError, match="beta_max must keep B"):
            VPSDE(beta_min, beta_min + extra)
        return
    for sde in (VPSDE(beta_min, beta_min + extra), SubVPSDE(beta_min, beta_min + extra)):
        ts = solvers.time_grid(sde, steps, eps, grid)
        assert torch.isfinite(ts).all() and (ts[1:] < ts[:-1]).all() and ts[0] == 1.0 and ts[-1] == eps


@FEW
@given(st.sampled_from(sorted(solvers.REGISTRY)), st.sampled_from(["uniform", "edm", "logsnr"]), st.integers(1, 8),
       st.integers(0, 2**31 - 1))
def test_sampling_with_an_exact_score_is_finite(solver, grid, steps, seed):
    x = sample(SCORE, VE, 8, 2, steps, solver=solver, grid=grid, eps=1e-3,
               generator=torch.Generator().manual_seed(seed), dtype=F64)
    assert torch.isfinite(x).all()


@st.composite
def spd(draw, dim: int = 3):
    entries = draw(st.lists(st.floats(-3.0, 3.0), min_size=dim * dim, max_size=dim * dim))
    a = torch.tensor(entries, dtype=F64).reshape(dim, dim)
    return a @ a.T + draw(st.floats(1e-3, 2.0)) * torch.eye(dim, dtype=F64)


@FEW
@given(spd(), spd(), st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6))
def test_gaussian_divergences_are_finite_and_non_negative(cov0, cov1, means):
    m0, m1 = torch.tensor(means[:3], dtype=F64), torch.tensor(means[3:], dtype=F64)
    for value in (gaussian_kl(m0, cov0, m1, cov1), gaussian_frechet_distance(m0, cov0, m1, cov1)):
        assert math.isfinite(value) and value >= -1e-9 * (1 + abs(value))


@FEW
@given(st.integers(1, 6), st.integers(1, 3), st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))
def test_point_cloud_measures_are_finite(n, dim, scale, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = scale * torch.randn(n, dim, generator=g, dtype=F64), scale * torch.randn(n, dim, generator=g, dtype=F64)
    assert math.isfinite(wasserstein2_empirical(x, y))
    assert torch.isfinite(pairwise_rmse(x, y)).all()
    score = empirical_score(VE, x)(y, 0.5)
    assert torch.isfinite(score).all()
    stds = torch.full((n,), 0.3, dtype=F64)
    weights = torch.full((n,), 1.0 / n, dtype=F64)
    assert torch.isfinite(mixture_log_prob(y, x, stds, weights)).all()
    assert torch.isfinite(diffused_mixture_score(VPSDE(), x, stds, weights)(y, 0.7)).all()
