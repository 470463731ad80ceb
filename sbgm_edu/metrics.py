"""Quality of generated digits, measured against held-out test digits and next to a real-data floor.

Chapters "Sampling" (book/ch07_sampling.ipynb) and "Why the first attempt fails"
(book/ch08_first_attempt.ipynb). Every measure compares a set of samples (N, 64) in [-1, 1]
with the 447 test digits that no model saw. Alone, a number such as "RMSE 0.3" says little;
so `quality_report` also computes each measure for REAL digits: n training digits measured
against the same test digits. That is the floor a perfect generator would reach (it is
what real, unseen data score).

Distances are root-mean-square errors over the 64 pixels, RMSE(a, b) = |a - b| / sqrt(64),
in the units of the data (pixels in [-1, 1]).

- `nearest_rmse(x, reference)`: RMSE of each row of x to its nearest reference row.
- precision-like: mean RMSE of a sample to its nearest test digit (does each sample
  look like SOME real digit?).
- `coverage` (recall-like; Naeem et al. 2020): the fraction of test digits that have a
  sample inside their own neighbourhood. The radius of test digit j is its RMSE to its
  k-th nearest other test digit (k = 5): a radius chosen from real data only, which
  adapts to dense (many similar "1"s) and sparse regions. Does the generator cover all
  the kinds of digits?
- `frechet_distance` in a fixed feature space: the first 16 principal components of
  the training digits (`pca_features`). The distance between the Gaussians fitted to the
  two feature sets, |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2})
  (Fréchet distance, as in FID; Heusel et al. 2017).
- range: samples are clipped to the data range [-1, 1] before they are measured (as for
  display); `diverged_fraction` counts the samples that had a pixel beyond +-2.
- memorisation: the RMSE of each sample to its nearest TRAINING digit, against the same
  for real test digits, and the `copy_fraction`: the share of samples closer to a training
  digit than 95 % of real test digits are (5 % for real data, by construction; near 1 for
  a model that copies its training set).
"""

from __future__ import annotations

import html
import math
from functools import lru_cache

import torch

from sbgm_edu._checks import check_choice, check_gaussians, check_nonempty, check_positive_int, check_tensor

COVERAGE_K = 5
"""k of the k-nearest-neighbour radius of `coverage` (Naeem et al. 2020 use k = 5)."""

PCA_DIMS = 16
"""Number of principal components of the feature space of `frechet_distance`."""

DIVERGED_LEVEL = 2.0
"""A sample with a pixel beyond +-DIVERGED_LEVEL (the data lie in [-1, 1]) counts as diverged."""

TABLE_FORMATS = ("markdown", "html")
"""The formats of `table_text` and `reports_table`."""

COPY_QUANTILE = 0.05
"""A sample counts as a copy when it is closer to a training digit than this quantile of real test digits."""


def _as_float64(x: torch.Tensor, name: str, dim: int | None = None) -> torch.Tensor:
    check_nonempty(check_tensor(x, name, ndim=2), name)
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns like the reference data, got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def _rmse_matrix(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> torch.Tensor:
    """`pairwise_rmse` with the caller's argument names in its error messages."""
    a = _as_float64(a, names[0])
    b = _as_float64(b, names[1], dim=a.shape[1])
    return torch.cdist(a, b) / math.sqrt(a.shape[1])


def pairwise_rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """RMSE between every row of a (N, D) and every row of b (M, D): shape (N, M), |a_i - b_j| / sqrt(D)."""
    return _rmse_matrix(a, b, ("a", "b"))


def nearest_rmse(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """RMSE of each row of x (N, D) to its nearest row of `reference` (M, D): shape (N,)."""
    return _rmse_matrix(x, reference, ("x", "reference")).min(dim=1).values


def coverage_radii(reference: torch.Tensor, k: int = COVERAGE_K) -> torch.Tensor:
    """The radius of each reference row: its RMSE to its k-th nearest OTHER reference row, shape (M,)."""
    check_positive_int(k, "k")
    d = _rmse_matrix(reference, reference, ("reference", "reference"))
    if k >= d.shape[0]:
        raise ValueError(f"k must be smaller than the number of reference rows {d.shape[0]}, got {k}")
    # column 0 of the sorted distances is the row itself (distance 0)
    return d.sort(dim=1).values[:, k]


def coverage(samples: torch.Tensor, reference: torch.Tensor, k: int = COVERAGE_K) -> float:
    """Fraction of reference rows that have at least one sample within their k-NN radius (Naeem et al. 2020).

    Args:
        samples: generated points, shape (N, D).
        reference: real held-out points, shape (M, D).
        k: the radius of reference row j is its RMSE to its k-th nearest other reference row.

    Returns:
        A float in [0, 1]: 1 when every test digit has a sample close to it.
    """
    radii = coverage_radii(reference, k)
    d = _rmse_matrix(samples, reference, ("samples", "reference"))  # (N, M)
    return float((d.min(dim=0).values <= radii).to(torch.float64).mean())


@lru_cache(maxsize=1)
def _default_pca() -> tuple[torch.Tensor, torch.Tensor]:
    from sbgm_edu.data import load_digits

    return fit_pca(load_digits("train"), PCA_DIMS)


def fit_pca(data: torch.Tensor, dims: int = PCA_DIMS) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of `data` (M, D): returns (mean (D,), components (D, dims)), float64.

    The components are the top right-singular vectors of the centred data (deterministic SVD).
    """
    data = _as_float64(data, "data")
    check_positive_int(dims, "dims")
    if dims > data.shape[1]:
        raise ValueError(f"dims must be <= the data dimension {data.shape[1]}, got {dims}")
    mean = data.mean(dim=0)
    _, _, vh = torch.linalg.svd(data - mean, full_matrices=False)
    return mean, vh[:dims].T


def pca_features(x: torch.Tensor, pca: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Coordinates of x (N, 64) on the principal components: (N, dims), float64.

    Args:
        x: points, shape (N, D).
        pca: (mean, components) from `fit_pca`; default: 16 components of the training digits
            (computed once per session, in milliseconds, from `sbgm_edu.data.load_digits("train")`).
    """
    mean, components = pca if pca is not None else _default_pca()
    x = _as_float64(x, "x", dim=mean.shape[0])
    return (x - mean) @ components


def _sqrtm_psd(c: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(c)
    return (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.T


def gaussian_frechet_distance(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mean_a, cov_a) and N(mean_b, cov_b).

    |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2}); the trace term equals the
    usual tr((C_a C_b)^{1/2}) form and is computed with symmetric eigendecompositions (float64).

    Args:
        mean_a, mean_b: shape (F,).
        cov_a, cov_b: symmetric positive semi-definite, shape (F, F).

    Returns:
        A float >= 0 (squared units of the features).
    """
    names = ("mean_a", "cov_a", "mean_b", "cov_b")
    mean_a, cov_a, mean_b, cov_b = check_gaussians(mean_a, cov_a, mean_b, cov_b, names)
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0.0).sqrt().sum()
    value = ((mean_a - mean_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return max(float(value), 0.0)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) and (M, F) (sample mean, covariance)."""
    a = _as_float64(features_a, "features_a")
    b = _as_float64(features_b, "features_b", dim=a.shape[1])
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("features_a and features_b need at least 2 rows each to estimate a covariance")
    return gaussian_frechet_distance(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                                     b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))


def pca_frechet_distance(samples: torch.Tensor, reference: torch.Tensor, pca=None) -> float:
    """Fréchet distance of samples (N, 64) to reference (M, 64) in the 16-dim PCA space of the training digits."""
    return frechet_distance(pca_features(samples, pca), pca_features(reference, pca))


def _distribution_measures(x: torch.Tensor, test: torch.Tensor, pca, k: int) -> dict[str, float]:
    return {
        "nearest_test_rmse": float(nearest_rmse(x, test).mean()),
        "coverage": coverage(x, test, k),
        "frechet_pca": pca_frechet_distance(x, test, pca),
    }


METRIC_NAMES: dict[str, str] = {
    "nearest_test_rmse": "RMSE to nearest test digit (lower is better)",
    "coverage": "coverage of test digits (higher is better)",
    "frechet_pca": "Fréchet distance, 16-dim PCA (lower is better)",
    "nearest_train_rmse": "RMSE to nearest training digit (memorisation if far below the floor)",
    "copy_fraction": "fraction of copies of training digits (floor 0.05)",
    "diverged_fraction": "fraction of samples with a pixel beyond +-2 before clipping (0 for real digits)",
}
"""The measures of `quality_report`, with a one-line description for tables."""


def quality_report(
    samples: torch.Tensor,
    test: torch.Tensor | None = None,
    train: torch.Tensor | None = None,
    k: int = COVERAGE_K,
    floor_seed: int = 0,
    clip: bool = True,
) -> dict[str, float]:
    """All quality measures of `samples`, each next to its real-data floor.

    We measure what we show: with `clip` (the default) the samples are first clipped to the
    data range [-1, 1], as an image display does. Samples that left the range far behind are
    counted instead: `diverged_fraction` is the share of samples with a pixel beyond
    +-DIVERGED_LEVEL (= 2) before clipping (0 for real digits), so a sampler that diverges for
    a few samples shows up there instead of swamping every other measure.

    The floor of each measure is the same measure for n real training digits in place of
    the n samples (a random subset, drawn with `floor_seed`, when n < len(train); all of them
    when n >= len(train)); coverage and the Fréchet distance depend on n, so compare sets of
    equal size. The memorisation floor is the RMSE of the real TEST digits to their nearest
    training digit (a real digit the model never saw), and the copy threshold is its
    COPY_QUANTILE quantile.

    Args:
        samples: generated digits, shape (N, 64), in [-1, 1] pixel units (N >= 2).
        test: held-out digits (default `sbgm_edu.data.load_digits("test")`, 447 rows).
        train: training digits (default `load_digits("train")`, 1000 rows); also fits the PCA.
        k: neighbourhood size of `coverage`.
        floor_seed: seed of the training subset used for the floors.
        clip: clip the samples to [-1, 1] before measuring (False measures them raw).

    Returns:
        A dict with keys `n_samples` and, for each name in METRIC_NAMES, the value and
        `<name>_floor`.
    """
    defaults = test is None and train is None
    test, train = _reference_sets(test, train)
    samples = _as_float64(samples, "samples", dim=train.shape[1])
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 rows, got {n}")
    check_positive_int(k, "k")
    check_positive_int(floor_seed, "floor_seed", minimum=0)
    diverged = float((samples.abs().amax(dim=1) > DIVERGED_LEVEL).to(torch.float64).mean())
    if clip:
        samples = samples.clamp(-1.0, 1.0)
    # the floors depend only on the data, n, k and the seed: computed once per session for the default data
    floor = _default_floors(n, k, floor_seed) if defaults else _floors(test, train, n, k, floor_seed)
    pca = _default_pca() if defaults else fit_pca(train, min(PCA_DIMS, train.shape[1]))

    model = _distribution_measures(samples, test, pca, k)
    to_train = nearest_rmse(samples, train)
    model["nearest_train_rmse"] = float(to_train.mean())
    model["copy_fraction"] = float((to_train < floor["copy_threshold"]).to(torch.float64).mean())
    model["diverged_fraction"] = diverged
    report: dict[str, float] = {"n_samples": n}
    for name in METRIC_NAMES:
        report[name] = model[name]
        report[f"{name}_floor"] = floor[name]
    return report


def _reference_sets(test: torch.Tensor | None, train: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    from sbgm_edu.data import load_digits

    train = _as_float64(load_digits("train") if train is None else train, "train")
    test = _as_float64(load_digits("test") if test is None else test, "test", dim=train.shape[1])
    return test, train


def _floors(test: torch.Tensor, train: torch.Tensor, n: int, k: int, floor_seed: int,
            pca: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """Every measure for n real training digits (the memorisation ones for the test digits), and the copy threshold."""
    pca = pca if pca is not None else fit_pca(train, min(PCA_DIMS, train.shape[1]))
    if n < train.shape[0]:
        index = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(floor_seed))[:n]
        real = train[index]
    else:
        real = train
    floor = _distribution_measures(real, test, pca, k)
    # memorisation floor: unseen real digits (the test set) against the training set
    test_to_train = nearest_rmse(test, train)
    floor["copy_threshold"] = float(torch.quantile(test_to_train, COPY_QUANTILE))
    floor["nearest_train_rmse"] = float(test_to_train.mean())
    floor["copy_fraction"] = float((test_to_train < floor["copy_threshold"]).to(torch.float64).mean())
    floor["diverged_fraction"] = float((real.abs().amax(dim=1) > DIVERGED_LEVEL).to(torch.float64).mean())
    return floor


@lru_cache(maxsize=32)
def _default_floors(n: int, k: int, floor_seed: int) -> dict[str, float]:
    test, train = _reference_sets(None, None)
    return _floors(test, train, n, k, floor_seed, pca=_default_pca())


def reports_table(reports: dict[str, dict[str, float]], digits: int = 3, fmt: str = "markdown") -> str:
    """A table of several `quality_report`s (one row each) with a final row of floors.

    Args:
        reports: {row label: quality_report(...)}; the floors are taken from the first report.
        digits: decimals shown.
        fmt: "markdown" (text) or "html" (a <table>; display it with IPython.display.HTML, which
            renders in Jupyter and in the built book alike).

    Returns:
        The table as text.
    """
    if not reports:
        raise ValueError("reports must hold at least one report")
    check_choice(fmt, "fmt", TABLE_FORMATS)
    names = list(METRIC_NAMES)
    header = ["", "RMSE → test ↓", "coverage ↑", "Fréchet (PCA) ↓", "RMSE → train", "copies", "diverged"]
    first = next(iter(reports.values()))
    rows = [[label] + [f"{rep[n]:.{digits}f}" for n in names] for label, rep in reports.items()]
    rows.append(["real digits (floor)"] + [f"{first[n + '_floor']:.{digits}f}" for n in names])
    return table_text(header, rows, fmt)


def table_text(header: list[str], rows: list[list[str]], fmt: str = "markdown") -> str:
    """A plain table as Markdown or HTML text: first column left-aligned, the others right-aligned.

    Args:
        header: the column titles.
        rows: the cells, one list of strings per row (as many as header).
        fmt: "markdown" or "html".
    """
    check_choice(fmt, "fmt", TABLE_FORMATS)
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row must have {len(header)} cells like the header")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    esc = html.escape

    def cells(row: list[str], tag: str) -> str:
        return "".join(
            f'<{tag} style="text-align:{"left" if i == 0 else "right"}">{esc(c)}</{tag}>' for i, c in enumerate(row)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f'<table class="table"><thead><tr>{cells(header, "th")}</tr></thead><tbody>{body}</tbody></table>'
