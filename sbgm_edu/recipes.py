"""Training recipes, written down once as one type: the original notebook's setup and the book's.

A `Recipe` names everything that makes a trained model and its samples: the network, the VE
parameter sigma, the data map, the loss, the training settings of `sbgm_edu.train.train` and
the sampler. Names are looked up in one table each (`NETS`, `DATA_MAPS`, `LOSSES`; samplers:
"original" or any solver of `sbgm_edu.solvers.SOLVERS`), and an unknown name is an error.

- `ORIGINAL`: the setup of the companion notebook `sbgms/sbgm_example.ipynb` of J. M. Tomczak's
  `intro_dgm` (`sbgm_edu.original.NOTEBOOK_SETTINGS`: OriginalScoreNet, sigma = 1.01, its loss
  `original_loss`, Adamax, batch 32, data 2x/17 - 1, up to 1000 epochs with early stopping after
  50 epochs without improvement, and its sampler).
- `BOOK`: the recipe of the shipped checkpoint (`sbgm_edu.checkpoints.load_pretrained()`):
  ScoreNet (hidden 512, Gaussian part fitted to the data), sigma = 25, lambda_t = sigma_t^2,
  Adam with a cosine schedule, EMA, data 2x/16 - 1, and the reverse-time Euler sampler of
  eq. (ve-euler-sampler).

`scripts/train_pretrained.py` trains `BOOK` into the shipped checkpoint; the benchmarks
(`python -m benchmarks`) train both and compare them; `scripts/first_attempt_table.py` walks
from one to the other for chapter 8 ("Why the first attempt fails"), each row a `Recipe`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sbgm_edu import solvers
from sbgm_edu._checks import check_positive_int
from sbgm_edu.data import DIGITS_DATA_MAP, load_digits
from sbgm_edu.losses import proxy_loss_weight
from sbgm_edu.metrics import DIVERGED_LEVEL, quality_report
from sbgm_edu.nets import ScoreNet
from sbgm_edu.original import (
    NOTEBOOK_SETTINGS,
    OriginalScoreNet,
    from_original_map,
    original_loss,
    original_sample,
    to_original_map,
)
from sbgm_edu.sampling import sample
from sbgm_edu.sde import SDE, VESDE
from sbgm_edu.train import train


@dataclass(frozen=True)
class Recipe:
    """How to train one model and sample from it (one row of chapter 8's table).

    Attributes:
        net: "original" (`OriginalScoreNet`) or "scorenet" (`ScoreNet`), a key of `NETS`.
        sigma: the VE parameter (> 1).
        data_map: how pixels 0..16 become inputs: "2x/16-1" (the book) or "2x/17-1" (the original).
        loss: "dsm" (`dsm_loss` with lambda_t = sigma_t^2) or "original" (`original_loss`,
            validated with the original's proxy weight sigma_t^4), a key of `LOSSES`.
        sampler: "original" (`original_sample`, T grid points) or a solver of `sbgm_edu.solvers.SOLVERS`.
        hidden, depth, fourier_features: network sizes (depth and fourier_features: ScoreNet only).
        fit_data: ScoreNet only: its Gaussian part fitted to the training data (mean image and
            rms spread, `ScoreNet.for_data`) if True, else zero mean and data_std 0.5.
        epochs ... seed: the arguments of `sbgm_edu.train.train`.
        init_seed: seeds torch before the network is built.
    """

    net: str
    sigma: float
    data_map: str
    loss: str
    sampler: str
    hidden: int = 512
    depth: int = 3
    fourier_features: int = 8
    fit_data: bool = True
    epochs: int = 600
    batch_size: int = 128
    lr: float = 2e-3
    patience: int = 1000
    ema_decay: float | None = 0.999
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    val_steps: int = 20
    val_repeats: int = 1
    seed: int = 0
    init_seed: int = 0

    def __post_init__(self) -> None:
        for name, table in (("net", NETS), ("data_map", DATA_MAPS), ("loss", LOSSES)):
            if getattr(self, name) not in table:
                raise ValueError(f"{name} must be one of {sorted(table)}, got {getattr(self, name)!r}")
        samplers = ["original", *solvers.SOLVERS]
        if self.sampler not in samplers:
            raise ValueError(f"sampler must be one of {samplers}, got {self.sampler!r}")
        VESDE(self.sigma)  # checks sigma
        for name in ("hidden", "depth", "fourier_features", "epochs", "batch_size", "patience"):
            check_positive_int(getattr(self, name), name)

    def training(self) -> dict[str, Any]:
        """The keyword arguments of `sbgm_edu.train.train` this recipe fixes."""
        names = ("epochs", "batch_size", "lr", "patience", "ema_decay", "optimizer", "lr_schedule",
                 "val_steps", "val_repeats", "seed")
        return {name: getattr(self, name) for name in names}

    def differences(self, other: Recipe) -> dict[str, tuple[Any, Any]]:
        """{field: (this value, other's value)} for every field where the two recipes differ."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (v, theirs[k]) for k, v in mine.items() if v != theirs[k]}


def _build_original(recipe: Recipe, sde: SDE, x_train: torch.Tensor) -> nn.Module:
    return OriginalScoreNet(x_train.shape[1], recipe.hidden)


def _build_scorenet(recipe: Recipe, sde: SDE, x_train: torch.Tensor) -> nn.Module:
    sizes = {"hidden": recipe.hidden, "depth": recipe.depth, "fourier_features": recipe.fourier_features}
    if recipe.fit_data:
        return ScoreNet.for_data(sde, x_train, **sizes)
    return ScoreNet(sde, dim=x_train.shape[1], **sizes)


NETS: dict[str, Callable[[Recipe, SDE, torch.Tensor], nn.Module]] = {
    "original": _build_original,
    "scorenet": _build_scorenet,
}
"""name -> builder(recipe, sde, training data in the recipe's map) of a fresh network."""

DATA_MAPS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    DIGITS_DATA_MAP: (lambda x: x, lambda x: x),
    NOTEBOOK_SETTINGS["data_map"]: (to_original_map, from_original_map),
}
"""name -> (book data -> recipe data, recipe data -> book data)."""

LOSSES: dict[str, Callable[[SDE], dict[str, Any]]] = {
    "dsm": lambda sde: {},
    "original": lambda sde: {"loss": original_loss, "loss_weight": proxy_loss_weight(sde)},
}
"""name -> the loss arguments of `sbgm_edu.train.train` for an SDE."""

ORIGINAL = Recipe(**NOTEBOOK_SETTINGS)
"""The original notebook's setup (`sbgm_edu.original.NOTEBOOK_SETTINGS`)."""

BOOK = Recipe(net="scorenet", sigma=25.0, data_map=DIGITS_DATA_MAP, loss="dsm", sampler="euler")
"""The recipe of the shipped checkpoint sbgm_edu/checkpoints/scorenet_digits_ve25.pt."""

RECIPES = {"original": ORIGINAL, "book": BOOK}


def recipe_data(recipe: Recipe, split: str) -> torch.Tensor:
    """One split of the digits in the recipe's data map, shape (N, 64)."""
    return DATA_MAPS[recipe.data_map][0](load_digits(split))


def build_model(recipe: Recipe) -> tuple[nn.Module, VESDE]:
    """A freshly initialised network (torch seeded by recipe.init_seed) and the recipe's VE SDE."""
    sde = VESDE(recipe.sigma)
    torch.manual_seed(recipe.init_seed)
    return NETS[recipe.net](recipe, sde, recipe_data(recipe, "train")), sde


def train_recipe(
    recipe: Recipe, epochs: int | None = None, progress: bool = False
) -> tuple[nn.Module, VESDE, dict[str, Any]]:
    """Train the recipe's model on the digits train split, early-stopping on the val split.

    Args:
        recipe: `ORIGINAL`, `BOOK` or any `Recipe`.
        epochs: override the recipe's maximum number of epochs (e.g. for a quick check).
        progress: show a tqdm progress bar.

    Returns:
        (model with its best weights, sde, history of `sbgm_edu.train.train` plus "seconds_total").
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a sbgm_edu.recipes.Recipe, got {type(recipe).__name__}")
    training = recipe.training()
    if epochs is not None:
        training["epochs"] = check_positive_int(epochs, "epochs")
    model, sde = build_model(recipe)
    start = time.perf_counter()
    history = train(model, sde, recipe_data(recipe, "train"), recipe_data(recipe, "val"),
                    progress=progress, **LOSSES[recipe.loss](sde), **training)
    history["seconds_total"] = time.perf_counter() - start
    return model, sde, history


def sample_recipe(
    model: nn.Module, sde: VESDE, recipe: Recipe, n: int, steps: int = 20,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n digits with the recipe's sampler; return (raw, shown), both in the book's pixel space.

    `raw` is the sampler's output before any squashing; `shown` is what the recipe shows a reader:
    for the original sampler its final tanh (which hides samples that left [-1, 1]), else raw.
    For the original sampler `steps` is its T, the number of grid points (T - 1 steps).
    """
    if recipe.sampler == "original":
        raw = original_sample(model, sde, n, 64, T=steps, generator=generator, apply_tanh=False)
        shown = torch.tanh(raw)
    else:
        raw = sample(model, sde, n, 64, steps, solver=recipe.sampler, generator=generator)
        shown = raw
    to_book = DATA_MAPS[recipe.data_map][1]
    return to_book(raw), to_book(shown)


def measure_recipe(
    model: nn.Module, sde: VESDE, recipe: Recipe, n: int = 1000, steps: int = 20, seed: int = 1234
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
