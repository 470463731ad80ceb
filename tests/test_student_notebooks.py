"""`make exercises` (scripts/make_exercises.py): one student notebook per chapter, no solution left."""

from __future__ import annotations

import re

import nbformat
import pytest

from scripts.make_exercises import BOOK, remove_solutions, solution_blocks, write_exercises

CHAPTERS = sorted(BOOK.glob("ch[0-9][0-9]_*.ipynb"))


def _solution_sources(nb: nbformat.NotebookNode) -> tuple[set[str], set[str]]:
    """(sources of cells inside solution blocks, sources of all other cells), by a plain scan."""
    inside, outside, in_solution = set(), set(), False
    for cell in nb.cells:
        if "{solution-start}" in cell.source:
            in_solution = True
        (inside if in_solution else outside).add(cell.source.strip())
        if "{solution-end}" in cell.source:
            in_solution = False
    return inside - {""}, outside


def test_one_valid_notebook_per_chapter_and_no_solution_leaks(tmp_path) -> None:
    written = write_exercises(tmp_path)
    assert sorted(written) == [p.name for p in CHAPTERS]
    for path in CHAPTERS:
        original = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / path.name, as_version=4)
        nbformat.validate(student)
        n_exercises = sum(len(re.findall(r"```\{exercise\}", c.source)) for c in original.cells)
        assert len(written[path.name]) == n_exercises, f"{path.name}: an exercise has no removed solution"
        inside, outside = _solution_sources(original)
        leaked = (inside - outside) & {c.source.strip() for c in student.cells}
        assert not leaked, f"{path.name}: solution cells left in the student notebook: {list(leaked)[:2]}"
        assert not any("solution" in c.source and "{solution" in c.source for c in student.cells)
        assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")


def _nb(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(s) for s in sources])


def test_a_solution_is_replaced_by_a_stub() -> None:
    nb = _nb("```{exercise} E\n:label: ex-a\n\nDo it.\n```", "```{solution-start} ex-a\n```", "secret",
             "more secret\n\n```{solution-end}\n```", "after")
    student, labels = remove_solutions(nb)
    sources = [c.source for c in student.cells]
    assert labels == ["ex-a"]
    assert sources[0].startswith("```{exercise}") and sources[-1] == "after"
    assert not any("secret" in s for s in sources)
    assert "ex-a" in sources[1] and student.cells[2].cell_type == "code"


@pytest.mark.parametrize(
    "sources, message",
    [
        (("```{solution-start} ex-a\n```", "never closed"), "never closed"),
        (("```{solution-end}\n```",), "closes no open solution"),
        (("```{solution-start} a\n```", "```{solution-start} b\n```"), "opens inside"),
    ],
)
def test_malformed_solution_blocks_are_errors(sources, message) -> None:
    with pytest.raises(ValueError, match=message):
        remove_solutions(_nb(*sources))


def test_refuses_to_write_into_the_book() -> None:
    with pytest.raises(ValueError, match="overwrite the chapters"):
        write_exercises(BOOK / "exercises")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_solutions_start_collapsed_in_jupyterlab(path) -> None:
    """Every cell after a solution's opening cell is collapsed (JupyterLab's source_hidden)."""
    nb = nbformat.read(path, as_version=4)
    open_cells = [
        i for _, first, last in solution_blocks(nb.cells) for i in range(first + 1, last + 1)
        if not nb.cells[i].metadata.get("jupyter", {}).get("source_hidden")
    ]
    fix = "python scripts/make_exercises.py --collapse-in-place"
    assert not open_cells, f"{path.name}: solution cells {open_cells} are not collapsed ({fix})"
