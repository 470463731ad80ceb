"""The kernel-free eta slider of the reverse-time SDE chapter works in the built HTML: moving it swaps the image."""

PAGE = "book/ch10_reverse_sde.html"
SLIDER = '.sbgm-slider[data-name="eta"]'


def test_eta_slider_changes_the_image(open_page):
    page, report = open_page(PAGE)
    slider = page.locator(SLIDER)
    assert slider.count() == 1, f"{PAGE} must hold exactly one slider with data-name='eta'"
    range_input = slider.locator('input[type="range"]')
    image = slider.locator("img.sbgm-slider-frame")
    readout = slider.locator("output.sbgm-slider-value")
    n_frames = int(range_input.get_attribute("max")) + 1
    assert n_frames >= 4, f"the eta slider should offer several values, got {n_frames}"

    before_src, before_text = image.get_attribute("src"), readout.inner_text()
    assert before_src.startswith("data:image/png;base64,"), "the frames must be inlined, not loaded"
    assert before_text.startswith("η = "), f"unexpected readout {before_text!r}"
    seen = {before_src}
    for target in range(n_frames):  # every frame differs: the paths and samples change with eta
        range_input.fill(str(target))  # sets the value and fires input/change, as dragging does
        seen.add(image.get_attribute("src"))
        assert readout.inner_text().startswith("η = ")
    assert len(seen) == n_frames, f"{n_frames} eta values but only {len(seen)} distinct images"

    range_input.fill("0")
    assert readout.inner_text() == "η = 0", readout.inner_text()
    range_input.focus()
    page.keyboard.press("ArrowRight")  # the keyboard works too
    assert int(range_input.input_value()) == 1
    assert readout.inner_text() != "η = 0"

    assert not report.page_errors, report.page_errors
    assert not report.outside_requests, report.outside_requests
