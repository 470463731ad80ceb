"""The classical density models of sbgm_edu.baselines against closed forms (scipy) and known answers."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sbgm_edu.baselines import (
    dequantized_split,
    fit_gaussian_mixture,
    mean_and_standard_error,
    select_gaussian_mixture,
    select_kde,
    sklearn_log_prob,
    uniform_log_prob,
)
from sbgm_edu.likelihood import DIGITS_BIN_WIDTH, bits_per_dim

F64 = torch.float64


def test_uniform_model_has_log2_17_bits_per_dim_and_is_normalised():
    y = dequantized_split("test", seed=3)
    assert torch.allclose(bits_per_dim(uniform_log_prob(y), 64), torch.full((y.shape[0],), math.log2(17), dtype=F64))
    # normalised: its box has side 17 w = 2 + w, so p = 1 / (17 w)^D inside it
    assert abs(17 * DIGITS_BIN_WIDTH - (2 + DIGITS_BIN_WIDTH)) < 1e-12
    outside = torch.full((1, 64), 1.2, dtype=F64)
    assert uniform_log_prob(outside).item() == -math.inf


def test_dequantized_split_stays_in_the_bins_and_draws_differ():
    x = dequantized_split("val", draws=2, seed=0)
    levels = torch.round((x + 1) / DIGITS_BIN_WIDTH)
    assert (x - (levels * DIGITS_BIN_WIDTH - 1)).abs().max() <= DIGITS_BIN_WIDTH / 2
    assert torch.equal(levels[:350], levels[350:])  # the same digits, twice
    assert not torch.equal(x[:350], x[350:])


def test_single_gaussian_is_the_maximum_likelihood_gaussian():
    gen = torch.Generator().manual_seed(0)
    cov_root = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 0.3]], dtype=F64)
    y = torch.randn(500, 3, generator=gen, dtype=F64) @ cov_root.T + torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    mean = y.mean(0).numpy()
    cov = np.cov(y.numpy().T, bias=True) + 1e-6 * np.eye(3)  # scikit-learn's reg_covar
    got = sklearn_log_prob(fit_gaussian_mixture(y, 1))(y[:10])
    want = multivariate_normal(mean, cov).logpdf(y[:10].numpy())
    assert np.allclose(got.numpy(), want, atol=1e-8)


def test_mixture_selection_finds_two_separated_clusters():
    gen = torch.Generator().manual_seed(1)

    def draw(n):
        centre = torch.tensor([[4.0, 0.0], [-4.0, 0.0]], dtype=F64)[torch.randint(0, 2, (n,), generator=gen)]
        return centre + torch.randn(n, 2, generator=gen, dtype=F64)

    model, scores = select_gaussian_mixture(draw(400), draw(200), components=(1, 2, 3, 4))
    assert model.n_components in (2, 3)  # 3 may tie 2 on held-out data; 1 and 4 must lose
    assert scores[2] < scores[1] - 0.3


def test_kde_is_the_average_of_gaussian_kernels():
    gen = torch.Generator().manual_seed(2)
    y_train, y = torch.randn(30, 2, generator=gen, dtype=F64), torch.randn(5, 2, generator=gen, dtype=F64)
    model, scores = select_kde(y_train, y, bandwidths=(0.5,))
    want = np.log(np.mean([multivariate_normal(c, 0.25 * np.eye(2)).pdf(y.numpy()) for c in y_train.numpy()], axis=0))
    assert np.allclose(sklearn_log_prob(model)(y).numpy(), want, atol=1e-10)
    assert set(scores) == {0.5}


def test_mean_and_standard_error_match_numpy():
    values = torch.tensor([1.0, 2.0, 4.0, 7.0], dtype=F64)
    mean, se = mean_and_standard_error(values)
    assert mean == pytest.approx(3.5)
    assert se == pytest.approx(np.std(values.numpy(), ddof=1) / 2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="values"):
        mean_and_standard_error(torch.ones(1, dtype=F64))
    with pytest.raises(ValueError, match="bandwidths"):
        select_kde(torch.zeros(3, 2, dtype=F64), torch.zeros(2, 2, dtype=F64), bandwidths=(-1.0,))
    with pytest.raises(ValueError, match="components"):
        fit_gaussian_mixture(torch.zeros(3, 2, dtype=F64), 0)
    with pytest.raises(ValueError, match="draws"):
        dequantized_split("train", draws=0)
