"""The API reference appendix, generated from the docstrings of `sbgm_edu` at build time.

The page `book/appendix_api.md` holds one directive, ``api-modules``, which writes an
``automodule`` entry for every public module of the package (found by pkgutil, so a new
module appears without editing the page). Docstrings in `sbgm_edu` are plain text with ASCII
mathematics (``x * y``, ``|x|``), not reStructuredText, so each is shown as written, in a
literal block; every ``eq. (label)`` it cites becomes a link to that equation of the book,
and the equation index (`equation_index.py`) links back from each equation to its functions.
Type hints stay in the signatures; those naming classes outside this book (torch.Tensor,
collections.abc.Callable, ...) are not cross-referenced.
"""

from __future__ import annotations

import pkgutil
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

PACKAGE = "sbgm_edu"
EQ_CITATION = re.compile(r"eq\. \(([A-Za-z0-9_-]+)\)")


def public_modules(package: str = PACKAGE) -> list[str]:
    """Dotted names of the package's public modules (no leading underscore), sorted."""
    module = __import__(package)
    return sorted(
        f"{package}.{info.name}" for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_")
    )


def docstring_as_literal(lines: list[str]) -> list[str]:
    """A docstring's lines as an rST literal block, followed by links to the equations it cites."""
    if not any(line.strip() for line in lines):
        return []
    labels = list(dict.fromkeys(EQ_CITATION.findall("\n".join(lines))))
    out = ["::", ""] + [f"    {line}" if line.strip() else "" for line in lines] + [""]
    if labels:
        out += ["Book equations: " + ", ".join(f":math:numref:`{label}`" for label in labels), ""]
    return out


def _process_docstring(app: Sphinx, what: str, name: str, obj: object, options: dict, lines: list[str]) -> None:
    if name.startswith(PACKAGE):
        lines[:] = docstring_as_literal(list(lines))


class ApiModules(SphinxDirective):
    """``api-modules`` (in a MyST page): a section with ``automodule`` for each public module of `sbgm_edu`."""

    def run(self) -> list[nodes.Node]:
        source = StringList()
        for name in public_modules():  # MyST source: autodoc runs inside an eval-rst block
            automodule = [f".. automodule:: {name}", "   :members:", "   :ignore-module-all:"]
            for line in [f"## `{name}`", "", "```{eval-rst}", *automodule, "```", ""]:
                source.append(line, "<api-modules>")
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, source, container)
        return container.children


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _process_docstring)
    app.add_directive("api-modules", ApiModules)
    app.config.autodoc_member_order = "bysource"
    app.config.nitpick_ignore_regex = [*app.config.nitpick_ignore_regex, ("py:(class|obj|data)", r"(?!sbgm_edu).*")]
    return {"parallel_read_safe": True, "parallel_write_safe": True}
