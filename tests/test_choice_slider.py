"""Tests of widgets.static_choice_slider: a drop-down list and a slider over pre-rendered figures."""

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from sbgm_edu.widgets import static_choice_slider_html  # noqa: E402


def _frame(choice, value):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [choice, value])
    return fig


def _data(html_text):
    blob = re.search(r'<script type="application/json" class="sbgm-slider-data">(.*?)</script>', html_text, re.S)
    return json.loads(blob.group(1))


def test_one_frame_per_choice_and_value():
    text = static_choice_slider_html(_frame, [0, 1, 2], [0.0, 0.5, 1.0, 2.0], "digit", "w", "guidance",
                                     initial=(1, 2), dpi=20)
    data = _data(text)
    assert len(data["src"]) == 3 and all(len(row) == 4 for row in data["src"])
    assert all(src.startswith("data:image/png;base64,") for row in data["src"] for src in row)
    assert len({src for row in data["src"] for src in row}) == 12  # every pair drew its own figure
    assert data["text"] == ["w = 0.0", "w = 0.5", "w = 1.0", "w = 2.0"]
    assert data["alt"][2][3] == "Figure for digit = 2, w = 2.0"
    assert text.count("<option") == 3 and '<option value="1" selected>1</option>' in text
    assert 'data-name="guidance"' in text and 'max="3"' in text and 'value="2"' in text
    assert f'src="{data["src"][1][2]}"' in text  # the initial frame is the one shown


@pytest.mark.parametrize("kwargs, error", [
    ({"frames": [1, 2]}, TypeError),
    ({"choices": []}, ValueError),
    ({"values": []}, ValueError),
    ({"initial": (3, 0)}, ValueError),
    ({"initial": 0}, ValueError),
    ({"name": "two words"}, ValueError),
    ({"label": ""}, ValueError),
    ({"dpi": 5}, ValueError),
])
def test_bad_arguments_are_rejected(kwargs, error):
    args = {"frames": _frame, "choices": [0, 1, 2], "values": [0.0, 1.0], "choice_label": "digit", "label": "w",
            "name": "guidance", "dpi": 20, **kwargs}
    with pytest.raises(error):
        static_choice_slider_html(**args)
