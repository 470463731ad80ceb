"""Sliders for the book: live ones for Jupyter, kernel-free ones for the static HTML.

Two ways to let a reader turn a knob (the VE parameter sigma, the number of
solver steps T, ...) and watch a figure change:

- `live_slider(draw, values, label)`: an ipywidgets slider that calls
  `draw(value)` each time it moves. Needs a running kernel (Jupyter).
- `static_slider(frames, values, label, name)`: the figure for each value is
  drawn once, now, saved as a small PNG and inlined (base64) into a
  self-contained HTML block; a few lines of inline JavaScript swap the image
  when the range input moves. Nothing is loaded from outside the page, so it
  works in the built HTML book, offline, without a kernel.

The HTML structure of a static slider (stable: the browser tests rely on it)::

    <div class="sbgm-slider tex2jax_ignore mathjax_ignore" id="sbgm-slider-{name}-{k}" data-name="{name}">
      <label for="{id}-input">{label}</label>
      <input type="range" id="{id}-input" class="sbgm-slider-input" min="0" max="{n-1}" step="1" value="{i0}">
      <output class="sbgm-slider-value" for="{id}-input">{label} = {value}</output>
      <img class="sbgm-slider-frame" src="data:image/png;base64,..." alt="...">
      <script type="application/json" class="sbgm-slider-data">{"src": [...], "alt": [...], "text": [...]}</script>
      <script>...</script>
    </div>

The range input moves over frame indices 0..n-1 (so values need not be evenly
spaced); the readout shows the value. Ids are unique within one kernel session,
hence within one page of the book (each page is one notebook run).

No mathematics lives here: a chapter computes what to draw, this module only shows it.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
from IPython.display import HTML
from matplotlib.figure import Figure

_counter = itertools.count()

_JS = """(function () {
  var root = document.getElementById(%(id)s);
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  var data = JSON.parse(root.querySelector("script.sbgm-slider-data").textContent);
  var input = root.querySelector("input.sbgm-slider-input");
  var img = root.querySelector("img.sbgm-slider-frame");
  var out = root.querySelector("output.sbgm-slider-value");
  function show() {
    var i = Math.max(0, Math.min(data.src.length - 1, parseInt(input.value, 10) || 0));
    img.src = data.src[i];
    img.alt = data.alt[i];
    out.textContent = data.text[i];
    input.setAttribute("aria-valuetext", data.text[i]);
  }
  input.addEventListener("input", show);
  input.addEventListener("change", show);
})();"""


def _slug(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise ValueError(f"name must be a short identifier (a letter, then letters, digits, _ or -), got {name!r}")
    return name


def _format_value(value: Any, fmt: str | Callable[[Any], str]) -> str:
    return fmt(value) if callable(fmt) else fmt.format(value)


def figure_to_data_uri(fig: Figure, dpi: int = 80) -> str:
    """Render a matplotlib Figure to a PNG `data:` URI (base64) and close the figure."""
    if not isinstance(fig, Figure):
        raise TypeError(f"each frame must be a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _check_frames(
    frames: Sequence[Figure] | Callable[[Any], Figure], values: list[Any]
) -> list[Figure] | Callable[[Any], Figure]:
    """A function stays a function; a sequence becomes a list of len(values) Figures."""
    if callable(frames):
        return frames
    if isinstance(frames, Figure):
        raise TypeError("frames must be a sequence of Figures (one per value) or a function value -> Figure")
    frames = list(frames)
    if len(frames) == 0:
        raise ValueError("frames must hold at least one figure")
    if len(frames) != len(values):
        raise ValueError(f"frames and values must have the same length, got {len(frames)} and {len(values)}")
    return frames


def static_slider_html(
    frames: Sequence[Figure] | Callable[[Any], Figure],
    values: Sequence[Any],
    label: str,
    name: str,
    alt: str | Sequence[str] | Callable[[Any], str] | None = None,
    fmt: str | Callable[[Any], str] = "{}",
    initial: int = 0,
    dpi: int = 80,
) -> str:
    """The HTML text of `static_slider` (see there); useful for tests and for writing files."""
    values = list(values)
    if len(values) == 0:
        raise ValueError("values must hold at least one value")
    name = _slug(name)
    if not isinstance(label, str) or not label:
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 20 <= dpi <= 300:
        raise ValueError(f"dpi must be an int in [20, 300], got {dpi!r}")
    if isinstance(initial, bool) or not isinstance(initial, int) or not 0 <= initial < len(values):
        raise ValueError(f"initial must be a frame index in [0, {len(values) - 1}], got {initial!r}")
    frames = _check_frames(frames, values)
    texts = [f"{label} = {_format_value(v, fmt)}" for v in values]
    if alt is None:
        alts = [f"Figure for {t}" for t in texts]
    elif isinstance(alt, str):
        alts = [f"{alt} ({t})" for t in texts]
    elif callable(alt):
        alts = [str(alt(v)) for v in values]
    else:
        alts = [str(a) for a in alt]
        if len(alts) != len(values):
            raise ValueError(f"alt must have one text per value, got {len(alts)} for {len(values)} values")
    figures = [frames(v) for v in values] if callable(frames) else frames
    srcs = [figure_to_data_uri(fig, dpi=dpi) for fig in figures]

    uid = f"sbgm-slider-{name}-{next(_counter)}"
    # "<" escaped as \u003c, so no text can close the <script> element early
    data = json.dumps({"src": srcs, "alt": alts, "text": texts}).replace("<", "\\u003c")
    esc = html.escape
    return (
        f'<div class="sbgm-slider tex2jax_ignore mathjax_ignore" id="{uid}" data-name="{name}" '
        'style="max-width:100%;margin:0.5em 0">\n'
        f'<div style="display:flex;align-items:center;gap:0.8em;flex-wrap:wrap">'
        f'<label for="{uid}-input">{esc(label)}</label>\n'
        f'<input type="range" id="{uid}-input" class="sbgm-slider-input" min="0" max="{len(values) - 1}" '
        f'step="1" value="{initial}" aria-valuetext="{esc(texts[initial])}" style="flex:1;max-width:24em">\n'
        f'<output class="sbgm-slider-value" for="{uid}-input">{esc(texts[initial])}</output></div>\n'
        f'<img class="sbgm-slider-frame" src="{srcs[initial]}" alt="{esc(alts[initial])}" '
        'style="max-width:100%;height:auto">\n'
        f'<script type="application/json" class="sbgm-slider-data">{data}</script>\n'
        f"<script>{_JS % {'id': json.dumps(uid)}}</script>\n"
        "</div>"
    )


def static_slider(
    frames: Sequence[Figure] | Callable[[Any], Figure],
    values: Sequence[Any],
    label: str,
    name: str,
    alt: str | Sequence[str] | Callable[[Any], str] | None = None,
    fmt: str | Callable[[Any], str] = "{}",
    initial: int = 0,
    dpi: int = 80,
) -> HTML:
    """A kernel-free slider that swaps pre-rendered figures, for the static HTML book.

    Args:
        frames: one matplotlib Figure per value, or a function value -> Figure
            (called once per value). Figures are rendered to PNG and closed.
        values: the slider positions (numbers or strings), in slider order; they
            need not be evenly spaced (the range input moves over indices).
        label: the name of the knob, e.g. "σ" or "T", shown beside the slider.
        name: a short identifier (letters, digits, _ or -) stored in
            data-name, so tests and readers can find the slider, e.g. "sigma".
        alt: alt text: one string per value, a function value -> text, or one
            string that is completed with the value. Default: "Figure for label = value".
        fmt: how to print a value: a format string ("{:g}") or a function.
        initial: index of the frame shown first.
        dpi: resolution of the PNGs; keep it low (about 80) so the page stays small.

    Returns:
        An IPython HTML object; the last expression of a cell displays it. In
        the built book it is a self-contained <div class="sbgm-slider"> (see the
        module docstring for the structure).

    Raises:
        ValueError: no values or frames, len(frames) != len(values), a bad name,
            label, dpi or initial index.
    """
    return HTML(static_slider_html(frames, values, label, name, alt=alt, fmt=fmt, initial=initial, dpi=dpi))


def live_slider(
    draw: Callable[[Any], None],
    values: Sequence[Any],
    label: str,
    fmt: str | Callable[[Any], str] = "{}",
    initial: int = 0,
    continuous_update: bool = False,
):
    """A live ipywidgets slider for Jupyter that calls draw(value) whenever it moves.

    Args:
        draw: draws the figure for one value (e.g. builds it and calls plt.show()).
        values: the slider positions (numbers or strings), in order.
        label: the name of the knob, shown as the slider's description.
        fmt: how to print a value in the readout: a format string or a function.
        initial: index of the value selected first.
        continuous_update: redraw while dragging (True) or on release (False, cheaper).

    Returns:
        An ipywidgets.VBox holding the SelectionSlider and an Output area; the
        last expression of a cell displays it. Needs a running kernel: in the
        static HTML book use `static_slider` instead.

    Raises:
        ValueError: no values, a non-callable draw, or a bad initial index.
    """
    import ipywidgets as widgets

    if not callable(draw):
        raise TypeError("draw must be callable as draw(value)")
    values = list(values)
    if len(values) == 0:
        raise ValueError("values must hold at least one value")
    if isinstance(initial, bool) or not isinstance(initial, int) or not 0 <= initial < len(values):
        raise ValueError(f"initial must be an index in [0, {len(values) - 1}], got {initial!r}")
    options = [(_format_value(v, fmt), v) for v in values]
    slider = widgets.SelectionSlider(
        options=options,
        value=values[initial],
        description=label,
        continuous_update=continuous_update,
        layout=widgets.Layout(width="28em"),
    )
    out = widgets.interactive_output(lambda value: draw(value), {"value": slider})
    return widgets.VBox([slider, out])


_CHOICE_JS = """(function () {
  var root = document.getElementById(%(id)s);
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  var data = JSON.parse(root.querySelector("script.sbgm-slider-data").textContent);
  var choice = root.querySelector("select.sbgm-slider-choice");
  var input = root.querySelector("input.sbgm-slider-input");
  var img = root.querySelector("img.sbgm-slider-frame");
  var out = root.querySelector("output.sbgm-slider-value");
  function show() {
    var c = Math.max(0, Math.min(data.src.length - 1, choice.selectedIndex));
    var i = Math.max(0, Math.min(data.src[c].length - 1, parseInt(input.value, 10) || 0));
    img.src = data.src[c][i];
    img.alt = data.alt[c][i];
    out.textContent = data.text[i];
    input.setAttribute("aria-valuetext", data.text[i]);
  }
  input.addEventListener("input", show);
  input.addEventListener("change", show);
  choice.addEventListener("change", show);
})();"""


def static_choice_slider_html(
    frames: Callable[[Any, Any], Figure],
    choices: Sequence[Any],
    values: Sequence[Any],
    choice_label: str,
    label: str,
    name: str,
    alt: Callable[[Any, Any], str] | None = None,
    fmt: str | Callable[[Any], str] = "{}",
    initial: tuple[int, int] = (0, 0),
    dpi: int = 80,
) -> str:
    """The HTML text of `static_choice_slider` (see there): a drop-down list plus a slider.

    Same structure as `static_slider_html` with a `<select class="sbgm-slider-choice">` before
    the range input; the JSON data hold src[c][i] and alt[c][i] for choice c and value i.
    """
    choices, values = list(choices), list(values)
    if not callable(frames):
        raise TypeError("frames must be a function (choice, value) -> Figure")
    if not choices or not values:
        raise ValueError("choices and values must each hold at least one entry")
    if not (isinstance(initial, tuple) and len(initial) == 2 and 0 <= initial[0] < len(choices)
            and 0 <= initial[1] < len(values)):
        raise ValueError(f"initial must be a pair (choice index, value index), got {initial!r}")
    name = _slug(name)
    for arg, text in (("choice_label", choice_label), ("label", label)):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{arg} must be a non-empty string, got {text!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 20 <= dpi <= 300:
        raise ValueError(f"dpi must be an int in [20, 300], got {dpi!r}")
    texts = [f"{label} = {_format_value(v, fmt)}" for v in values]
    alt = alt or (lambda c, v: f"Figure for {choice_label} = {c}, {label} = {_format_value(v, fmt)}")
    srcs = [[figure_to_data_uri(frames(c, v), dpi=dpi) for v in values] for c in choices]
    alts = [[str(alt(c, v)) for v in values] for c in choices]
    uid = f"sbgm-slider-{name}-{next(_counter)}"
    data = json.dumps({"src": srcs, "alt": alts, "text": texts}).replace("<", "\\u003c")
    esc, (c0, i0) = html.escape, initial
    options = "".join(f'<option value="{k}"{" selected" if k == c0 else ""}>{esc(str(c))}</option>'
                      for k, c in enumerate(choices))
    return (
        f'<div class="sbgm-slider tex2jax_ignore mathjax_ignore" id="{uid}" data-name="{name}" '
        'style="max-width:100%;margin:0.5em 0">\n'
        '<div style="display:flex;align-items:center;gap:0.8em;flex-wrap:wrap">'
        f'<label for="{uid}-choice">{esc(choice_label)}</label>\n'
        f'<select id="{uid}-choice" class="sbgm-slider-choice">{options}</select>\n'
        f'<label for="{uid}-input">{esc(label)}</label>\n'
        f'<input type="range" id="{uid}-input" class="sbgm-slider-input" min="0" max="{len(values) - 1}" '
        f'step="1" value="{i0}" aria-valuetext="{esc(texts[i0])}" style="flex:1;max-width:20em">\n'
        f'<output class="sbgm-slider-value" for="{uid}-input">{esc(texts[i0])}</output></div>\n'
        f'<img class="sbgm-slider-frame" src="{srcs[c0][i0]}" alt="{esc(alts[c0][i0])}" '
        'style="max-width:100%;height:auto">\n'
        f'<script type="application/json" class="sbgm-slider-data">{data}</script>\n'
        f"<script>{_CHOICE_JS % {'id': json.dumps(uid)}}</script>\n"
        "</div>"
    )


def static_choice_slider(
    frames: Callable[[Any, Any], Figure],
    choices: Sequence[Any],
    values: Sequence[Any],
    choice_label: str,
    label: str,
    name: str,
    alt: Callable[[Any, Any], str] | None = None,
    fmt: str | Callable[[Any], str] = "{}",
    initial: tuple[int, int] = (0, 0),
    dpi: int = 80,
) -> HTML:
    """A kernel-free drop-down list plus slider that swap pre-rendered figures (e.g. a label and a weight w).

    Args:
        frames: a function (choice, value) -> Figure, called once per pair (len(choices) * len(values) PNGs).
        choices: the entries of the drop-down list (e.g. the digits 0..9).
        values: the slider positions, in order.
        choice_label, label: the names of the two knobs, e.g. "digit" and "w".
        name: a short identifier stored in data-name, e.g. "guidance".
        alt: a function (choice, value) -> alt text; default "Figure for choice_label = c, label = v".
        fmt: how to print a value of the slider.
        initial: (choice index, value index) shown first.
        dpi: resolution of the PNGs.

    Returns:
        An IPython HTML object (a self-contained <div class="sbgm-slider">, as for `static_slider`).
    """
    return HTML(static_choice_slider_html(frames, choices, values, choice_label, label, name, alt=alt, fmt=fmt,
                                          initial=initial, dpi=dpi))
