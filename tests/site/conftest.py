"""Fixtures for the headless-browser checks of the built HTML book.

Run after `jupyter-book build .`: these tests open `_build/html` in Debian's
Chromium (driven by Python playwright, never `playwright install`) through a
local HTTP server, and record console errors and every request that leaves the
site. A missing build is an error, not a skip: CI must not pass by skipping.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("SBGM_SITE", ROOT / "_build" / "html"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageReport:
    """What happened while a page was open."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """Serve _build/html on a free localhost port; yield its base URL."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built book at {SITE}: run `jupyter-book build .` first (make test does)")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, site_url) -> Iterator[Callable]:
    """open_page("book/ch05_ve_sde.html") -> (page, report), loaded, math typeset, network idle."""
    contexts = []

    def _open(relpath: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        report = PageReport()
        host = urlparse(site_url).netloc

        def on_request(request) -> None:
            url = urlparse(request.url)
            if url.scheme not in ("data", "blob", "about") and url.netloc != host:
                report.outside_requests.append(request.url)

        def on_console(msg) -> None:
            if msg.type == "error":
                report.console_errors.append(msg.text)

        page.on("request", on_request)
        page.on("console", on_console)
        page.on("pageerror", lambda err: report.page_errors.append(str(err)))
        page.on("requestfailed", lambda request: report.failed_requests.append(request.url))
        # block anything outside the site, so a leak shows up as a recorded request, not a hang
        page.route(
            "**/*",
            lambda route: route.continue_() if urlparse(route.request.url).netloc == host else route.abort(),
        )
        page.goto(f"{site_url}/{relpath}", wait_until="networkidle")
        page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)")
        page.evaluate("() => window.MathJax ? window.MathJax.startup.promise : null")
        return page, report

    yield _open
    for context in contexts:
        context.close()
