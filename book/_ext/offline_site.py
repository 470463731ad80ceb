"""Make the built book self-contained: it must work offline and request nothing from outside the site.

Two things in a default jupyter-book 1 build reach outside:
- MathJax comes from a CDN. The PyPI package `sphinx-mathjax-offline` ships MathJax 3
  but installs it in a folder whose name has hyphens, so Sphinx cannot import it as an
  extension. We copy its files into `_build/html/_static/mathjax` and point Sphinx's
  `mathjax_path` at them.
- sphinx-thebe (live code cells through Binder, switched off in _config.yml) still adds
  its loader to every page, twice, which both names an unpkg.com URL and raises
  "Identifier 'THEBE_JS_URL' has already been declared". We drop its scripts and CSS.
"""

from importlib.metadata import distribution
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.fileutil import copy_asset

MATHJAX_PATH = "mathjax/tex-chtml.js"


def _mathjax_dir() -> Path:
    folder = Path(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (folder / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax not found at {folder}; pip install sphinx-mathjax-offline")
    return folder


def _copy_mathjax(app: Sphinx, exc: Exception | None) -> None:
    if exc is None and app.builder.format == "html":
        copy_asset(str(_mathjax_dir()), str(Path(app.outdir) / "_static" / "mathjax"))


def _is_thebe(asset: object) -> bool:
    text = f"{getattr(asset, 'filename', asset)} {getattr(asset, 'attributes', {}).get('body', '')}"
    return "thebe" in text.lower()


def _drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def setup(app: Sphinx) -> dict:
    _mathjax_dir()  # fail at start-up, not after a long build
    app.config.mathjax_path = MATHJAX_PATH
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
