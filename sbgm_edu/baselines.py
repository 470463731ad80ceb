"""Classical density models of the digits, the yardsticks of a score model's bits/dim.

Chapter "Other SDEs and exact likelihood" (book/ch11_likelihood.ipynb) compares the score models
with four classical models, all measured with the same uniform dequantisation (bin width 2/16)
and the same bits/dim code (`sbgm_edu.likelihood.bits_per_dim`, eq. (ch10-bpd)) as the score
models:

- `uniform_log_prob`: the uniform density on the box of the 17 grey levels, log2 17 bits/dim;
- a full-covariance Gaussian (maximum likelihood mean and covariance);
- a Gaussian mixture with full covariances, its number of components K chosen on the
  validation split (expectation-maximisation, scikit-learn's `GaussianMixture`);
- a Gaussian kernel density estimate (KDE) on the training digits, its bandwidth chosen on the
  validation split (scikit-learn's `KernelDensity`).

Every model is fitted on dequantised *training* digits only (`dequantized_split`: a fixed number
of dequantisation draws per digit, seeded), selected on dequantised validation digits, and
scored on dequantised test digits: the same continuous problem the score models solve. Each
returns ln p in nats per digit, so `bits_per_dim` and `mean_and_standard_error` turn any of
them into the numbers of the chapter's table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from sbgm_edu._checks import check_positive_int, check_tensor
from sbgm_edu.data import load_digits
from sbgm_edu.likelihood import DIGITS_BIN_WIDTH, bits_per_dim, dequantize

DIGITS_LEVELS = 17
"""Number of grey levels of the 8x8 digits (0, ..., 16)."""

LogProb = Callable[[torch.Tensor], torch.Tensor]
"""ln p(y) in nats for y of shape (N, D) -> (N,)."""


def dequantized_split(split: str, draws: int = 1, seed: int = 0) -> torch.Tensor:
    """The digits of `split` ("train", "val", "test"), each dequantised `draws` times: (draws * N, 64), float64.

    y = x + w u with u ~ U(-1/2, 1/2)^64 and w = 2/16 (`sbgm_edu.likelihood.dequantize`), draws
    stacked one after the other, from a generator seeded with `seed`.
    """
    check_positive_int(draws, "draws")
    x = load_digits(split).double()
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([dequantize(x, DIGITS_BIN_WIDTH, generator) for _ in range(draws)])


def mean_and_standard_error(values: torch.Tensor) -> tuple[float, float]:
    """The mean of `values` (N,) and its standard error std / sqrt(N) (unbiased std), as floats."""
    check_tensor(values, "values", ndim=1)
    if values.shape[0] < 2:
        raise ValueError(f"values must hold at least 2 entries for a standard error, got {values.shape[0]}")
    return values.mean().item(), values.std().item() / math.sqrt(values.shape[0])


def uniform_log_prob(y: torch.Tensor, levels: int = DIGITS_LEVELS, bin_width: float = DIGITS_BIN_WIDTH) -> torch.Tensor:
    """ln p(y) of the uniform density on the box of `levels` bins of width w per coordinate: (N, D) -> (N,).

    Inside the box [-1 - w/2, 1 + w/2]^D (the bins of the levels 2k/16 - 1) p = (levels w)^-D, so
    bits/dim = log2(levels) by eq. (ch10-bpd); outside it ln p = -inf (no point of the data is there).
    """
    check_tensor(y, "y", ndim=2)
    check_positive_int(levels, "levels")
    half_width = (levels - 1) * bin_width / 2 + bin_width / 2
    inside = (y.abs() <= half_width).all(dim=1)
    value = -y.shape[1] * math.log(levels * bin_width)
    return torch.where(inside, torch.full_like(y[:, 0], value), torch.full_like(y[:, 0], -math.inf))


def fit_gaussian_mixture(y_train: torch.Tensor, components: int, seed: int = 0, restarts: int = 5) -> GaussianMixture:
    """Maximum likelihood Gaussian mixture with `components` full covariances, fitted to y_train (N, D) by EM.

    K = 1 is the full-covariance Gaussian: its mean and covariance are the sample mean and the
    (biased) sample covariance. scikit-learn adds 1e-6 to the diagonal of each covariance; EM is
    started from k-means, `restarts` times (the best fit is kept), seeded by `seed`.
    """
    check_tensor(y_train, "y_train", ndim=2)
    check_positive_int(components, "components")
    check_positive_int(restarts, "restarts")
    model = GaussianMixture(components, covariance_type="full", n_init=restarts, random_state=seed, max_iter=500)
    return model.fit(y_train.double().numpy())


def sklearn_log_prob(model: GaussianMixture | KernelDensity) -> LogProb:
    """ln p of a fitted scikit-learn density (`score_samples`) as a torch function (N, D) -> (N,), nats."""

    def log_prob(y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=2)
        return torch.from_numpy(np.asarray(model.score_samples(y.double().numpy()), dtype=np.float64))

    return log_prob


def select_gaussian_mixture(
    y_train: torch.Tensor, y_val: torch.Tensor, components: Sequence[int] = tuple(range(1, 11)), seed: int = 0,
    restarts: int = 5,
) -> tuple[GaussianMixture, dict[int, float]]:
    """The mixture with the best validation bits/dim among `components`; also {K: validation bits/dim}.

    Fitted on y_train only (`fit_gaussian_mixture`); y_val (dequantised validation digits) only
    chooses K.
    """
    check_tensor(y_val, "y_val", ndim=2)
    scores, models = {}, {}
    for k in components:
        models[k] = fit_gaussian_mixture(y_train, k, seed, restarts)
        scores[k] = bits_per_dim(sklearn_log_prob(models[k])(y_val), y_val.shape[1]).mean().item()
    best = min(scores, key=scores.get)
    return models[best], scores


def select_kde(
    y_train: torch.Tensor, y_val: torch.Tensor, bandwidths: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
) -> tuple[KernelDensity, dict[float, float]]:
    """The Gaussian KDE on y_train with the best validation bits/dim among `bandwidths`; also the scores.

    p(y) = mean_i N(y; y_i, h^2 I) over the training points y_i, with bandwidth h.
    """
    check_tensor(y_train, "y_train", ndim=2)
    check_tensor(y_val, "y_val", ndim=2)
    scores, models = {}, {}
    for h in bandwidths:
        if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
            raise ValueError(f"bandwidths must be floats > 0, got {h!r}")
        models[h] = KernelDensity(bandwidth=float(h)).fit(y_train.double().numpy())
        scores[h] = bits_per_dim(sklearn_log_prob(models[h])(y_val), y_val.shape[1]).mean().item()
    best = min(scores, key=scores.get)
    return models[best], scores


def classical_baselines(
    y_train: torch.Tensor, y_val: torch.Tensor, components: Sequence[int] = tuple(range(1, 11)), restarts: int = 5
) -> tuple[dict[str, LogProb], dict[str, dict]]:
    """The four yardsticks, fitted on y_train and selected on y_val: ({name: ln p}, {name: selection scores}).

    Names: "uniform (17 levels)", "Gaussian, full covariance", "Gaussian mixture (K = k)",
    "KDE (h = h)"; the selection scores are the validation bits/dim of each candidate K (among
    `components`, EM with `restarts` starts each) or h.
    """
    mixture, mixture_scores = select_gaussian_mixture(y_train, y_val, components, restarts=restarts)
    gaussian = fit_gaussian_mixture(y_train, 1, restarts=restarts)
    kde, kde_scores = select_kde(y_train, y_val)
    models = {
        "uniform (17 levels)": uniform_log_prob,
        "Gaussian, full covariance": sklearn_log_prob(gaussian),
        f"Gaussian mixture (K = {mixture.n_components})": sklearn_log_prob(mixture),
        f"KDE (h = {kde.bandwidth:g})": sklearn_log_prob(kde),
    }
    return models, {"mixture": mixture_scores, "kde": kde_scores}


__all__ = [
    "DIGITS_LEVELS",
    "classical_baselines",
    "dequantized_split",
    "fit_gaussian_mixture",
    "mean_and_standard_error",
    "select_gaussian_mixture",
    "select_kde",
    "sklearn_log_prob",
    "uniform_log_prob",
]
