"""Tests of sbgm_edu.data: the digits splits and map, and the 2-D toy mixture."""

import pytest
import torch
from sklearn.datasets import load_digits as sklearn_load_digits

from sbgm_edu.data import load_digit_labels, load_digits, toy_mixture, unit_interval_to_pixels


@pytest.mark.parametrize("split, n", [("train", 1000), ("val", 350), ("test", 447)])
def test_digits_shapes_and_range(split, n):
    x = load_digits(split)
    assert x.shape == (n, 64) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert load_digit_labels(split).shape == (n,)


def test_digits_map_and_splits_against_sklearn():
    raw = torch.as_tensor(sklearn_load_digits().data, dtype=torch.float32)  # pixels 0..16
    whole = torch.cat([load_digits("train"), load_digits("val"), load_digits("test")])
    assert whole.shape == raw.shape  # the three splits cover the data set, in order, without overlap
    # 0 -> -1, 8 -> 0, 16 -> +1: the map 2x/16 - 1 (the original used 2x/17 - 1)
    torch.testing.assert_close(whole[raw == 0], torch.full_like(whole[raw == 0], -1.0))
    torch.testing.assert_close(whole[raw == 8], torch.zeros_like(whole[raw == 8]))
    torch.testing.assert_close(whole[raw == 16], torch.ones_like(whole[raw == 16]))
    torch.testing.assert_close(unit_interval_to_pixels(whole), raw)
    assert torch.equal(load_digit_labels("val"), torch.as_tensor(sklearn_load_digits().target[1000:1350]))


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits("validation")
    with pytest.raises(ValueError, match="split"):
        load_digit_labels("all")


def test_toy_mixture_moments_monte_carlo():
    n = 20_000
    x, params = toy_mixture(n, torch.Generator().manual_seed(0))
    assert x.shape == (n, 2)
    w, mu, s = params["weights"], params["means"], params["stds"]
    mean = (w[:, None] * mu).sum(0)
    # per-coordinate variance of the mixture: sum_k w_k (s_k^2 + mu_k^2) - mean^2
    var = (w[:, None] * (s[:, None] ** 2 + mu**2)).sum(0) - mean**2
    standard_error = (var / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * standard_error).all()  # 5 standard errors
    # the variance estimate has standard error about var * sqrt(2 / n) for near-Gaussian tails;
    # a mixture has heavier tails, so allow 10 such units
    assert ((x.var(0) - var).abs() < 10 * var * (2 / n) ** 0.5).all()


def test_toy_mixture_is_reproducible_and_checks_n():
    a, _ = toy_mixture(5, torch.Generator().manual_seed(3))
    b, _ = toy_mixture(5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n must be"):
        toy_mixture(0)
