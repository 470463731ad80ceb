"""One plotting style for every figure of the book.

Colours are the Okabe–Ito palette, which stays distinguishable under the common
forms of colour blindness. Call `use_book_style()` once at the top of a chapter.
"""

from __future__ import annotations

import matplotlib as mpl

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
