"""Tests of sbgm_edu.plotting: digit tiling against hand-built grids, the digit display, bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sbgm_edu import plotting, sampling  # noqa: E402
from sbgm_edu.plotting import DIGIT_CMAP, setup_chapter, show_digits, tile_digits  # noqa: E402


def test_tile_digits_matches_a_hand_built_grid():
    # three 2x2 images with values 1..4, 5..8, 9..12; two per row; pad 1 of fill -7
    x = torch.arange(1.0, 13.0).reshape(3, 4)
    f = -7.0
    expected = torch.tensor(
        [
            [1.0, 2.0, f, 5.0, 6.0],
            [3.0, 4.0, f, 7.0, 8.0],
            [f, f, f, f, f],
            [9.0, 10.0, f, f, f],
            [11.0, 12.0, f, f, f],
        ]
    )
    grid = tile_digits(x, ncols=2, pad=1, side=2, fill=f)
    assert torch.equal(grid, expected)


def test_tile_digits_without_padding_and_one_column():
    x = torch.arange(8.0).reshape(2, 4)
    expected = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    assert torch.equal(tile_digits(x, ncols=1, pad=0, side=2), expected)


def test_tile_digits_is_still_importable_from_sampling():
    assert sampling.tile_digits is plotting.tile_digits


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"x": torch.zeros(3, 10)}, ValueError, "x"),
        ({"x": torch.zeros(0, 64)}, ValueError, "x"),
        ({"x": torch.zeros(64)}, ValueError, "x"),
        ({"x": [[0.0] * 64]}, ValueError, "x"),
        ({"x": torch.zeros(2, 64), "ncols": 0}, ValueError, "ncols"),
        ({"x": torch.zeros(2, 64), "ncols": 2.0}, TypeError, "ncols"),
        ({"x": torch.zeros(2, 64), "pad": -1}, ValueError, "pad"),
        ({"x": torch.zeros(2, 64), "side": 0}, ValueError, "side"),
    ],
)
def test_tile_digits_rejects_bad_input(kwargs, error, name):
    with pytest.raises(error, match=name):
        tile_digits(**kwargs)


def test_show_digits_draws_the_tiles_with_the_digit_colour_map():
    x = torch.linspace(-1.0, 1.0, 128).reshape(2, 64)
    fig, ax = plt.subplots()
    image = show_digits(ax, x, ncols=2, title="two digits")
    assert image.get_cmap().name == DIGIT_CMAP == "gray_r"
    assert image.get_clim() == (-1, 1)
    assert torch.equal(torch.as_tensor(image.get_array().data), tile_digits(x, ncols=2))
    assert ax.get_title() == "two digits"
    plt.close(fig)


def test_show_digits_makes_its_own_axes_and_rejects_a_non_axes():
    image = show_digits(None, torch.zeros(3, 64), ncols=3)
    assert image.axes is not None
    plt.close(image.axes.figure)
    with pytest.raises(TypeError, match="ax"):
        show_digits("not an axes", torch.zeros(3, 64))


def test_setup_chapter_sets_threads_and_style():
    before = torch.get_num_threads()
    try:
        setup_chapter(threads=1)
        assert torch.get_num_threads() == 1
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.OKABE_ITO[0]
        with pytest.raises(ValueError, match="threads"):
            setup_chapter(threads=0)
    finally:
        torch.set_num_threads(before)
