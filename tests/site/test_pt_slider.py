"""The kernel-free t slider of chapter 4 (p_t and its score field) works in the built HTML.

Moving the range input must swap the pre-rendered figure, its alt text and the readout,
every position must show its own frame, and the page must load nothing from outside.
"""

PAGE = "book/ch04_pf_ode.html"
SLIDER = '.sbgm-slider[data-name="pt-score"]'


def test_pt_slider_swaps_the_figure(open_page):
    page, report = open_page(PAGE)
    slider = page.locator(SLIDER)
    assert slider.count() == 1, f"{PAGE} must hold exactly one slider with data-name='pt-score'"
    slider.scroll_into_view_if_needed()
    range_input = slider.locator('input[type="range"]')
    image = slider.locator("img.sbgm-slider-frame")
    readout = slider.locator("output.sbgm-slider-value")
    assert image.is_visible()
    n_frames = int(range_input.get_attribute("max")) + 1
    assert n_frames >= 5, f"the t slider should offer several times, got {n_frames}"

    before = (image.get_attribute("src"), image.get_attribute("alt"), readout.inner_text())
    assert before[0].startswith("data:image/png;base64,"), "the frames must be inlined, not loaded"
    assert before[2].startswith("t = "), f"unexpected readout {before[2]!r}"
    start = int(range_input.input_value())
    target = 0 if start != 0 else n_frames - 1
    range_input.fill(str(target))  # sets the value and fires input/change, as dragging does
    after = (image.get_attribute("src"), image.get_attribute("alt"), readout.inner_text())
    assert after[0] != before[0], "moving the t slider did not change the figure"
    assert after[1] != before[1], "the alt text must follow the figure"
    assert after[2] != before[2] and after[2].startswith("t = "), f"readout did not follow: {after[2]!r}"

    seen = set()
    for i in range(n_frames):
        range_input.fill(str(i))
        seen.add(image.get_attribute("src"))
    assert len(seen) == n_frames, "each time must show its own frame"

    # the keyboard works too: one step to the right shows the next frame
    range_input.fill("0")
    first = image.get_attribute("src")
    range_input.focus()
    page.keyboard.press("ArrowRight")
    assert int(range_input.input_value()) == 1
    assert image.get_attribute("src") != first

    assert not report.page_errors, report.page_errors
    assert not report.outside_requests, report.outside_requests
