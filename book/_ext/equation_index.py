"""Equation <-> code <-> test: find each labelled equation of the book, the code that cites it, the tests.

Three sources, read as text (nothing is imported or executed):

- the book: every labelled display equation, `$$ ... $$ (label)` or a ```{math} block with
  `:label:`, in the markdown of the files listed in `_toc.yml`;
- the package: every docstring of `sbgm_edu` (module, class, function, method) that cites a
  book equation as `eq. (label)`. A paper's equation number is written without parentheses
  ("Karras et al. 2022, eq. 4"), so anything in `eq. (...)` must be a label of the book;
- the tests: a test "checks" a function when the test's code mentions it: calls it, or
  passes it on, directly or through a module-level helper, fixture or constant of the same
  test file; a method counts when the test uses a class that has it (its own or inherited)
  and an attribute of that name. This is a static, name-based reading: it lists the tests
  that exercise a function by name, not every test that reaches it indirectly, and it says
  nothing about what a test asserts.

An equation that no function computes (a derivation step, an example, a special case shown
for intuition) is listed, with its reason, in `prose_only_equations.yml` next to this file.

`check(root)` returns the problems the tests in `tests/test_equations.py` report; the Sphinx
directive `equation-index` draws the table of the appendix "Equations, code and tests" at
build time, from the same functions.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PROSE_ONLY_FILE = "book/_ext/prose_only_equations.yml"
PACKAGE = "sbgm_edu"

DOLLAR_LABEL = re.compile(r"\$\$[ \t]*\(([^()\s]+)\)[ \t]*$", re.MULTILINE)
MATH_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{math\}[^\n]*\n((?:[ \t]*:[\w-]+:[^\n]*\n)*)", re.MULTILINE)
DIRECTIVE_LABEL = re.compile(r"^[ \t]*:label:[ \t]*(\S+)", re.MULTILINE)
CITATION = re.compile(r"\beq\.\s*\(([^()]*)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Equation:
    """A labelled display equation of the book."""

    label: str
    docname: str  # e.g. "book/ch02_ode_euler"
    where: str  # e.g. "book/ch02_ode_euler.ipynb, cell 5"


@dataclass(frozen=True)
class Citation:
    """`eq. (label)` in the docstring of `obj` (a module, class, function or method of sbgm_edu)."""

    label: str
    obj: str  # qualified name, e.g. "sbgm_edu.ode.euler_step" or "sbgm_edu.sde.VESDE.marginal_std"
    kind: str  # "module", "class" or "function"
    where: str  # e.g. "sbgm_edu/ode.py:23"


@dataclass
class Row:
    """One line of the index: an equation, the functions that cite it, the tests of those functions."""

    equation: Equation
    functions: list[str] = field(default_factory=list)
    tests: dict[str, list[str]] = field(default_factory=dict)  # function -> test ids
    prose_only: str | None = None  # the reason, when no function computes it


# ---------------------------------------------------------------------------
# The book's labels
# ---------------------------------------------------------------------------


def toc_docnames(root: Path) -> list[str]:
    """The docnames listed in `_toc.yml` (root first), in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries: Iterable[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key, []))

    walk(toc.get("chapters", []))
    walk(toc.get("parts", []))
    return names


def markdown_blocks(path: Path) -> Iterator[tuple[str, str]]:
    """(text, where) for each markdown cell of a notebook, or the whole of a .md file."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                yield "".join(cell["source"]), f"{path.name}, cell {i}"
    else:
        yield path.read_text(), path.name


def labels_in_markdown(text: str) -> list[str]:
    """The equation labels in one markdown text: `$$ ... $$ (label)` and ```{math} with :label:."""
    labels = [(m.start(), m.group(1)) for m in DOLLAR_LABEL.finditer(text)]
    for m in MATH_DIRECTIVE.finditer(text):
        options = DIRECTIVE_LABEL.search(m.group(2))
        if options:
            labels.append((m.start(), options.group(1)))
    return [label for _, label in sorted(labels)]


def book_equations(root: Path) -> dict[str, Equation]:
    """Every labelled equation of the book, by label, in reading order. A repeated label raises ValueError."""
    found: dict[str, Equation] = {}
    for docname in toc_docnames(root):
        path = next((root / f"{docname}{s}" for s in (".ipynb", ".md") if (root / f"{docname}{s}").exists()), None)
        if path is None:
            continue  # jupyter-book reports a missing file itself
        for text, where in markdown_blocks(path):
            for label in labels_in_markdown(text):
                if label in found:
                    raise ValueError(f"equation label {label!r} is used twice: {found[label].where} and {where}")
                found[label] = Equation(label, docname, f"book/{where}")
    return found


# ---------------------------------------------------------------------------
# The package's docstrings
# ---------------------------------------------------------------------------


def package_modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package (e.g. "sbgm_edu.ode")."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _documented(tree: ast.Module, module: str) -> Iterator[tuple[str, str, ast.AST]]:
    """(qualified name, kind, node) for the module and every class and function in it, nested too."""
    yield module, "module", tree
    stack = [(module, node) for node in tree.body]
    while stack:
        prefix, node = stack.pop(0)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}.{node.name}"
            yield name, "class" if isinstance(node, ast.ClassDef) else "function", node
            stack.extend((name, child) for child in node.body)


def docstring_citations(root: Path) -> list[Citation]:
    """Every `eq. (...)` in a docstring of the package, with the object and line that cite it."""
    citations = []
    for module, path in package_modules(root).items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, kind, node in _documented(tree, module):
            body = getattr(node, "body", [])
            if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                continue
            doc = body[0].value
            if not isinstance(doc.value, str):
                continue
            for m in CITATION.finditer(doc.value):
                line = doc.lineno + doc.value[: m.start()].count("\n")
                where = f"{path.relative_to(root).as_posix()}:{line}"
                citations.append(Citation(m.group(1).strip(), name, kind, where))
    return citations


def prose_only_equations(root: Path) -> dict[str, str]:
    """Label -> reason, from prose_only_equations.yml (an empty file is an empty list)."""
    data = yaml.safe_load((root / PROSE_ONLY_FILE).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{PROSE_ONLY_FILE} must map each label to its reason")
    return {str(label): "" if reason is None else str(reason).strip() for label, reason in data.items()}


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


PAPER_HINT = " (a paper's equation number is written without parentheses: 'Karras et al. 2022, eq. 4')"


def unknown_citations(equations: dict[str, Equation], citations: list[Citation]) -> list[str]:
    """(a) Docstrings that cite `eq. (x)` where the book has no equation labelled x."""
    problems = []
    for c in citations:
        if c.label not in equations:
            hint = "" if re.fullmatch(r"[A-Za-z][\w-]*", c.label) else PAPER_HINT
            problems.append(
                f"{c.where}: the docstring of {c.obj} cites eq. ({c.label}), "
                f"but the book has no equation labelled {c.label!r}{hint}"
            )
    return problems


def computing_citations(equations: dict[str, Equation], citations: list[Citation]) -> dict[str, Citation]:
    """Label -> the first citation of it in the docstring of a class or function (not a module)."""
    computed: dict[str, Citation] = {}
    for c in citations:
        if c.kind != "module" and c.label in equations:
            computed.setdefault(c.label, c)
    return computed


def uncovered_equations(
    equations: dict[str, Equation], citations: list[Citation], prose_only: dict[str, str]
) -> list[str]:
    """(b) Equations cited by no docstring of a class or function and not listed as prose-only."""
    computed = computing_citations(equations, citations)
    return [
        f"equation ({label}) in {eq.where} is cited by no docstring of a class or function in {PACKAGE} "
        f"and is not listed in {PROSE_ONLY_FILE}: cite it as eq. ({label}) in the docstring of the "
        f"function that computes it, or add '{label}: <why no function computes it>' to that file"
        for label, eq in equations.items()
        if label not in computed and label not in prose_only
    ]


def prose_only_problems(
    equations: dict[str, Equation], citations: list[Citation], prose_only: dict[str, str]
) -> list[str]:
    """Entries of the prose-only list that are not labels, have no reason, or that a function cites."""
    computed = computing_citations(equations, citations)
    problems = []
    for label, reason in prose_only.items():
        if label not in equations:
            problems.append(f"{PROSE_ONLY_FILE} lists {label!r}, but the book has no equation with that label")
        elif not reason:
            problems.append(f"{PROSE_ONLY_FILE} lists {label!r} without a reason")
        elif label in computed:
            c = computed[label]
            problems.append(
                f"{PROSE_ONLY_FILE} lists {label!r} as prose-only, but the docstring of {c.obj} "
                f"cites it ({c.where}): remove {label!r} from the file"
            )
        problems += [
            f"{PROSE_ONLY_FILE}: the reason given for {label!r} cites eq. ({cited}), but the book has no such label"
            for cited in CITATION.findall(reason)
            if cited not in equations
        ]
    return problems


def find_problems(
    equations: dict[str, Equation], citations: list[Citation], prose_only: dict[str, str]
) -> list[str]:
    """Every way the three sources disagree, one message each, naming the label and the place."""
    return (
        unknown_citations(equations, citations)
        + uncovered_equations(equations, citations, prose_only)
        + prose_only_problems(equations, citations, prose_only)
    )


# ---------------------------------------------------------------------------
# The tests that mention each function
# ---------------------------------------------------------------------------


@dataclass
class PackageIndex:
    """What the package defines, and what it re-exports, read from its source."""

    defined: set[str] = field(default_factory=set)  # classes, functions, methods (qualified)
    aliases: dict[str, str] = field(default_factory=dict)  # "sbgm_edu.train.f" -> "sbgm_edu.losses.f"
    bases: dict[str, list[str]] = field(default_factory=dict)  # class -> its base classes
    methods: dict[str, set[str]] = field(default_factory=dict)  # class -> the names defined in its body
    abstract: set[str] = field(default_factory=set)  # methods with no body of their own
    registries: dict[str, str] = field(default_factory=dict)  # "heun" -> "sbgm_edu.solvers.heun_t"
    modules: set[str] = field(default_factory=set)  # "sbgm_edu", "sbgm_edu.ode", ...
    top_level: dict[str, list[str]] = field(default_factory=dict)  # "euler" -> ["sbgm_edu.ode.euler"]

    def resolve(self, name: str) -> str:
        """Follow re-exports until `name` is where the object is defined (or nothing more is known).

        A re-export is an import in a module of the package (`from .losses import dsm_loss`); a
        name that a module neither defines nor imports (a lazy re-export through the module's
        `__getattr__`) stands for the package's only top-level object of that name, if there is one.
        """
        for _ in range(20):
            if name in self.defined:
                return name
            parts = name.split(".")
            prefixes = [".".join(parts[:k]) for k in range(len(parts), 0, -1)]
            prefix = next((p for p in prefixes if p in self.aliases), None)
            if prefix is not None:
                name = self.aliases[prefix] + name[len(prefix) :]
                continue
            module = next((p for p in prefixes if p in self.modules), None)
            rest = parts[module.count(".") + 1 :] if module else []
            candidates = self.top_level.get(rest[0], []) if rest else []
            if len(candidates) != 1:
                return name
            name = ".".join([candidates[0], *rest[1:]])
        return name

    def is_subclass(self, cls: str, base: str) -> bool:
        """Is `cls` the class `base` or derived from it?"""
        return cls == base or any(self.is_subclass(self.resolve(b), base) for b in self.bases.get(cls, []))

    def owner(self, cls: str, method: str) -> str | None:
        """The class whose body defines `method` for instances of `cls` (its own, or the first base's that has it)."""
        if method in self.methods.get(cls, set()):
            return cls
        for base in self.bases.get(cls, []):
            found = self.owner(self.resolve(base), method)
            if found:
                return found
        return None


def _import_table(tree: ast.Module, package: str | None = None) -> dict[str, str]:
    """Local name -> qualified name, for every import of the package in `tree` (any depth).

    `package` is the package a relative import (`from .x import y`) is relative to.
    """
    table = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    table[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else PACKAGE
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level and package is not None:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{source}" if source else base
            if source.split(".")[0] == PACKAGE:
                for alias in node.names:
                    table[alias.asname or alias.name] = f"{source}.{alias.name}"
    return table


def _dotted(node: ast.AST, table: dict[str, str]) -> str | None:
    """The qualified name an expression such as `ode.euler` or `VESDE.drift` stands for, if it is the package's."""
    if isinstance(node, ast.Name):
        return table.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, table)
        return f"{base}.{node.attr}" if base else None
    return None


def package_index(root: Path) -> PackageIndex:
    """Read the package's definitions, base classes and re-exports (`from .losses import dsm_loss`)."""
    index = PackageIndex()
    for module, path in package_modules(root).items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        top_level_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        imported = _import_table(ast.Module(body=top_level_imports, type_ignores=[]), package)
        index.aliases.update({f"{module}.{local}": target for local, target in imported.items()})
        index.modules.add(module)
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                index.top_level.setdefault(node.name, []).append(f"{module}.{node.name}")
        table = {**imported, **{n.name: f"{module}.{n.name}" for n in tree.body if isinstance(n, ast.ClassDef)}}
        for name, kind, node in _documented(tree, module):
            if kind == "module":
                continue
            index.defined.add(name)
            if isinstance(node, ast.ClassDef):
                index.bases[name] = [b for b in (_dotted(base, table) for base in node.bases) if b]
                functions = (ast.FunctionDef, ast.AsyncFunctionDef)
                index.methods[name] = {c.name for c in node.body if isinstance(c, functions)}
            elif _is_abstract(node):
                index.abstract.add(name)
        index.registries.update(_registry_entries(tree, module, table))
    return index


def _is_abstract(node: ast.AST) -> bool:
    """A function decorated with @abstractmethod, or whose body is only a docstring and `raise NotImplementedError`."""
    if any("abstractmethod" in ast.unparse(d) for d in node.decorator_list):
        return True
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def _registry_entries(tree: ast.Module, module: str, table: dict[str, str]) -> dict[str, str]:
    """Name -> function for module-level dicts such as {"heun": heun_t} or {"heun": SolverSpec(heun_t, ...)}."""
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    entries = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if not isinstance(value, ast.Dict):
            continue
        for key, item in zip(value.keys, value.values):
            if isinstance(item, ast.Call):
                named = [k.value for k in item.keywords if k.arg == "function"]
                item = item.args[0] if item.args else (named[0] if named else None)
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(item, ast.Name):
                if item.id in functions:
                    entries[key.value] = f"{module}.{item.id}"
                elif item.id in table:
                    entries[key.value] = table[item.id]
    return entries


@dataclass
class Mentions:
    """What a piece of test code names: package objects (qualified), attribute names, local names."""

    objects: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)

    def update(self, other: Mentions) -> None:
        self.objects |= other.objects
        self.attributes |= other.attributes
        self.names |= other.names
        self.strings |= other.strings


def _mentions(nodes: Iterable[ast.AST], table: dict[str, str], index: PackageIndex) -> Mentions:
    """Everything `nodes` name; a function's parameters count as names (pytest fixtures)."""
    found = Mentions()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Name):
                found.names.add(node.id)
            elif isinstance(node, ast.arg):
                found.names.add(node.arg)
            elif isinstance(node, ast.Attribute):
                found.attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.strings.add(node.value)
            qualified = _dotted(node, table)
            if qualified:
                found.objects.add(index.resolve(qualified))
    return found


def _module_level_code(tree: ast.Module) -> tuple[dict[str, list[ast.AST]], list[tuple[str, ast.AST]]]:
    """Module-level helpers (functions, fixtures, constants) by name, and the tests (name, node)."""
    helpers: dict[str, list[ast.AST]] = {}
    tests = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            helpers.setdefault(node.name, []).append(node)
            if node.name.startswith("test"):
                tests.append((node.name, node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        helpers.setdefault(name.id, []).append(node)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            tests.extend(
                (f"{node.name}::{m.name}", m)
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name.startswith("test")
            )
    return helpers, tests


def mentions_by_test(root: Path, index: PackageIndex) -> dict[str, Mentions]:
    """Test id ("tests/test_x.py::test_y") -> what the test names, through the helpers of its file.

    A test's own code, its decorators (e.g. parametrize lists) and, transitively, every
    module-level function, fixture or constant of its file (or of the conftest.py beside it)
    that it names.
    """
    found = {}
    for path in sorted((root / "tests").rglob("test_*.py")):
        trees = [ast.parse(p.read_text(), filename=str(p)) for p in (path.parent / "conftest.py", path) if p.exists()]
        helpers: dict[str, list[ast.AST]] = {}
        tests: list[tuple[str, ast.AST]] = []
        table: dict[str, str] = {}
        for tree in trees:
            more_helpers, tests = _module_level_code(tree)  # the tests of the last tree: the test file
            helpers.update(more_helpers)
            table.update(_import_table(tree))
        for name, node in tests:
            mentions = _mentions([node], table, index)
            seen = {name.rsplit("::", 1)[-1]}
            todo = [n for n in mentions.names if n in helpers and n not in seen]
            while todo:
                helper = todo.pop()
                seen.add(helper)
                more = _mentions(helpers[helper], table, index)
                mentions.update(more)
                todo.extend(n for n in more.names if n in helpers and n not in seen and n not in todo)
            found[f"{path.relative_to(root).as_posix()}::{name}"] = mentions
    return found


def mentions_object(mentions: Mentions, obj: str, index: PackageIndex) -> bool:
    """Does a test name `obj`?

    Directly (`euler_step`, `ode.euler_step`, `VESDE.drift`), or by its name in a registry
    such as the solvers' (`solve(..., "heun")`), or, for a method, as `.method` used in a test
    that names a class having that method: its own or inherited, or, for an abstract method,
    any implementation of it in a subclass.
    """
    if obj in mentions.objects or any(index.registries.get(s) == obj for s in mentions.strings):
        return True
    cls, _, method = obj.rpartition(".")
    if cls not in index.methods or method not in mentions.attributes:
        return False
    classes = [named for named in mentions.objects if named in index.methods]
    if obj in index.abstract:
        return any(index.is_subclass(named, cls) for named in classes)
    return any(index.owner(named, method) == cls for named in classes)


# ---------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------


def build_index(root: Path = ROOT) -> tuple[list[Row], list[str]]:
    """One Row per labelled equation, in reading order, and the problems of `find_problems`."""
    equations = book_equations(root)
    citations = docstring_citations(root)
    prose_only = prose_only_equations(root)
    index = package_index(root)
    mentions = mentions_by_test(root, index)
    rows = []
    for label, equation in equations.items():
        row = Row(equation, prose_only=prose_only.get(label))
        for c in citations:
            if c.label == label and c.kind != "module" and c.obj not in row.functions:
                row.functions.append(c.obj)
        for obj in row.functions:
            row.tests[obj] = [test for test, m in mentions.items() if mentions_object(m, obj, index)]
        rows.append(row)
    return rows, find_problems(equations, citations, prose_only) + untested_equations(rows)


def untested_equations(rows: list[Row]) -> list[str]:
    """An equation computed by functions none of which a test names."""
    return [
        f"equation ({row.equation.label}) in {row.equation.where} is computed by {', '.join(row.functions)}, "
        "but no test in tests/ names any of them"
        for row in rows
        if row.functions and not any(row.tests.values())
    ]


def input_files(root: Path = ROOT) -> list[Path]:
    """Every file the index is read from (a change to any of them changes the page)."""
    files = [root / "_toc.yml", root / PROSE_ONLY_FILE]
    files += sorted((root / PACKAGE).rglob("*.py")) + sorted((root / "tests").rglob("*.py"))
    files += sorted((root / "book").glob("*.ipynb")) + sorted((root / "book").glob("*.md"))
    return [f for f in files if f.exists()]


# ---------------------------------------------------------------------------
# The Sphinx directive that draws the appendix table at build time
# ---------------------------------------------------------------------------

MAX_TESTS_SHOWN = 6
logger = logging.getLogger(__name__)
INLINE = re.compile(r"\beq\.\s*\(([^()\s]+)\)|`([^`]+)`")


def shown_tests(obj: str, tests: list[str]) -> tuple[list[str], int]:
    """At most MAX_TESTS_SHOWN test ids, those of the function's own test file first; and how many are left."""
    own = f"tests/test_{obj.split('.')[1]}.py::" if obj.count(".") >= 1 else ""
    ordered = sorted(tests, key=lambda t: (not t.startswith(own), t))
    return ordered[:MAX_TESTS_SHOWN], max(0, len(tests) - MAX_TESTS_SHOWN)


def summary(rows: list[Row]) -> str:
    """One sentence with the counts, e.g. "46 labelled equations: 39 computed by code, 7 prose only."."""
    computed = sum(1 for row in rows if row.functions)
    prose = sum(1 for row in rows if row.prose_only is not None)
    functions = len({obj for row in rows for obj in row.functions})
    return (
        f"{len(rows)} labelled equations: {computed} computed by {functions} functions and classes of "
        f"{PACKAGE}, {prose} prose only."
    )


def _eq_ref(label: str, docname: str) -> nodes.Node:
    """A link to the equation `label`, shown as its number, e.g. (5.2)."""
    return addnodes.pending_xref(
        "", nodes.literal(text=label), refdomain="math", reftype="eq", reftarget=label,
        refdoc=docname, refexplicit=False, refwarn=True,
    )


def _doc_ref(target: str, docname: str) -> nodes.Node:
    """A link to the page `target`, shown as its title."""
    return addnodes.pending_xref(
        "", nodes.inline(text=target), refdomain="std", reftype="doc", reftarget=f"/{target}",
        refdoc=docname, refexplicit=False, refwarn=True,
    )


def _function_ref(obj: str, docname: str) -> nodes.Node:
    """A link to the API reference entry of `obj`; plain text if no page documents it (see _unlinked)."""
    return addnodes.pending_xref(
        "", nodes.literal(text=obj.removeprefix(f"{PACKAGE}.")), refdomain="py", reftype="obj",
        reftarget=obj, refdoc=docname, refexplicit=True, refwarn=False, equation_index=True,
    )


def _unlinked(app: Sphinx, env: BuildEnvironment, node: nodes.Element, contnode: nodes.Node) -> nodes.Node | None:
    """A function that no page documents stays plain text, without a warning (equations still warn)."""
    return contnode if node.get("equation_index") else None


def _inline_text(text: str, docname: str) -> list[nodes.Node]:
    """Text with `eq. (label)` turned into equation links and `code` into literals."""
    out: list[nodes.Node] = []
    last = 0
    for m in INLINE.finditer(text):
        out.append(nodes.Text(text[last : m.start()]))
        out += [nodes.Text("eq. "), _eq_ref(m.group(1), docname)] if m.group(1) else [nodes.literal(text=m.group(2))]
        last = m.end()
    return out + [nodes.Text(text[last:])]


def _code_cell(row: Row, docname: str) -> list[nodes.Node]:
    """The reason of a prose-only equation, or one bullet per function with the tests that name it."""
    if row.prose_only is not None:
        return [nodes.paragraph("", "", nodes.emphasis(text="Prose only: "), *_inline_text(row.prose_only, docname))]
    items = nodes.bullet_list()
    for obj in row.functions:
        para = nodes.paragraph("", "", _function_ref(obj, docname))
        tests, more = shown_tests(obj, row.tests[obj])
        if not tests:
            para += nodes.Text(": named by no test")
        for i, test in enumerate(tests):
            para += [nodes.Text(": " if i == 0 else ", "), nodes.literal(text=test.removeprefix("tests/"))]
        if more:
            para += nodes.Text(f", and {more} more")
        items += nodes.list_item("", para)
    return [items]


def index_table(rows: list[Row], docname: str) -> nodes.table:
    """The docutils table of the appendix: equation (link), chapter (link), code and tests."""
    headers = ["Equation", "Chapter", "Computed by (and the tests that name it)"]
    group = nodes.tgroup(cols=len(headers))
    group += [nodes.colspec(colwidth=w) for w in (14, 26, 60)]
    group += nodes.thead("", nodes.row("", *[nodes.entry("", nodes.paragraph(text=h)) for h in headers]))
    body = nodes.tbody()
    for row in rows:
        cells = [
            [nodes.paragraph("", "", _eq_ref(row.equation.label, docname))],
            [nodes.paragraph("", "", _doc_ref(row.equation.docname, docname))],
            _code_cell(row, docname),
        ]
        body += nodes.row("", *[nodes.entry("", *cell) for cell in cells])
    group += body
    return nodes.table("", group, classes=["equation-index"])


class EquationIndex(SphinxDirective):
    """```{equation-index}```: the table of every labelled equation, its code and its tests, built now."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.app.confdir, self.config.equation_index_root) if self.config.equation_index_root else ROOT
        rows, problems = build_index(root)
        for problem in problems:
            logger.warning(problem, location=(self.env.docname, self.lineno), type="equation-index")
        for path in input_files(root):
            self.env.note_dependency(str(path))
        self.env.__dict__.setdefault("equation_index_docs", set()).add(self.env.docname)
        return [nodes.paragraph(text=summary(rows)), index_table(rows, self.env.docname)]


def _always_reread(app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set) -> list[str]:
    """A new file under sbgm_edu/ or tests/ changes the table too: read its page on every build."""
    return sorted(getattr(env, "equation_index_docs", set()) & env.found_docs)


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    getattr(env, "equation_index_docs", set()).discard(docname)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set, other: BuildEnvironment) -> None:
    env.__dict__.setdefault("equation_index_docs", set()).update(getattr(other, "equation_index_docs", set()))


def setup(app: Sphinx) -> dict:
    # the repository the index is read from; "" means the one this file is in (tests point it elsewhere)
    app.add_config_value("equation_index_root", "", "env")
    app.add_directive("equation-index", EquationIndex)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("missing-reference", _unlinked)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
