"""Repository hygiene for the chapters: committed notebooks hold no outputs, and every chapter is in the book."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} hold outputs; run `make clean-notebooks` before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_standard_kernel(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3", f"{path.name}: kernel must be python3"


def test_every_chapter_is_in_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {entry["file"] for part in toc["parts"] for entry in part["chapters"]}
    for path in NOTEBOOKS:
        assert f"book/{path.stem}" in listed, f"{path.name} is not listed in _toc.yml"


# Text that points outside the repository, to the authors' planning notes (spelled in pieces so
# that this file does not match itself).
OUTSIDE_REFERENCES = ("DESIGN" + ".md", "../" + "shared/", "/work/" + "shared")
SHIPPED_TEXT = ["README.md", "Makefile", "_toc.yml", "_config.yml", "requirements.txt", "pyproject.toml", ".ci/*",
                "book/*.md", "book/*.ipynb", "book/*.bib", "book/_ext/*", "sbgm_edu/**/*.py", "tests/**/*.py",
                "scripts/**/*.py", "benchmarks/**/*.py"]


def test_repository_stands_alone():
    """No shipped file refers to documents outside the repository: a reader has only the repository."""
    found = []
    for pattern in SHIPPED_TEXT:
        for path in sorted(ROOT.glob(pattern)):
            if path.is_file():
                text = path.read_text(errors="replace")
                found += [f"{path.relative_to(ROOT)}: {ref!r}" for ref in OUTSIDE_REFERENCES if ref in text]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def test_chapters_are_numbered_by_the_table_of_contents():
    """Chapter numbers come from the numbered part of _toc.yml (so figures read Fig. 7.3), in file order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [part for part in toc["parts"] if part.get("numbered")]
    assert len(numbered) == 1, "exactly one numbered part (the chapters)"
    files = [entry["file"] for entry in numbered[0]["chapters"]]
    chapters = sorted(f"book/{p.stem}" for p in NOTEBOOKS if p.stem[:2] == "ch" and p.stem[2:4].isdigit())
    assert files == chapters, "the numbered part lists the chNN_ notebooks in order"
    for number, path in enumerate(sorted(p for p in NOTEBOOKS if p.stem[2:4].isdigit()), start=1):
        assert int(path.stem[2:4]) == number, f"{path.name}: file number and chapter number differ"
        title = json.loads(path.read_text())["cells"][0]["source"][0]
        assert not re.match(r"#\s*\d", title), f"{path.name}: the title types its number ({title.strip()!r})"


def test_bibliography_parses_and_has_no_duplicate_keys():
    """references.bib is valid BibTeX (a broken entry stops the whole build) with unique keys."""
    from pybtex.database import parse_string

    text = (ROOT / "book" / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.MULTILINE)
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted(k for k in keys if keys.count(k) > 1)}"
    assert len(parse_string(text, "bibtex").entries) == len(keys)
