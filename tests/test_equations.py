"""Equation <-> code <-> test: every docstring cites real labels, every labelled equation has its code or a reason.

The checks read the book, the package and the tests as text, with the functions of
book/_ext/equation_index.py, the Sphinx extension that draws the appendix "Equations, code
and tests" from the same functions at build time. Each check is run twice: on this
repository, and on a small synthetic one with planted errors, so that a check that cannot
fail would be caught here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import equation_index as ei  # noqa: E402


def _bullets(problems: list[str]) -> str:
    return "\n" + "\n".join(f"- {p}" for p in problems)


# ---------------------------------------------------------------------------
# This repository
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo():
    equations = ei.book_equations(ROOT)
    citations = ei.docstring_citations(ROOT)
    prose_only = ei.prose_only_equations(ROOT)
    return equations, citations, prose_only


def test_the_book_labels_are_found(repo):
    equations, _, _ = repo
    # a few labels and where they are, read off the chapters by hand
    assert equations["euler-step"].docname == "book/ch02_ode_euler"
    assert equations["ve-sigma-t"].docname == "book/ch05_ve_sde"
    assert equations["dsm-loss"].docname == "book/ch06_training"
    # exercise labels (`:label:` of an exercise block) are not equations
    assert not any(label.endswith(("-ex-1", "-ex-2")) for label in equations)


def test_docstrings_cite_only_labels_of_the_book(repo):
    """(a) `eq. (label)` in a docstring names an equation of the book; a paper's number is written 'eq. 4'."""
    equations, citations, _ = repo
    problems = ei.unknown_citations(equations, citations)
    assert not problems, "docstrings cite labels the book does not have:" + _bullets(problems)


def test_every_labelled_equation_is_computed_or_prose_only(repo):
    """(b) Each labelled equation is cited by a function's docstring, or listed with its reason as prose-only."""
    problems = ei.uncovered_equations(*repo)
    assert not problems, "equations with neither code nor a reason:" + _bullets(problems)


def test_the_prose_only_list_is_exact(repo):
    problems = ei.prose_only_problems(*repo)
    assert not problems, "fix book/_ext/prose_only_equations.yml:" + _bullets(problems)


def test_every_computed_equation_has_a_test_that_names_its_function():
    rows, _ = ei.build_index(ROOT)
    problems = ei.untested_equations(rows)
    assert not problems, "equations whose functions no test names:" + _bullets(problems)
    assert sum(1 for row in rows if row.functions) > len(rows) / 2  # most equations are computed


def test_the_appendix_page_draws_the_index_at_build_time(repo):
    _, citations, _ = repo
    assert "book/appendix_equations" in ei.toc_docnames(ROOT)
    assert "```{equation-index}" in (ROOT / "book" / "appendix_equations.md").read_text()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["equation_index"] == "book/_ext"
    # the page's worked example is true
    cited = {(c.obj, c.label) for c in citations}
    assert {("sbgm_edu.ode.euler_step", "euler-step"), ("sbgm_edu.ode.euler", "euler-step")} <= cited


# ---------------------------------------------------------------------------
# Planted errors: the checks fail on them, with messages that name the culprit
# ---------------------------------------------------------------------------

CHAPTER = [
    "# A chapter\n\nThe flow\n\n$$\nx' = f(x)\n$$ (flow)\n\nand its step\n\n$$ y = x + h f(x) $$ (step)\n",
    "```{exercise} Not an equation\n:label: ex-1\n\nText.\n```\n",
    "```{math}\n:label: lonely\n\na = b\n```\n\n$$\n(a + b)^2\n$$\n",
]
MODULE = '''\
"""A module that mentions eq. (flow) in its module docstring only."""

import abc


def step(x, h):
    """One step, eq. (step)."""
    return x


def flow(x):
    """The flow, eq. (flow); compare Karras et al. 2022, eq. (4), and Song et al. 2021, eq. 12."""
    return x


class Base(abc.ABC):
    @abc.abstractmethod
    def rate(self):
        """The rate of eq. (step)."""


class Child(Base):
    def rate(self):
        return 1.0


def typo():
    """Cites eq. (flwo)."""
'''


LAZY = '''\
"""A lazy re-export, as a module's __getattr__ does it."""


def __getattr__(name):
    from sbgm_edu import core

    return getattr(core, name)
'''


def _write_repo(root: Path, module: str = MODULE, prose: str = "", test_code: str = "") -> Path:
    (root / "book" / "_ext").mkdir(parents=True)
    (root / "sbgm_edu").mkdir()
    (root / "tests").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/ch1\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nNo equations here: $a$.\n")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in CHAPTER]
    cells.insert(1, {"cell_type": "code", "metadata": {}, "source": "s = '$$ (in-code) $$'", "outputs": []})
    (root / "book" / "ch1.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}}))
    (root / "sbgm_edu" / "__init__.py").write_text('"""The package."""\n')
    (root / "sbgm_edu" / "core.py").write_text(module)
    (root / "sbgm_edu" / "api.py").write_text('"""Re-exports."""\n\nfrom .core import Child, flow\n')
    (root / "sbgm_edu" / "lazy.py").write_text(LAZY)
    (root / "sbgm_edu" / "registry.py").write_text('from .core import step\n\nREGISTRY = {"stepper": dict(step)}\n')
    (root / ei.PROSE_ONLY_FILE).write_text(prose)
    (root / "tests" / "test_core.py").write_text(test_code)
    return root


def test_labels_are_read_from_dollar_math_and_math_directives_only(tmp_path):
    equations = ei.book_equations(_write_repo(tmp_path))
    assert list(equations) == ["flow", "step", "lonely"]  # not the exercise, not the code cell
    assert equations["lonely"].where == "book/ch1.ipynb, cell 3"


def test_planted_bad_citations_are_reported_with_place_and_hint(tmp_path):
    root = _write_repo(tmp_path)
    problems = ei.unknown_citations(ei.book_equations(root), ei.docstring_citations(root))
    assert problems == [
        "sbgm_edu/core.py:12: the docstring of sbgm_edu.core.flow cites eq. (4), but the book has no equation "
        "labelled '4'" + ei.PAPER_HINT,
        "sbgm_edu/core.py:28: the docstring of sbgm_edu.core.typo cites eq. (flwo), but the book has no "
        "equation labelled 'flwo'",
    ]


def test_planted_uncovered_equation_is_reported(tmp_path):
    root = _write_repo(tmp_path)
    equations, citations = ei.book_equations(root), ei.docstring_citations(root)
    # "flow" is cited by a module docstring (which computes nothing) and by the function flow;
    # "lonely" by nothing at all
    problems = ei.uncovered_equations(equations, citations, {})
    assert len(problems) == 1 and problems[0].startswith("equation (lonely) in book/ch1.ipynb, cell 3 is cited by no")
    assert ei.uncovered_equations(equations, citations, {"lonely": "an example"}) == []
    without_flow = [c for c in citations if c.obj != "sbgm_edu.core.flow"]
    assert [p.split(" in ")[0] for p in ei.uncovered_equations(equations, without_flow, {})] == [
        "equation (flow)",  # a module docstring does not count
        "equation (lonely)",
    ]


def test_planted_prose_only_mistakes_are_reported(tmp_path):
    prose = "step: cited by step anyway\nlonely:\nstale: not a label\nflow: see eq. (nope)\n"
    root = _write_repo(tmp_path, prose=prose)
    sources = ei.book_equations(root), ei.docstring_citations(root), ei.prose_only_equations(root)
    problems = ei.prose_only_problems(*sources)
    f = ei.PROSE_ONLY_FILE
    assert problems == [
        f"{f} lists 'step' as prose-only, but the docstring of sbgm_edu.core.step cites it "
        "(sbgm_edu/core.py:7): remove 'step' from the file",
        f"{f} lists 'lonely' without a reason",
        f"{f} lists 'stale', but the book has no equation with that label",
        f"{f} lists 'flow' as prose-only, but the docstring of sbgm_edu.core.flow cites it "
        "(sbgm_edu/core.py:12): remove 'flow' from the file",
        f"{f}: the reason given for 'flow' cites eq. (nope), but the book has no such label",
    ]


TESTS = '''\
import pytest

from sbgm_edu import core
from sbgm_edu.api import flow as the_flow

CASES = [core.Child()]


@pytest.fixture
def helper():
    return the_flow


def test_flow_through_a_fixture_and_a_re_export(helper):
    assert helper(1) == 1


@pytest.mark.parametrize("obj", CASES)
def test_rate_of_an_implementation(obj):
    assert obj.rate() == 1.0


def test_nothing_of_ours():
    assert "step" != "flow"
'''


def test_tests_are_found_by_the_names_they_use(tmp_path):
    root = _write_repo(tmp_path, prose="lonely: an example\n", test_code=TESTS)
    rows, problems = ei.build_index(root)
    tests = {row.equation.label: row.tests for row in rows}
    assert tests["flow"] == {"sbgm_edu.core.flow": ["tests/test_core.py::test_flow_through_a_fixture_and_a_re_export"]}
    # the abstract Base.rate is exercised through Child (named in a constant the test is parametrised with)
    assert tests["step"] == {
        "sbgm_edu.core.step": [],
        "sbgm_edu.core.Base.rate": ["tests/test_core.py::test_rate_of_an_implementation"],
    }
    assert tests["lonely"] == {}
    assert not ei.untested_equations(rows)
    assert problems == ei.unknown_citations(ei.book_equations(root), ei.docstring_citations(root))  # only (a)


def test_re_exports_are_followed_to_the_definition(tmp_path):
    index = ei.package_index(_write_repo(tmp_path))
    assert index.resolve("sbgm_edu.api.flow") == "sbgm_edu.core.flow"  # from .core import flow
    assert index.resolve("sbgm_edu.api.Child.rate") == "sbgm_edu.core.Child.rate"
    assert index.resolve("sbgm_edu.lazy.step") == "sbgm_edu.core.step"  # through __getattr__
    assert index.resolve("sbgm_edu.lazy.nothing") == "sbgm_edu.lazy.nothing"
    assert index.owner("sbgm_edu.core.Child", "rate") == "sbgm_edu.core.Child"
    assert index.is_subclass("sbgm_edu.core.Child", "sbgm_edu.core.Base")
    assert "sbgm_edu.core.Base.rate" in index.abstract
    # a registry entry: a test that calls solve(..., "stepper") names core.step
    assert index.registries == {"stepper": "sbgm_edu.core.step"}
    assert ei.mentions_object(ei.Mentions(strings={"stepper"}), "sbgm_edu.core.step", index)
    assert not ei.mentions_object(ei.Mentions(strings={"step"}), "sbgm_edu.core.step", index)


def test_an_equation_whose_functions_no_test_names_is_reported(tmp_path):
    root = _write_repo(tmp_path, prose="lonely: an example\n", test_code="def test_nothing():\n    pass\n")
    rows, problems = ei.build_index(root)
    untested = ei.untested_equations(rows)
    assert [p.split(" in ")[0] for p in untested] == ["equation (flow)", "equation (step)"]
    assert "computed by sbgm_edu.core.step, sbgm_edu.core.Base.rate, but no test" in untested[1]
    assert set(untested) <= set(problems)


def test_a_planted_bad_citation_in_a_copy_of_this_repository_is_caught(tmp_path):
    copy = tmp_path / "repo"
    for name in ("book", "sbgm_edu", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("*.pt", "*.npz", "__pycache__"))
    shutil.copy(ROOT / "_toc.yml", copy / "_toc.yml")
    before = ei.docstring_citations(copy)
    ode = copy / "sbgm_edu" / "ode.py"
    ode.write_text(ode.read_text().replace("eq. (euler-step): x + h f(x, t)", "eq. (euler-stepp): x + h f(x, t)"))
    equations, citations = ei.book_equations(copy), ei.docstring_citations(copy)
    assert len(citations) == len(before)
    new = set(ei.unknown_citations(equations, citations)) - set(ei.unknown_citations(equations, before))
    assert len(new) == 1 and "sbgm_edu.ode.euler_step cites eq. (euler-stepp)" in new.pop()


# ---------------------------------------------------------------------------
# The Sphinx directive, on the synthetic repository (a real, small Sphinx build)
# ---------------------------------------------------------------------------

CONF = """\
import sys
sys.path.insert(0, {ext!r})
extensions = ["myst_parser", "equation_index"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
equation_index_root = "."
exclude_patterns = ["_build", "tests", "sbgm_edu"]
suppress_warnings = ["myst.header"]
"""


def _sphinx(root: Path) -> subprocess.CompletedProcess:
    (root / "conf.py").write_text(CONF.format(ext=str(ROOT / "book" / "_ext")))
    (root / "index.md").write_text("# Index\n\n```{toctree}\nbook/ch1\nbook/api\nbook/appendix\n```\n")
    # an API page that documents one function (as autodoc would): the index links to it
    (root / "book" / "api.md").write_text("# API\n\n```{py:function} sbgm_edu.core.flow(x)\n\nThe flow.\n```\n")
    (root / "book" / "appendix.md").write_text("# Equations\n\n```{equation-index}\n```\n")
    (root / "book" / "ch1.md").write_text("".join(CHAPTER[:1] + CHAPTER[2:]))
    (root / "book" / "ch1.ipynb").unlink()  # the same chapter as markdown: no notebook reader needed
    (root / "book" / "intro.md").unlink()
    (root / "_toc.yml").write_text("root: index\nchapters:\n  - file: book/ch1\n")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q"]
    cmd += [str(root), str(root / "_build")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def test_the_directive_draws_links_functions_and_tests(tmp_path):
    fixed = MODULE.replace("eq. (4)", "eq. 4").replace("eq. (flwo)", "eq. (flow)")  # typo() now cites flow
    root = _write_repo(tmp_path, module=fixed, prose="lonely: an example, see eq. (flow)\n", test_code=TESTS)
    result = _sphinx(root)
    assert result.returncode == 0, result.stderr
    page = (root / "_build" / "book" / "appendix.html").read_text()
    assert 'href="ch1.html#equation-flow"' in page and 'href="ch1.html#equation-lonely"' in page
    assert "core.flow" in page and "test_core.py::test_flow_through_a_fixture_and_a_re_export" in page
    assert 'href="api.html#sbgm_edu.core.flow"' in page  # documented: linked; the others: plain text
    assert "core.Base.rate" in page and "named by no test" in page  # core.step
    assert "Prose only: " in page and "an example, see eq." in page
    assert "3 labelled equations: 2 computed by 4 functions and classes of sbgm_edu, 1 prose only." in page


def test_the_build_fails_on_a_planted_problem(tmp_path):
    root = _write_repo(tmp_path, prose="lonely: an example\n", test_code=TESTS)  # MODULE cites eq. (4), eq. (flwo)
    result = _sphinx(root)
    assert result.returncode != 0
    assert "sbgm_edu.core.typo cites eq. (flwo)" in result.stderr
    assert "sbgm_edu.core.flow cites eq. (4)" in result.stderr

