"""The two training recipes and the original notebook's data map."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from sbgm_edu.data import from_original_map, to_original_map
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.recipes import BOOK, ORIGINAL, build_model, recipe_data, sample_recipe, train_recipe


def test_original_data_map_matches_the_notebook_formula():
    # the original maps pixels p to 2 p / 17 - 1: the largest pixel 16 lands at 15/17, never at +1
    pixels = sklearn_digits().data[:1000]
    assert np.allclose(recipe_data(ORIGINAL, "train").numpy(), 2 * pixels / 17 - 1, atol=1e-6)
    assert to_original_map(torch.tensor([1.0])).item() == pytest.approx(15 / 17)
    x = torch.linspace(-1, 1, 17)
    assert torch.allclose(from_original_map(to_original_map(x)), x, atol=1e-6)


def test_build_model_gives_each_recipe_its_network_and_sde():
    model, sde = build_model(ORIGINAL)
    assert isinstance(model, OriginalScoreNet) and sde.sigma == 1.01
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
