"""Tests of sbgm_edu.metrics against known answers: identical sets, shifted sets, pure noise, and the
closed-form Fréchet distance between Gaussians (checked independently with scipy.linalg.sqrtm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.datasets import load_digits as sklearn_digits

from sbgm_edu.metrics import (
    METRIC_NAMES,
    coverage,
    coverage_radii,
    fit_pca,
    frechet_distance,
    gaussian_frechet_distance,
    nearest_rmse,
    pairwise_rmse,
    pca_features,
    pca_frechet_distance,
    quality_report,
    reports_table,
    table_text,
)


@pytest.fixture(scope="module")
def digits():
    """The digits straight from scikit-learn, mapped 2x/16 - 1 (independent of sbgm_edu.data)."""
    x = torch.as_tensor(sklearn_digits().data, dtype=torch.float32) * 2 / 16 - 1
    return {"train": x[:1000], "test": x[1350:]}


def random_spd(dim, seed):
    g = np.random.default_rng(seed)
    a = g.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_pairwise_rmse_matches_numpy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    want = np.sqrt(((a.numpy()[:, None, :] - b.numpy()[None, :, :]) ** 2).mean(-1))
    assert np.allclose(pairwise_rmse(a, b).numpy(), want, atol=1e-6)
    assert torch.allclose(nearest_rmse(a, b), torch.as_tensor(want.min(1), dtype=torch.float64), atol=1e-6)


def test_gaussian_frechet_matches_scipy_sqrtm():
    mean_a, mean_b = np.arange(4.0), np.array([1.0, -1.0, 0.5, 2.0])
    cov_a, cov_b = random_spd(4, 1), random_spd(4, 2)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    want = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross)
    got = gaussian_frechet_distance(*(torch.as_tensor(v) for v in (mean_a, cov_a, mean_b, cov_b)))
    assert got == pytest.approx(want, rel=1e-8)


def test_gaussian_frechet_diagonal_closed_form():
    """Diagonal covariances: |m_a - m_b|^2 + sum_j (sqrt(a_j) - sqrt(b_j))^2."""
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    m_a, m_b = torch.zeros(3), torch.tensor([3.0, 0.0, 4.0])
    got = gaussian_frechet_distance(m_a, torch.diag(a), m_b, torch.diag(b))
    assert got == pytest.approx(25.0 + 1.0 + 1.0 + 0.0, rel=1e-10)


def test_frechet_identical_and_shifted_sets():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.1, -0.3], dtype=torch.float64)
    # same covariance, so only the mean term remains: exactly |shift|^2
    assert frechet_distance(x, x + shift) == pytest.approx(float((shift**2).sum()), abs=1e-8)


def test_frechet_of_samples_converges_to_closed_form():
    """Two Gaussians sampled: the plug-in estimate tends to the closed form (tolerance 5 %: with 20000
    points the relative error of the covariance estimates is about sqrt(2/20000) ~ 1 % per entry)."""
    cov_a, cov_b = random_spd(3, 3), random_spd(3, 4)
    m_a, m_b = np.zeros(3), np.array([1.0, 2.0, -1.0])
    rng = np.random.default_rng(5)
    xa = rng.multivariate_normal(m_a, cov_a, size=20000)
    xb = rng.multivariate_normal(m_b, cov_b, size=20000)
    want = ((m_a - m_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    got = frechet_distance(torch.as_tensor(xa), torch.as_tensor(xb))
    assert got == pytest.approx(want, rel=0.05)


def test_pca_features_and_shift_along_a_component(digits):
    pca = fit_pca(digits["train"], 16)
    mean, comps = pca
    assert comps.shape == (64, 16)
    assert torch.allclose(comps.T @ comps, torch.eye(16, dtype=torch.float64), atol=1e-10)
    # the variances along the components are decreasing (they are PCA components)
    var = pca_features(digits["train"], pca).var(0)
    assert (var[1:] <= var[:-1] + 1e-9).all()
    # a shift by c along the first component shows up as exactly c^2 in the PCA Fréchet distance
    test = digits["test"].to(torch.float64)
    c = 0.7
    assert pca_frechet_distance(test + c * comps[:, 0], test, pca) == pytest.approx(c**2, abs=1e-8)
    # a shift orthogonal to all 16 components is invisible
    orth = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    orth = orth - comps @ (comps.T @ orth)
    assert pca_frechet_distance(test + orth, test, pca) == pytest.approx(0.0, abs=1e-8)


def test_coverage_known_answers(digits):
    test = digits["test"]
    assert coverage(test, test) == 1.0  # every test digit is its own sample
    far = test + 10.0
    assert coverage(far, test) == 0.0
    radii = coverage_radii(test, k=1)
    # k = 1: the radius is the nearest-other distance, checked by brute force
    d = pairwise_rmse(test, test) + torch.eye(len(test), dtype=torch.float64) * 1e9
    assert torch.allclose(radii, d.min(1).values)


def test_quality_report_identical_sets_reach_zero(digits):
    test, train = digits["test"], digits["train"]
    rep = quality_report(test, test=test, train=train)
    assert rep["nearest_test_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert rep["coverage"] == 1.0
    assert rep["frechet_pca"] == pytest.approx(0.0, abs=1e-8)
    # test digits against themselves are the memorisation floor exactly
    assert rep["nearest_train_rmse"] == pytest.approx(rep["nearest_train_rmse_floor"])
    assert set(rep) == {"n_samples"} | set(METRIC_NAMES) | {f"{k}_floor" for k in METRIC_NAMES}


def test_quality_report_copies_of_training_digits_are_flagged(digits):
    test, train = digits["test"], digits["train"]
    rep = quality_report(train[:300], test=test, train=train)
    assert rep["nearest_train_rmse"] == 0.0
    assert rep["copy_fraction"] == 1.0
    # the floor: real test digits copy nothing; by definition 5 % fall below the 5 % quantile
    assert 0.03 < rep["copy_fraction_floor"] < 0.07
    assert rep["nearest_train_rmse_floor"] > 0.2


def test_quality_report_pure_noise_scores_badly(digits):
    test, train = digits["test"], digits["train"]
    noise = torch.rand(400, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rep = quality_report(noise, test=test, train=train)
    assert rep["nearest_test_rmse"] > 2 * rep["nearest_test_rmse_floor"]
    assert rep["coverage"] == 0.0 and rep["coverage_floor"] > 0.7
    assert rep["frechet_pca"] > 10 * rep["frechet_pca_floor"]
    assert rep["copy_fraction"] == 0.0
    # real training digits are a fair floor: close to the test set, never an exact copy
    assert 0.25 < rep["nearest_test_rmse_floor"] < 0.45


def test_quality_report_default_data_and_table():
    g = torch.Generator().manual_seed(0)
    rep = quality_report(torch.rand(50, 64, generator=g) * 2 - 1)
    assert rep["n_samples"] == 50
    table = reports_table({"noise": rep})
    assert table.count("\n") == 3 and "floor" in table
    html_table = reports_table({"noise <1>": rep}, fmt="html")
    assert html_table.count("<tr>") == 3 and "noise &lt;1&gt;" in html_table


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pairwise_rmse(torch.zeros(3, 2), torch.zeros(3, 4)), "b must have 2 columns"),
        (lambda: quality_report(torch.zeros(10, 5)), "samples must have 64 columns"),
        (lambda: quality_report(torch.zeros(1, 64)), "at least 2 rows"),
        (lambda: coverage(torch.zeros(3, 2), torch.zeros(3, 2), k=3), "k must be smaller"),
        (lambda: frechet_distance(torch.zeros(1, 2), torch.zeros(5, 2)), "at least 2 rows"),
        (lambda: gaussian_frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2)), "cov_a"),
        (lambda: fit_pca(torch.zeros(10, 4), dims=5), "dims"),
        # issue 10: a non-symmetric "covariance" was accepted; features with no column gave NaN
        (lambda: gaussian_frechet_distance(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.0, 1.0]]), torch.zeros(2),
                                           torch.eye(2)), "cov_a must be symmetric"),
        (lambda: pairwise_rmse(torch.zeros(3, 0), torch.zeros(3, 0)), "at least one column"),
        (lambda: reports_table({}), "reports"),
        (lambda: reports_table({"a": {}}, fmt="latex"), "fmt"),
        (lambda: table_text(["a", "b"], [["1"]]), "every row"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_nan_samples_raise():
    with pytest.raises(ValueError, match="samples must be finite"):
        quality_report(torch.full((4, 64), math.nan))


def test_quality_report_clips_and_counts_diverged_samples(digits):
    test, train = digits["test"], digits["train"]
    wild = test.clone()
    wild[0] = 5.0  # one sample far outside the data range
    wild[1, 3] = 1.9  # slightly outside: clipped, but not diverged
    rep = quality_report(wild, test=test, train=train)
    assert rep["diverged_fraction"] == pytest.approx(1 / len(test))
    assert rep["diverged_fraction_floor"] == 0.0
    # measured after clipping: the wild row became all-white (1.0); the others are unchanged
    clipped = wild.clamp(-1, 1)
    want = nearest_rmse(clipped, test).mean().item()
    assert rep["nearest_test_rmse"] == pytest.approx(want, rel=1e-9)
    raw = quality_report(wild, test=test, train=train, clip=False)
    assert raw["nearest_test_rmse"] > rep["nearest_test_rmse"]


def test_default_data_matches_explicit_data(digits):
    """The cached floors of the default data equal the floors computed from the data passed explicitly."""
    x = torch.rand(60, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    cached = quality_report(x)
    explicit = quality_report(x, test=digits["test"], train=digits["train"])
    assert cached.keys() == explicit.keys()
    for key in cached:
        assert cached[key] == pytest.approx(explicit[key], rel=1e-6, abs=1e-9), key

