"""The learner's workspace: JupyterLab (with jupyterlab-myst) renders a chapter as the HTML book does.

Starts `jupyter lab --no-browser` on a free localhost port with the chapters as its root,
opens a chapter in Debian's Chromium (playwright, never `playwright install`), runs every
cell, and checks that

- no raw MyST is left in the rendered markdown (exercise fences, `:label:` lines, `{eq}` and
  `{cite}` roles): jupyterlab-myst has rendered them;
- exercise blocks are rendered as exercises, and solutions start collapsed;
- the live ipywidgets slider redraws its figure when it is moved.

A missing JupyterLab or jupyterlab-myst is an error, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
CHAPTER = "ch05_ve_sde.ipynb"  # the σ slider; the chapter runs in about ten seconds
RAW_MYST = re.compile(r"```|:label:|\{eq\}`|\{cite(:\w+)?\}`|\{exercise\}|\{solution|\{figure\}")
LAB_SETTINGS = {
    # render every cell, so the whole notebook's text can be read
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # no "news" pop-up (it would also try to reach the internet)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    for rel, value in LAB_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory) -> Iterator[str]:
    """A JupyterLab server on book/ (a copy, so running cells never touches the repository)."""
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        pytest.fail(f"{jupyter} is missing: install the requirements (make test does)")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "book"
    shutil.copytree(BOOK, root, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    _write_settings(tmp / "settings")
    port = _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTER_RUNTIME_DIR=str(tmp / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True"]
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(tmp / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def chapter_page(browser, lab_url):
    """The chapter open in JupyterLab with every cell run."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{lab_url}/lab/tree/{CHAPTER}?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Spinner", state="detached")
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        # collapsed cells (the solutions, source_hidden) show no prompt text
        prompts = [p for p in page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts() if p.strip()]
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the chapter did not finish running within 240 s: prompts {prompts}")
    yield page
    page.close()


def test_no_raw_myst_in_rendered_markdown(chapter_page) -> None:
    texts = chapter_page.locator(".jp-MarkdownCell .myst")  # jupyterlab-myst's rendering
    raw = [t[:120] for t in texts.all_inner_texts() if RAW_MYST.search(t)]
    assert texts.count() > 10, "no rendered markdown cells found"
    assert raw == [], f"raw MyST left in rendered cells: {raw}"


def test_exercises_render_and_solutions_start_collapsed(chapter_page) -> None:
    text = chapter_page.locator(".jp-Notebook").inner_text()
    assert re.search(r"Exercise\s*\d*", text), "no rendered exercise heading"
    solutions = chapter_page.locator(".jp-MarkdownCell .myst details.myst-exercise")
    assert solutions.count() >= 1, "no collapsible solution found"
    assert all(not d.evaluate("e => e.open") for d in solutions.all()), "a solution is expanded on load"


def test_live_slider_redraws_the_figure(chapter_page) -> None:
    widget = chapter_page.locator(".jupyter-widgets.widget-vbox").last
    widget.scroll_into_view_if_needed()
    image = widget.locator("img").first
    image.wait_for()
    before = image.get_attribute("src")
    handle = widget.locator(".noUi-handle, .ui-slider-handle").first
    handle.focus()
    chapter_page.keyboard.press("ArrowRight")
    chapter_page.wait_for_function(
        "([el, old]) => { const img = el.querySelector('img'); return img && img.src !== old; }",
        arg=[widget.element_handle(), before],
        timeout=60_000,
    )
    assert image.get_attribute("src") != before
