"""Student notebooks: every chapter with its solutions removed, ready to hand out.

    python scripts/make_exercises.py              # writes _build/exercises/chNN_*.ipynb
    python scripts/make_exercises.py --out DIR    # somewhere else (never into book/)
    python scripts/make_exercises.py --collapse-in-place   # mark the chapters' solution cells collapsed

Chapters write each solution as a gated block (sphinx-exercise):

    ```{solution-start} ch7-ex-eps       <- a markdown cell opening the solution
    ...                                  <- any cells: code and text of the solution
    ... ```{solution-end}                <- the cell that closes it

Everything from the opening cell to the closing cell is replaced by a stub: a markdown cell
naming the exercise and an empty code cell. Outputs are cleared; the exercises themselves,
the text and the code of the chapter are kept, so the notebook still runs from the top.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
DEFAULT_OUT = ROOT / "_build" / "exercises"
SOLUTION_START = re.compile(r"^```\{solution-start\}\s+(\S+)", re.MULTILINE)
SOLUTION_END = re.compile(r"^```\{solution-end\}", re.MULTILINE)


def stub_cells(label: str) -> list[nbformat.NotebookNode]:
    """What replaces the solution of exercise `label`: a prompt and an empty code cell."""
    prompt = nbformat.v4.new_markdown_cell(f"**Your solution to {{ref}}`{label}`** (write it below).")
    return [prompt, nbformat.v4.new_code_cell("")]


def solution_blocks(cells: list[nbformat.NotebookNode]) -> list[tuple[str, int, int]]:
    """(label, first, last): the cells cells[first:last + 1] of each solution block, in order.

    Raises ValueError if a solution block is opened and never closed, closed without being
    opened, or opened inside another, so that a malformed chapter can never leak a solution.
    """
    blocks, open_label, first = [], None, 0
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        start, end = SOLUTION_START.search(cell.source), SOLUTION_END.search(cell.source)
        if start:
            if open_label is not None:
                raise ValueError(f"solution {start.group(1)!r} opens inside solution {open_label!r}")
            open_label, first = start.group(1), i
        if end:
            if open_label is None:
                raise ValueError("a {solution-end} closes no open solution")
            blocks.append((open_label, first, i))
            open_label = None
    if open_label is not None:
        raise ValueError(f"solution {open_label!r} is never closed by {{solution-end}}")
    return blocks


def remove_solutions(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of `nb` with every solution block replaced by `stub_cells`, outputs cleared.

    Returns the new notebook and the labels of the exercises whose solutions were removed.
    """
    out = copy.deepcopy(nb)
    blocks = solution_blocks(nb.cells)
    cells, kept_from = [], 0
    for label, first, last in blocks:
        cells += [_cleared(c) for c in nb.cells[kept_from:first]] + stub_cells(label)
        kept_from = last + 1
    out.cells = cells + [_cleared(c) for c in nb.cells[kept_from:]]
    return out, [label for label, _, _ in blocks]


def collapse_solutions(nb: nbformat.NotebookNode) -> int:
    """Mark the cells inside solution blocks as collapsed in JupyterLab (in place); returns how many.

    The opening cell stays visible (jupyterlab-myst shows it as a closed "Solution" box); the
    cells after it get `metadata.jupyter.source_hidden` (and `outputs_hidden` for code), which
    JupyterLab shows as a collapsed cell that one click opens. The HTML book ignores this metadata.
    """
    n = 0
    for _, first, last in solution_blocks(nb.cells):
        for cell in nb.cells[first + 1 : last + 1]:
            hidden = {"source_hidden": True} | ({"outputs_hidden": True} if cell.cell_type == "code" else {})
            cell.metadata.setdefault("jupyter", {}).update(hidden)
            n += 1
    return n


def _cleared(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def write_exercises(out_dir: Path = DEFAULT_OUT, book: Path = BOOK) -> dict[str, list[str]]:
    """Write one student notebook per chapter (book/chNN_*.ipynb) into `out_dir`.

    Returns {file name: labels of the removed solutions}. Refuses to write into `book`.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir == Path(book).resolve() or Path(book).resolve() in out_dir.parents:
        raise ValueError(f"out must not be inside the book's sources {book}: it would overwrite the chapters")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in sorted(Path(book).glob("ch[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        student, labels = remove_solutions(nb)
        nbformat.validate(student)
        nbformat.write(student, out_dir / path.name)
        written[path.name] = labels
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: _build/exercises)")
    parser.add_argument("--collapse-in-place", action="store_true",
                        help="instead: mark the solution cells of the chapters collapsed in JupyterLab (edits them)")
    args = parser.parse_args(argv)
    if args.collapse_in_place:
        for path in sorted(BOOK.glob("ch[0-9][0-9]_*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            print(f"{path}: {collapse_solutions(nb)} solution cell(s) collapsed")
            nbformat.write(nb, path)
        return 0
    written = write_exercises(args.out)
    for name, labels in written.items():
        print(f"{args.out / name}: {len(labels)} solution(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
