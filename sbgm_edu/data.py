"""Data sets of the book: scikit-learn's 8x8 digits and a small 2-D Gaussian mixture.

Nothing is downloaded: the digits ship with scikit-learn (1797 images of 8x8
pixels, each pixel an integer 0..16). Chapter "Training a score model"
(book/ch06_training.ipynb) trains on them.

The splits follow the companion notebook `sbgms/sbgm_example.ipynb` of
J. M. Tomczak's `intro_dgm` repository: the first 1000 images for training,
the next 350 for validation, the remaining 447 for testing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from sbgm_edu._checks import check_positive_int

DIGITS_SPLITS: dict[str, slice] = {
    "train": slice(0, 1000),
    "val": slice(1000, 1350),
    "test": slice(1350, None),
}
"""Row ranges of sklearn's digits for each split (as in the original notebook)."""

DIGITS_PIXEL_MAX = 16.0
"""Largest pixel value of sklearn's digits; pixels are integers 0..16."""

DIGITS_DATA_MAP = "2x/16-1"
"""The map from pixels x in 0..16 onto [-1, 1]. Stored in checkpoints (see `sbgm_edu.train`)."""


def pixels_to_unit_interval(pixels: torch.Tensor) -> torch.Tensor:
    """Map digit pixels 0..16 onto [-1, 1] with x -> 2x/16 - 1 (0 -> -1, 16 -> +1).

    The original notebook uses 2x/17 - 1, which sends the largest pixel 16 to
    15/17 ~ 0.88, so the data never reach +1; we use the exact range.
    """
    return 2.0 * pixels / DIGITS_PIXEL_MAX - 1.0


def unit_interval_to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `pixels_to_unit_interval`: [-1, 1] -> 0..16 (not rounded, not clipped)."""
    return (x + 1.0) * DIGITS_PIXEL_MAX / 2.0


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64), labels (1797,)) from scikit-learn, read once per session."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    return bunch.data, bunch.target


def load_digits(split: str) -> torch.Tensor:
    """Load one split of scikit-learn's 8x8 digits as a float32 tensor of shape (N, 64) in [-1, 1].

    Args:
        split: "train" (N = 1000), "val" (N = 350) or "test" (N = 447).

    Returns:
        The images flattened row by row (pixel (i, j) is column 8 i + j),
        mapped by 2x/16 - 1 (see `pixels_to_unit_interval`).
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {sorted(DIGITS_SPLITS)}, got {split!r}")
    pixels = torch.tensor(_sklearn_digits()[0][DIGITS_SPLITS[split]], dtype=torch.float32)
    return pixels_to_unit_interval(pixels)


def load_digit_labels(split: str) -> torch.Tensor:
    """The class labels 0..9 of the images `load_digits(split)` returns, an int64 tensor of shape (N,)."""
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {sorted(DIGITS_SPLITS)}, got {split!r}")
    return torch.tensor(_sklearn_digits()[1][DIGITS_SPLITS[split]], dtype=torch.int64)


def toy_mixture_params() -> dict[str, torch.Tensor]:
    """The parameters of the book's 2-D toy distribution: three isotropic Gaussians of unequal weight.

    Returns:
        A dict with "means" (3, 2), "stds" (3,) and "weights" (3,), float32,
        ready for `sbgm_edu.scores.mixture_score(x, **params)` or
        `diffused_mixture_score(sde, **params)`.
    """
    return {
        "means": torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]]),
        "stds": torch.tensor([0.3, 0.5, 0.4]),
        "weights": torch.tensor([0.5, 0.3, 0.2]),
    }


def toy_mixture(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw n points from the 2-D toy mixture p(x) = sum_k w_k N(mu_k, s_k^2 I), eq. (mixture).

    First a component k ~ Categorical(w) per point, then x = mu_k + s_k z with
    z ~ N(0, I), both from `generator`.

    Args:
        n: number of points (>= 1).
        generator: a torch.Generator for reproducible draws.

    Returns:
        (x, params): x of shape (n, 2) float32, and the parameters of `toy_mixture_params`.
    """
    check_positive_int(n, "n")
    params = toy_mixture_params()
    k = torch.multinomial(params["weights"], n, replacement=True, generator=generator)
    z = torch.randn(n, 2, generator=generator)
    x = params["means"][k] + params["stds"][k, None] * z
    return x, params
