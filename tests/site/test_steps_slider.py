"""The kernel-free T slider of chapter 7 works in the built HTML: moving it swaps the pre-rendered image."""

PAGE = "book/ch07_sampling.html"
SLIDER = '.sbgm-slider[data-name="steps"]'


def test_steps_slider_changes_the_image(open_page):
    page, report = open_page(PAGE)
    slider = page.locator(SLIDER)
    assert slider.count() == 1, f"{PAGE} must hold exactly one slider with data-name='steps'"
    range_input = slider.locator('input[type="range"]')
    image = slider.locator("img.sbgm-slider-frame")
    readout = slider.locator("output.sbgm-slider-value")
    n_frames = int(range_input.get_attribute("max")) + 1
    assert n_frames >= 4, f"the T slider should offer several values, got {n_frames}"

    before_src, before_text = image.get_attribute("src"), readout.inner_text()
    assert before_src.startswith("data:image/png;base64,"), "the frames must be inlined, not loaded"
    start = int(range_input.input_value())
    target = 0 if start != 0 else n_frames - 1
    range_input.fill(str(target))  # sets the value and fires input/change, as dragging does
    after_src, after_text = image.get_attribute("src"), readout.inner_text()
    assert after_src != before_src, "moving the T slider did not change the image"
    assert after_text != before_text and after_text.startswith("T = "), f"readout did not follow: {after_text!r}"

    # the keyboard works too: one step to the right shows the next frame
    range_input.focus()
    page.keyboard.press("ArrowRight")
    assert int(range_input.input_value()) == min(target + 1, n_frames - 1)
    assert image.get_attribute("src") != after_src or target == n_frames - 1

    assert not report.page_errors, report.page_errors
    assert not report.outside_requests, report.outside_requests
