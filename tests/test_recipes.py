"""The training recipes (one Recipe type) and the original notebook's data map."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from sbgm_edu.checkpoints import PRETRAINED_PATH
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.original import from_original_map, to_original_map
from sbgm_edu.recipes import BOOK, ORIGINAL, Recipe, build_model, recipe_data, sample_recipe, train_recipe


def test_original_data_map_matches_the_notebook_formula():
    # the original maps pixels p to 2 p / 17 - 1: the largest pixel 16 lands at 15/17, never at +1
    pixels = sklearn_digits().data[:1000]
    assert np.allclose(recipe_data(ORIGINAL, "train").numpy(), 2 * pixels / 17 - 1, atol=1e-6)
    assert to_original_map(torch.tensor([1.0])).item() == pytest.approx(15 / 17)
    x = torch.linspace(-1, 1, 17)
    assert torch.allclose(from_original_map(to_original_map(x)), x, atol=1e-6)


def test_build_model_gives_each_recipe_its_network_and_sde():
    model, sde = build_model(ORIGINAL)
    assert isinstance(model, OriginalScoreNet) and sde.sigma == 1.01 and model.hidden == 512
    model, sde = build_model(BOOK)
    assert isinstance(model, ScoreNet) and sde.sigma == 25.0
    pixels = sklearn_digits().data[:1000] / 8 - 1  # 2 p / 16 - 1
    want_std = np.sqrt(((pixels - pixels.mean(0)) ** 2).mean())
    assert model.data_std == pytest.approx(want_std, rel=1e-5)


@pytest.mark.parametrize("recipe", [ORIGINAL, BOOK], ids=["original", "book"])
def test_one_epoch_of_each_recipe_trains_and_samples(recipe):
    model, sde, history = train_recipe(recipe, epochs=1)
    assert len(history["epoch"]) == 1 and history["seconds_total"] > 0
    raw, shown = sample_recipe(model, sde, recipe, 16, steps=5, generator=torch.Generator().manual_seed(0))
    assert raw.shape == shown.shape == (16, 64)
    if recipe is ORIGINAL:
        # tanh keeps the original's samples in (-1, 1) in its own map, i.e. in (-1, 1.125) in the book's
        assert shown.min() >= -1 and shown.max() <= 2 * 17 / 16 - 1
    else:
        assert torch.equal(raw, shown)


def test_bad_epochs_raise():
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        train_recipe(BOOK, epochs=0)


def test_measure_recipe_counts_runaway_samples_the_tanh_would_hide():
    # An untrained original network at sigma = 1.01 with the original sampler: its raw samples run far out,
    # and its final tanh squashes them into range. The diverged fraction must see the raw values.
    from sbgm_edu.metrics import METRIC_NAMES
    from sbgm_edu.recipes import measure_recipe

    model, sde = build_model(ORIGINAL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # make the untrained score large, so samples leave [-1, 1]
    report, shown = measure_recipe(model, sde, ORIGINAL, n=32, steps=5)
    raw, _ = sample_recipe(model, sde, ORIGINAL, 32, 5, generator=torch.Generator().manual_seed(1234))
    assert set(METRIC_NAMES) <= set(report)
    assert shown.abs().max() <= 1.0
    assert report["diverged_fraction"] == pytest.approx(float((raw.abs().amax(1) > 2).double().mean()))
    assert report["diverged_fraction"] > 0


def test_recipes_reject_unknown_names():
    # Before the fix a recipe with net "unet" silently built a ScoreNet, and any sampler other than
    # "original" silently ran Euler.
    for field, bad in (("net", "unet"), ("sampler", "rk45"), ("loss", "l1"), ("data_map", "x/255")):
        with pytest.raises(ValueError, match=f"{field} must be one of"):
            dataclasses.replace(BOOK, **{field: bad})
    with pytest.raises(ValueError, match="sigma"):
        dataclasses.replace(BOOK, sigma=0.5)
    with pytest.raises(TypeError, match="Recipe"):
        train_recipe({"net": "scorenet"})


def test_book_recipe_is_the_shipped_checkpoints_recipe():
    # the shipped checkpoint's settings file is written by scripts/train_pretrained.py; train()'s defaults
    # fill what it does not list (the optimizer)
    shipped = json.loads(PRETRAINED_PATH.with_suffix(".json").read_text())
    assert {"optimizer": "adam", **shipped["training"]} == BOOK.training()
    assert shipped["sigma"] == BOOK.sigma and shipped["data_map"] == BOOK.data_map
    kwargs = shipped["model_kwargs"]
    assert (kwargs["hidden"], kwargs["depth"], kwargs["fourier_features"]) == (BOOK.hidden, BOOK.depth,
                                                                             BOOK.fourier_features)
    model, _ = build_model(BOOK)
    assert model.data_std == pytest.approx(kwargs["data_std"], rel=1e-6)  # the Gaussian part fitted to the data
    assert isinstance(ORIGINAL, Recipe) and ORIGINAL.differences(ORIGINAL) == {}
