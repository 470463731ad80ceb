"""The built HTML book works offline in a real browser: every page loads cleanly and renders its math."""

import pytest
from conftest import SITE

PAGES = sorted(p.relative_to(SITE).as_posix() for p in (SITE / "book").glob("*.html"))


def test_every_chapter_was_built():
    assert "book/intro.html" in PAGES, f"no intro page under {SITE}"
    assert len(PAGES) >= 2, f"only {PAGES} were built"


@pytest.mark.parametrize("page_path", PAGES)
def test_page_loads_offline_without_errors(open_page, page_path):
    page, report = open_page(page_path)
    assert page.title(), f"{page_path} has no title"
    assert not report.outside_requests, f"{page_path} requested outside the site: {report.outside_requests}"
    assert not report.failed_requests, f"{page_path} had failed requests: {report.failed_requests}"
    assert not report.page_errors, f"{page_path} raised JavaScript errors: {report.page_errors}"
    assert not report.console_errors, f"{page_path} logged console errors: {report.console_errors}"


# the intro and the API reference (docstrings shown as written) hold no formulas
NO_MATH = {"book/intro.html", "book/appendix_api.html"}


@pytest.mark.parametrize("page_path", [p for p in PAGES if p not in NO_MATH])
def test_math_is_rendered_by_the_local_mathjax(open_page, page_path):
    page, _ = open_page(page_path)
    n_math = page.locator("div.math, span.math").count()
    assert n_math > 0, f"{page_path} has no math to render"
    page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
    assert page.locator("mjx-container").count() >= n_math, f"{page_path}: not every formula was typeset"
    # MathJax reports TeX errors inline as <mjx-merror>; there must be none
    assert page.locator("mjx-merror").count() == 0, f"{page_path} has TeX errors"


def test_favicon_and_logo_are_served(open_page, site_url):
    """The site declares its icon and serves /favicon.ico, so no browser request for an icon fails."""
    page, report = open_page("book/intro.html")
    icon = page.locator("link[rel~='icon']").first.get_attribute("href")
    assert icon, "the page declares no icon"
    for url in (page.evaluate("h => new URL(h, document.baseURI).href", icon), f"{site_url}/favicon.ico"):
        response = page.request.get(url)
        assert response.status == 200, f"{url} answered {response.status}"
    logo = page.locator("img.logo__image").first
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0"), "the logo did not load"
    assert not report.failed_requests
