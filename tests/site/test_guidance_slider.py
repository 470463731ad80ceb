"""The kernel-free guidance explorer of the guidance chapter works in the built HTML: digit list and w slider."""

PAGE = "book/ch12_guidance.html"
SLIDER = '.sbgm-slider[data-name="guidance"]'


def test_guidance_slider_and_digit_choice_change_the_image(open_page):
    page, report = open_page(PAGE)
    slider = page.locator(SLIDER)
    assert slider.count() == 1, f"{PAGE} must hold exactly one slider with data-name='guidance'"
    choice = slider.locator("select.sbgm-slider-choice")
    range_input = slider.locator('input[type="range"]')
    image = slider.locator("img.sbgm-slider-frame")
    readout = slider.locator("output.sbgm-slider-value")
    assert choice.locator("option").count() == 10, "the digit list should offer the ten digits"
    n_frames = int(range_input.get_attribute("max")) + 1
    assert n_frames >= 4, f"the w slider should offer several weights, got {n_frames}"

    start_src, start_text = image.get_attribute("src"), readout.inner_text()
    assert start_src.startswith("data:image/png;base64,"), "the frames must be inlined, not loaded"
    range_input.fill(str(n_frames - 1))  # the largest weight
    moved_src, moved_text = image.get_attribute("src"), readout.inner_text()
    assert moved_src != start_src, "moving the w slider did not change the image"
    assert moved_text != start_text and moved_text.startswith("w = "), f"readout did not follow: {moved_text!r}"

    current = choice.input_value()
    choice.select_option(index=0 if current != "0" else 1)  # another digit, same w
    assert image.get_attribute("src") != moved_src, "choosing another digit did not change the image"
    assert readout.inner_text() == moved_text, "changing the digit must keep the w readout"
    assert "w = " in image.get_attribute("alt")

    assert not report.page_errors, report.page_errors
    assert not report.outside_requests, report.outside_requests
