"""One plotting style for every figure of the book, and one way to show digits.

Colours are the Okabe–Ito palette, which stays distinguishable under the common
forms of colour blindness. Every chapter starts with one call, `setup_chapter()`,
which sets that style and the number of torch threads. Digits are shown by
`show_digits` (tiled by `tile_digits`) with one colour map, `DIGIT_CMAP`, in
every chapter, so that a digit never changes polarity from one chapter to the next.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch

from sbgm_edu._checks import check_positive_int

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
"""Okabe & Ito (2008) colour-blind-safe palette, in the order the book uses it."""

SEQUENTIAL_CMAP = "viridis"
"""Perceptually uniform, colour-blind-safe map for densities and time."""

DIVERGING_CMAP = "PuOr"
"""Colour-blind-safe diverging map (for signed quantities)."""

DIGIT_CMAP = "gray_r"
"""The colour map of every digit image: -1 (background) is white, +1 (stroke) is black.

Dark ink on a white page, like the handwriting the digits were scanned from and like the
white background of every other figure; a pixel that left [-1, 1] is clipped to pure
white or black by `show_digits` (vmin=-1, vmax=1)."""


def use_book_style() -> None:
    """Set matplotlib defaults: Okabe–Ito colour cycle, readable fonts, light grid."""
    mpl.rcParams.update(
        {
            "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
            "image.cmap": SEQUENTIAL_CMAP,
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )


def setup_chapter(threads: int = 1) -> None:
    """The one setup call at the top of every chapter: the book's style and `threads` torch threads.

    The book's tensors and networks are small: one thread is as fast as two and does not wait
    for the other when the CPU is shared.
    """
    check_positive_int(threads, "threads")
    use_book_style()
    torch.set_num_threads(threads)


def tile_digits(x: torch.Tensor, ncols: int = 8, pad: int = 1, side: int = 8, fill: float = 0.0) -> torch.Tensor:
    """Arrange N flat images (N, side*side) as one image, ncols per row, for `plt.imshow`.

    Image i goes to row i // ncols, column i % ncols of the grid; the images are separated by
    `pad` pixels of value `fill` (0, mid-grey between the background -1 and the strokes +1,
    so that the images stand apart). Empty cells are `fill`.

    Args:
        x: images, shape (N, side*side), e.g. (16, 64) for the 8x8 digits.
        ncols: images per row (>= 1).
        pad: pixels between images (>= 0).
        side: height and width of one image (>= 1).
        fill: value of the padding.

    Returns:
        A float32 tensor of shape (rows*(side+pad) - pad, ncols*(side+pad) - pad), rows = ceil(N / ncols).
    """
    check_positive_int(ncols, "ncols")
    check_positive_int(pad, "pad", minimum=0)
    check_positive_int(side, "side")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != side * side or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, {side * side}) with N >= 1, got {shape}")
    n = x.shape[0]
    rows = -(-n // ncols)
    cell = side + pad
    grid = torch.full((rows * cell - pad, ncols * cell - pad), float(fill), dtype=torch.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * cell : r * cell + side, c * cell : c * cell + side] = x[i].detach().float().reshape(side, side)
    return grid


def show_digits(ax: plt.Axes | None, x: torch.Tensor, ncols: int = 8, title: str | None = None, side: int = 8):
    """Show N flat digits (N, side*side) in [-1, 1] as one tiled image on `ax`, in `DIGIT_CMAP`.

    Values outside [-1, 1] are shown as the nearest end of the map (vmin=-1, vmax=1); the
    axes' ticks, grid and frame are removed. With `ax=None` a new figure sized to the tiles is made.

    Args:
        ax: the matplotlib axes to draw on, or None for a new figure.
        x: images, shape (N, side*side).
        ncols: images per row (>= 1).
        title: axes title, or None.
        side: height and width of one image.

    Returns:
        The matplotlib `AxesImage` (for a colour bar or an animation).
    """
    grid = tile_digits(x, ncols=ncols, side=side)
    if ax is None:
        rows, cols = grid.shape
        _, ax = plt.subplots(figsize=(max(1.5, 0.25 * cols), max(1.5, 0.25 * rows)))
    elif not isinstance(ax, plt.Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    image = ax.imshow(grid.numpy(), cmap=DIGIT_CMAP, vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(title)
    return image
