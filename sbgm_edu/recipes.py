"""Two training recipes, written down once: the original notebook's setup and the book's.

- `ORIGINAL`: the setup of the companion notebook `sbgms/sbgm_example.ipynb` of
  J. M. Tomczak's `intro_dgm` (OriginalScoreNet, sigma = 1.01, its loss weight,
  Adamax, batch 32, data 2x/17 - 1, up to 1000 epochs with early stopping after
  50 epochs without improvement, and its sampler).
- `BOOK`: the recipe of the shipped checkpoint (`sbgm_edu.train.load_pretrained`):
  ScoreNet, sigma = 25, lambda_t = sigma_t^2, Adam with a cosine schedule, EMA,
  data 2x/16 - 1, and the reverse-time Euler sampler of eq. (ve-euler-sampler).

`scripts/train_pretrained.py` trains `BOOK` into the shipped checkpoint; the
benchmarks (`python -m benchmarks`) train both and compare them; chapter 8
("Why the first attempt fails") walks from one to the other.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from sbgm_edu._checks import check_positive_int
from sbgm_edu.data import ORIGINAL_DATA_MAP, from_original_map, load_digits, to_original_map
from sbgm_edu.metrics import DIVERGED_LEVEL, quality_report
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.sampling import original_sample, sample
from sbgm_edu.sde import VESDE
from sbgm_edu.train import original_loss_weight, train

ORIGINAL: dict[str, Any] = {
    "name": "original",
    "net": "original",
    "net_kwargs": {"hidden": 512},
    "sigma": 1.01,
    "data_map": ORIGINAL_DATA_MAP,
    "loss_weight": "original",
    "training": {"epochs": 1000, "batch_size": 32, "lr": 1e-3, "patience": 50, "ema_decay": None,
                 "optimizer": "adamax", "lr_schedule": "constant", "seed": 0},
    "init_seed": 0,
    "sampler": "original",
}
"""The original notebook's setup (its hyperparameter cell: T = 20, sigma = 1.01, lr 1e-3, 1000 epochs,
patience 50, batch 32)."""

BOOK: dict[str, Any] = {
    "name": "book",
    "net": "scorenet",
    "net_kwargs": {"hidden": 512, "depth": 3, "fourier_features": 8},
    "sigma": 25.0,
    "data_map": "2x/16-1",
    "loss_weight": "book",
    "training": {"epochs": 600, "batch_size": 128, "lr": 2e-3, "patience": 1000, "ema_decay": 0.999,
                 "lr_schedule": "cosine", "val_steps": 20, "val_repeats": 1, "seed": 0},
    "init_seed": 0,
    "sampler": "euler",
}
"""The recipe of the shipped checkpoint sbgm_edu/checkpoints/scorenet_digits_ve25.pt."""

RECIPES = {"original": ORIGINAL, "book": BOOK}


def recipe_data(recipe: dict[str, Any], split: str) -> torch.Tensor:
    """One split of the digits in the recipe's data map, shape (N, 64)."""
    x = load_digits(split)
    return to_original_map(x) if recipe["data_map"] == ORIGINAL_DATA_MAP else x


def build_model(recipe: dict[str, Any]) -> tuple[nn.Module, VESDE]:
    """A freshly initialised network (seeded by recipe["init_seed"]) and the recipe's VE SDE."""
    sde = VESDE(recipe["sigma"])
    torch.manual_seed(recipe["init_seed"])
    if recipe["net"] == "original":
        return OriginalScoreNet(64, **recipe["net_kwargs"]), sde
    x_train = recipe_data(recipe, "train")
    data_mean = x_train.mean(dim=0)
    data_std = float(((x_train - data_mean) ** 2).mean().sqrt())
    return ScoreNet(sde, dim=64, data_std=data_std, data_mean=data_mean, **recipe["net_kwargs"]), sde


def train_recipe(
    recipe: dict[str, Any], epochs: int | None = None, progress: bool = False
) -> tuple[nn.Module, VESDE, dict[str, Any]]:
    """Train the recipe's model on the digits train split, early-stopping on the val split.

    Args:
        recipe: `ORIGINAL` or `BOOK` (or a dict of the same form).
        epochs: override the recipe's maximum number of epochs (e.g. for a quick check).
        progress: show a tqdm progress bar.

    Returns:
        (model with its best weights, sde, history of `sbgm_edu.train.train` plus "seconds_total").
    """
    training = dict(recipe["training"])
    if epochs is not None:
        training["epochs"] = check_positive_int(epochs, "epochs")
    model, sde = build_model(recipe)
    weight = original_loss_weight(sde) if recipe["loss_weight"] == "original" else None
    start = time.perf_counter()
    history = train(model, sde, recipe_data(recipe, "train"), recipe_data(recipe, "val"),
                    loss_weight=weight, progress=progress, **training)
    history["seconds_total"] = time.perf_counter() - start
    return model, sde, history


def sample_recipe(
    model: nn.Module, sde: VESDE, recipe: dict[str, Any], n: int, steps: int = 20,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n digits with the recipe's sampler; return (raw, shown), both in the book's pixel space.

    `raw` is the sampler's output before any squashing; `shown` is what the recipe shows a reader:
    for the original sampler its final tanh (which hides samples that left [-1, 1]), else raw.
    For the original sampler `steps` is its T, the number of grid points (T - 1 steps).
    """
    if recipe["sampler"] == "original":
        raw = original_sample(model, sde, n, 64, T=steps, generator=generator, apply_tanh=False)
        shown = torch.tanh(raw)
    else:
        raw = sample(model, sde, n, 64, steps, generator=generator)
        shown = raw
    if recipe["data_map"] == ORIGINAL_DATA_MAP:
        raw, shown = from_original_map(raw), from_original_map(shown)
    return raw, shown


def measure_recipe(
    model: nn.Module, sde: VESDE, recipe: dict[str, Any], n: int = 1000, steps: int = 20, seed: int = 1234
) -> tuple[dict[str, float], torch.Tensor]:
    """`sbgm_edu.metrics.quality_report` of what the recipe shows a reader, from n samples at `steps`.

    The report measures the shown samples (`sample_recipe`), but counts `diverged_fraction` on the
    raw ones, so that the original sampler's final tanh cannot hide samples that ran away.

    Returns:
        (report, shown samples clipped to [-1, 1], shape (n, 64)).
    """
    raw, shown = sample_recipe(model, sde, recipe, n, steps, generator=torch.Generator().manual_seed(seed))
    report = quality_report(shown)
    report["diverged_fraction"] = float((raw.abs().amax(dim=1) > DIVERGED_LEVEL).to(torch.float64).mean())
    return report, shown.clamp(-1.0, 1.0)
