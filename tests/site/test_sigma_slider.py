"""Browser check of the kernel-free σ slider in the built chapter 5 page.

Moving the range input must swap the displayed figure and the readout, with
the page loading nothing from outside the site and raising no errors.
The slider's structure is documented in `sbgm_edu.widgets`.
"""

from __future__ import annotations

import hashlib

PAGE = "book/ch05_ve_sde.html"
SLIDER = '.sbgm-slider[data-name="sigma"]'


def _state(slider) -> dict:
    """What the slider shows now; the image's data URI is replaced by a short digest."""
    state = slider.evaluate(
        """root => ({
            src: root.querySelector("img.sbgm-slider-frame").getAttribute("src"),
            alt: root.querySelector("img.sbgm-slider-frame").getAttribute("alt"),
            text: root.querySelector("output.sbgm-slider-value").textContent,
            value: root.querySelector("input.sbgm-slider-input").value,
            max: root.querySelector("input.sbgm-slider-input").max,
        })"""
    )
    state["inlined"] = state["src"].startswith("data:image/png;base64,")
    state["src"] = hashlib.sha1(state["src"].encode()).hexdigest()[:12]
    return state


def _move_to(slider, index: int) -> None:
    """Set the range input to `index` as a user's drag does: new value, then an "input" event."""
    slider.locator("input.sbgm-slider-input").evaluate(
        """(input, i) => {
            input.value = String(i);
            input.dispatchEvent(new Event("input", { bubbles: true }));
        }""",
        index,
    )


def test_sigma_slider_swaps_the_figure(open_page):
    page, report = open_page(PAGE)
    sliders = page.locator(SLIDER)
    assert sliders.count() == 1, f"expected one σ slider on {PAGE}, found {sliders.count()}"
    slider = sliders.first
    slider.scroll_into_view_if_needed()
    assert slider.locator("img.sbgm-slider-frame").is_visible()

    before = _state(slider)
    assert before["inlined"], "frames must be inlined data URIs, not loaded files"
    assert before["text"].startswith("σ = ")
    n_frames = int(before["max"]) + 1
    assert n_frames >= 3, f"the σ slider should offer several values, has {n_frames}"

    seen = {before["src"]}
    target = 0 if before["value"] != "0" else n_frames - 1
    _move_to(slider, target)
    after = _state(slider)
    assert after["value"] == str(target)
    assert after["src"] != before["src"], "moving the σ slider did not change the figure"
    assert after["text"] != before["text"], "moving the σ slider did not change the readout"
    assert after["alt"] != before["alt"], "the alt text must follow the figure"
    seen.add(after["src"])

    # every position shows its own frame
    for i in range(n_frames):
        _move_to(slider, i)
        seen.add(_state(slider)["src"])
    assert len(seen) == n_frames

    # the keyboard works too (a real input event from the browser)
    _move_to(slider, 0)
    slider.locator("input.sbgm-slider-input").focus()
    page.keyboard.press("ArrowRight")
    assert _state(slider)["value"] == "1"
    assert _state(slider)["text"] != before["text"] or before["value"] == "1"

    assert not report.page_errors, report.page_errors
    assert not report.outside_requests, report.outside_requests
