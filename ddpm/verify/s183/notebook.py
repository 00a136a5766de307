"""Read a 6.S183 notebook and run only its definitions.

The notebook is an ``.ipynb``, a ``# %%`` script or a plain ``.py``.

The problem set's notebook mixes definitions with top-level calls that train for minutes and plot
(``training_loop(loader, model, schedule, epochs=20000)``). :func:`read_cells` turns the file into
cells of Python source, the shell and magic lines blanked (``!pip ...``, ``%matplotlib``; a
``%%bash`` cell dropped whole; ``%%time`` dropped as a line) so that line numbers stay the student's.
:func:`plan` keeps, cell by cell, only the statements that define: imports, ``def``, ``class``, and
assignments whose right-hand side calls nothing but a few constructors of constants. Everything else
(calls, loops, ``with``, plots) never runs. :func:`run_definitions` (child side only) executes the
plan in cell order, so the last definition of a name wins, each statement compiled under the file
name ``<cell N>`` so that the stack says "cell N, line L".

Parsing is pure text work, safe in the parent; executing is for the child.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Cell",
    "Notebook",
    "read_cells",
    "read_text",
    "plan",
    "run_definitions",
    "where",
    "cell_of_filename",
    "looks_like_s183",
    "STUDENT_FUNCTIONS",
]

STUDENT_FUNCTIONS = ("training_loop", "samples")

# Cell magics whose body is Python the kernel runs; any other %% magic makes the cell not Python.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "snakeviz", "memit", "skip"}
_MARKER = re.compile(r"^#\s*(%%|In\s*\[[\d\s]*\]\s*:)")
_MAGIC_LINE = re.compile(r"^\s*([!%]|[\w.]+\s*=\s*[!%])")
_HELP_LINE = re.compile(r"^\s*[\w.]+\?\??\s*$")
# Calls an assignment may make and still count as a constant (names or attribute tails).
SAFE_CALLS = {
    "int",
    "float",
    "str",
    "bool",
    "tuple",
    "list",
    "dict",
    "set",
    "frozenset",
    "range",
    "len",
    "complex",
    "slice",
    "tensor",
    "as_tensor",
    "device",
    "dtype",
    "array",
    "asarray",
    "sqrt",
    "log",
    "exp",
    "linspace",
    "arange",
    "zeros",
    "ones",
    "full",
    "is_available",
    "float32",
    "float64",
    "getattr",
    "pow",
    "abs",
    "min",
    "max",
    "round",
    "Path",
    "namedtuple",
    "TypeVar",
    "field",
}


@dataclass(frozen=True)
class Cell:
    """One code cell: ``number`` its place in the notebook (1-based, markdown cells counted), ``source``
    the code as run (magic lines blank), ``text`` as written, ``first_line`` the file line of its line 1
    (scripts; 0 for ``.ipynb``)."""

    number: int
    source: str
    text: str
    first_line: int = 0
    dropped: tuple[str, ...] = ()


@dataclass
class Notebook:
    """The cells of a file and its kind.

    ``ipynb``, ``cells`` (a script with ``# %%`` markers) or ``script``.
    """

    name: str
    kind: str
    cells: list[Cell] = field(default_factory=list)

    def where(self, cell: int, line: int) -> str:
        return where(self.kind, self.cells, cell, line)


def where(kind: str, cells, cell: int, line: int) -> str:
    """ "cell 7, line 4" (and the file line for a ``# %%`` script; "line 57" for a plain script)."""
    first = next(
        (
            c.first_line if isinstance(c, Cell) else c["first_line"]
            for c in cells
            if (c.number if isinstance(c, Cell) else c["number"]) == cell
        ),
        0,
    )
    if kind == "script":
        return f"line {first + line - 1}"
    if kind == "cells":
        return f"cell {cell}, line {line} (line {first + line - 1} of the file)"
    return f"cell {cell}, line {line}"


def cell_of_filename(filename: str) -> int | None:
    """The cell number of a code object's file name ``<cell N>``, or None for any other file."""
    m = re.fullmatch(r"<cell (\d+)>", filename or "")
    return int(m.group(1)) if m else None


def clean_cell(text: str) -> tuple[str, tuple[str, ...]]:
    """The cell's text with shell, magic and help lines blanked (numbering kept), and what was dropped."""
    lines = text.split("\n")
    dropped = []
    first = next((i for i, s in enumerate(lines) if s.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].strip()[2:].split()[0] if lines[first].strip()[2:] else ""
        if magic not in PYTHON_CELL_MAGICS:
            return "\n".join("" for _ in lines), (f"a %%{magic} cell (not Python)",)
        dropped.append(lines[first].strip())
        lines[first] = ""
    for i, s in enumerate(lines):
        if _MAGIC_LINE.match(s) or _HELP_LINE.match(s):
            # a `pass` at the same indentation keeps the numbering, and a block whose only line it was
            # (`except ImportError: !pip install ...`) still compiles
            dropped.append(s.strip())
            lines[i] = s[: len(s) - len(s.lstrip())] + "pass"
    return "\n".join(lines), tuple(dropped)


def read_text(text: str, name: str = "notebook.ipynb") -> Notebook:
    """The cells of a notebook's text; ``name``'s suffix says whether it is JSON (.ipynb) or a script."""
    if name.endswith(".ipynb"):
        try:
            import nbformat

            nb = nbformat.reads(text, as_version=4)
            raw = [(c.get("cell_type"), c.get("source", "")) for c in nb.cells]
        except ImportError:  # nbformat is a dependency; the JSON itself is enough to read the cells
            data = json.loads(text)
            raw = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in data.get("cells", [])]
        cells = []
        for i, (kind, source) in enumerate(raw, start=1):
            if kind == "code":
                source = source if isinstance(source, str) else "".join(source)
                clean, dropped = clean_cell(source)
                cells.append(Cell(i, clean, source, 0, dropped))
        return Notebook(name, "ipynb", cells)
    lines = text.split("\n")
    starts = [i for i, s in enumerate(lines) if _MARKER.match(s)]
    if not starts:
        clean, dropped = clean_cell(text)
        return Notebook(name, "script", [Cell(1, clean, text, 1, dropped)])
    bounds = ([0] if starts[0] > 0 else []) + starts + [len(lines)]
    cells = []
    for n, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        chunk = "\n".join(lines[a:b])
        clean, dropped = clean_cell(chunk)
        cells.append(Cell(n, clean, chunk, a + 1, dropped))
    return Notebook(name, "cells", cells)


def read_cells(path: Path) -> Notebook:
    """The cells of the notebook at ``path`` (see :func:`read_text`)."""
    path = Path(path)
    return read_text(path.read_text(encoding="utf-8", errors="replace"), path.name)


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _constant_expr(node: ast.AST) -> bool:
    """No call in ``node`` (lambda bodies aside) but to :data:`SAFE_CALLS`, no await, no yield."""
    if isinstance(node, ast.Lambda):
        return all(_constant_expr(d) for d in node.args.defaults + [d for d in node.args.kw_defaults if d])
    if isinstance(
        node,
        (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
    ):
        return False
    if isinstance(node, ast.Call) and _call_name(node.func) not in SAFE_CALLS:
        return False
    return all(_constant_expr(child) for child in ast.iter_child_nodes(node))


def _keep(stmt: ast.stmt) -> bool:
    """Whether a top-level statement only defines: imports, def, class, constant assignments."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        simple = all(
            isinstance(t, (ast.Name, ast.Tuple))
            and all(isinstance(e, ast.Name) for e in ast.walk(t) if isinstance(e, ast.expr) and e is not t)
            or isinstance(t, ast.Name)
            for t in targets
        )
        return simple and stmt.value is not None and _constant_expr(stmt.value)
    if isinstance(stmt, ast.Try):
        body = stmt.body + stmt.orelse + stmt.finalbody + [s for h in stmt.handlers for s in h.body]
        return all(_keep(s) for s in body)
    if isinstance(stmt, ast.If):
        test = stmt.test
        if "__name__" in ast.unparse(test):
            return False
        return _constant_expr(test) and all(_keep(s) for s in stmt.body + stmt.orelse)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True  # a docstring or a bare string
    return False


@dataclass
class Plan:
    """What :func:`plan` found: the statements to run, the ones skipped, the cells that do not parse."""

    run: list[tuple[int, ast.stmt]] = field(default_factory=list)
    skipped: list[tuple[int, int, str]] = field(default_factory=list)  # (cell, line, first words)
    syntax_errors: list[tuple[int, int, str]] = field(default_factory=list)  # (cell, line, message)
    defines: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (cell, line) of its last def
    unrun: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (cell, line) of a skipped assignment


def plan(notebook: Notebook) -> Plan:
    """The definitions to run, cell by cell, and the rest skipped (never run)."""
    p = Plan()
    for cell in notebook.cells:
        try:
            tree = ast.parse(cell.source, filename=f"<cell {cell.number}>")
        except SyntaxError as e:
            p.syntax_errors.append((cell.number, e.lineno or 0, e.msg))
            continue
        for stmt in tree.body:
            if _keep(stmt):
                p.run.append((cell.number, stmt))
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    p.defines[stmt.name] = (cell.number, stmt.lineno)
                elif isinstance(stmt, ast.Assign):
                    for t in stmt.targets:
                        if isinstance(t, ast.Name) and isinstance(stmt.value, ast.Name) and stmt.value.id in p.defines:
                            p.defines[t.id] = p.defines[stmt.value.id]
            else:
                words = ast.unparse(stmt).split("\n")[0][:60]
                p.skipped.append((cell.number, stmt.lineno, words))
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        p.unrun.setdefault(node.id, (cell.number, stmt.lineno))
    return p


class NotRun(NameError):
    """The code read a name the notebook sets only in a top-level statement the verifier does not run."""


class Skipped:
    """What a name bound by a statement the verifier never ran stands for; any use raises, naming it."""

    def __init__(
        self,
        name: str,
        why: str = "is set by a top-level statement the verifier does not run (only imports and definitions run)",
    ):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_why", why)

    def _fail(self, *args, **kwargs):
        raise NotRun(f"{object.__getattribute__(self, '_name')} {object.__getattribute__(self, '_why')}")

    __call__ = _fail
    __getattr__ = _fail
    __iter__ = _fail
    __bool__ = _fail
    __float__ = _fail
    __getitem__ = _fail
    __mul__ = __rmul__ = __add__ = __radd__ = __sub__ = __rsub__ = __truediv__ = _fail


def run_definitions(p: Plan, namespace: dict) -> list[tuple[int, int, str]]:
    """Execute the planned statements in order into ``namespace``.

    Returns (cell, line, error) of those that raised.

    A definition whose default argument or decorator reads a name the notebook sets only in a skipped
    statement gets that name bound to a :class:`Skipped` placeholder and is run again.
    """
    errors = []
    for cell, stmt in p.run:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), f"<cell {cell}>", "exec")
        for _ in range(20):
            try:
                exec(code, namespace)  # noqa: S102 - the child's whole purpose: run the student's definitions
                break
            except NameError as e:
                name = getattr(e, "name", None)
                if not name or name in namespace:
                    errors.append((cell, stmt.lineno, f"{type(e).__name__}: {e}"))
                    break
                namespace[name] = Skipped(name)
            except BaseException as e:  # noqa: BLE001 - any failure of the student's statement is reported
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                errors.append((cell, stmt.lineno, f"{type(e).__name__}: {e}"))
                if isinstance(e, ImportError) and isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    # what the import would have bound: using it later is "cannot verify", never a bug
                    module = stmt.module if isinstance(stmt, ast.ImportFrom) else None
                    for alias in stmt.names:
                        bound = alias.asname or alias.name.split(".")[0]
                        if bound != "*" and bound not in namespace:
                            source = f"{module}.{alias.name}" if module else alias.name
                            namespace[bound] = Skipped(
                                bound, f"comes from {source}, which cannot be imported here ({type(e).__name__})"
                            )
                break
    return errors


_DEF = re.compile(r"^[ \t]*def[ \t]+(training_loop|samples)[ \t]*\(", re.M)
_DDPM = re.compile(r"^[ \t]*class[ \t]+DDPM\b", re.M)


def looks_like_s183(text: str, name: str = "") -> bool:
    """Whether a file's text is a 6.S183 notebook: it defines training_loop or samples, and no class DDPM."""
    stripped = text.lstrip()
    if name.endswith(".ipynb") or (stripped.startswith("{") and '"cells"' in text):
        try:
            text = "\n".join(c.text for c in read_text(text, "x.ipynb").cells)
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
    return bool(_DEF.search(text)) and not _DDPM.search(text)
