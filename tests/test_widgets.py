"""Tests of sbgm_edu.widgets: the static HTML slider's structure, and bad inputs."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from IPython.display import HTML  # noqa: E402

from sbgm_edu.widgets import live_slider, static_slider, static_slider_html  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _figure(value: float):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, value])
    ax.set_title(f"v = {value}")
    return fig


class _Collect(HTMLParser):
    """Record every start tag with its attributes, and the text of <script> and <output>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: dict[str, list[str]] = {"script": [], "output": []}
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in self.texts else None

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open:
            self.texts[self._open].append(data)


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    return parser


def _slider_data(parsed: _Collect) -> dict:
    """The JSON frame store (the first <script> holding a JSON object)."""
    for body in parsed.texts["script"]:
        if body.lstrip().startswith("{"):
            return json.loads(body)
    raise AssertionError("no JSON frame data found")


def _decode_png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix) :])


def test_static_slider_has_one_png_per_frame_and_index_range():
    values = [1.01, 2.0, 5.0, 25.0]
    text = static_slider_html([_figure(v) for v in values], values, "σ", "sigma", fmt="{:g}", initial=1)
    parsed = _parse(text)
    data = _slider_data(parsed)
    # one decodable, distinct PNG per frame
    assert len(data["src"]) == len(values)
    pngs = [_decode_png(src) for src in data["src"]]
    assert all(p.startswith(PNG_MAGIC) for p in pngs)
    assert len(set(pngs)) == len(values)
    # one alt text and one readout per frame, naming the value
    assert data["text"] == ["σ = 1.01", "σ = 2", "σ = 5", "σ = 25"]
    assert len(data["alt"]) == len(values) and all("σ = " in a for a in data["alt"])
    # the range input moves over frame indices 0..n-1 in steps of 1
    (range_attrs,) = [a for tag, a in parsed.tags if tag == "input" and a.get("type") == "range"]
    assert (range_attrs["min"], range_attrs["max"], range_attrs["step"], range_attrs["value"]) == ("0", "3", "1", "1")
    # the visible image and the readout start at the initial frame
    (img,) = [a for tag, a in parsed.tags if tag == "img"]
    assert img["src"] == data["src"][1] and img["alt"] == data["alt"][1]
    assert "".join(parsed.texts["output"]) == "σ = 2"
    # the container is findable by name; no outside resources are referenced
    roots = [a for tag, a in parsed.tags if tag == "div" and "sbgm-slider" in (a.get("class") or "").split()]
    assert len(roots) == 1 and roots[0]["data-name"] == "sigma"
    assert not re.search(r"(src|href)=\"(https?:)?//", text)


def test_static_slider_accepts_a_function_and_alt_texts():
    calls = []

    def draw(v):
        calls.append(v)
        return _figure(v)

    out = static_slider(draw, [10, 20], "T", "steps", alt=lambda v: f"samples after {v} steps")
    assert isinstance(out, HTML)
    assert calls == [10, 20]
    data = _slider_data(_parse(out.data))
    assert data["alt"] == ["samples after 10 steps", "samples after 20 steps"]
    assert not plt.get_fignums(), "static_slider must close the figures it rendered"


def test_two_sliders_on_a_page_have_unique_ids():
    a = static_slider_html([_figure(1.0)], [1.0], "σ", "sigma")
    b = static_slider_html([_figure(1.0)], [1.0], "σ", "sigma")
    ids = [attrs["id"] for tag, attrs in _parse(a + b).tags if "id" in attrs]
    assert len(ids) == 4  # two containers and two inputs
    assert len(set(ids)) == len(ids)
    # each script looks up its own container
    for text in (a, b):
        (root_id,) = [attrs["id"] for tag, attrs in _parse(text).tags if tag == "div" and "data-name" in attrs]
        assert json.dumps(root_id) in text.split("<script>")[-1]


def test_html_special_characters_are_escaped():
    text = static_slider_html([_figure(1.0)], ["<b>&"], "a<b", "x", alt=['"quoted" </script>'])
    parsed = _parse(text)
    (img,) = [a for tag, a in parsed.tags if tag == "img"]
    assert img["alt"] == '"quoted" </script>'
    assert "<b>&" not in text  # raw value never reaches the markup unescaped
    assert len(parsed.texts["script"]) == 2  # the JSON store was not cut short by '</script>'


@pytest.mark.parametrize(
    ("frames", "values", "kwargs", "match"),
    [
        ([], [1.0], {}, "frames"),
        ([], [], {}, "values"),
        (None, [1.0, 2.0], {}, "same length"),
        (None, [1.0], {"name": "bad name"}, "name"),
        (None, [1.0], {"dpi": 5}, "dpi"),
        (None, [1.0], {"initial": 3}, "initial"),
        (None, [1.0], {"alt": ["a", "b"]}, "alt"),
    ],
)
def test_static_slider_bad_input_raises(frames, values, kwargs, match):
    if frames is None:
        frames = [_figure(1.0)]
    kwargs = {"label": "σ", "name": "sigma", **kwargs}
    with pytest.raises(ValueError, match=match):
        static_slider(frames, values, **kwargs)
    plt.close("all")


def test_live_slider_builds_and_draws_initial_value():
    import ipywidgets as widgets

    seen = []
    box = live_slider(seen.append, [1.01, 2.0, 25.0], "σ", fmt="{:g}", initial=2)
    slider = box.children[0]
    assert isinstance(slider, widgets.SelectionSlider)
    assert slider.value == 25.0 and slider.label == "25"
    assert seen == [25.0]
    slider.value = 2.0
    assert seen == [25.0, 2.0]


def test_live_slider_bad_input_raises():
    with pytest.raises(ValueError, match="values"):
        live_slider(print, [], "σ")
    with pytest.raises(ValueError, match="initial"):
        live_slider(print, [1.0], "σ", initial=1)
    with pytest.raises(TypeError, match="draw"):
        live_slider(None, [1.0], "σ")
