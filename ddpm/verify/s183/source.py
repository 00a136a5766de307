"""The 6.S183 notebook's text in the parent: where a line is, and the lines behind an outcome.

The child sends the notebook's cells as it read them (the ``notebook`` record); the parent parses them again
— text only, nothing is run — to show the student the lines behind an outcome: the lines that yield, the
lines that compute what is yielded (the update, eps_bar, the loss) and the lines that set the start x_T.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ddpm.verify.s183.notebook import Cell, clean_cell, where
from ddpm.verify.s183.records import DefinitionsRecord, NotebookRecord, PlanRecord

__all__ = ["Source", "Function"]


@dataclass(frozen=True)
class Function:
    """A function the notebook defines: its definition and the cell it is in."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    cell: int


class Source:
    """The notebook's cells as the child read them: line texts, places and the AST of the two functions."""

    def __init__(self, notebook: NotebookRecord, plan: PlanRecord, definitions: DefinitionsRecord):
        self.form, self.name = notebook.form, notebook.name
        self.cells = {
            c.number: Cell(c.number, clean_cell(c.text)[0], c.text, c.first_line, tuple(c.dropped))
            for c in notebook.cells
        }
        self.plan, self.definitions = plan, definitions

    def where(self, cell: int | None, line: int | None) -> str:
        if cell is None or line is None:
            return "outside the notebook"
        return where(self.form, list(self.cells.values()), cell, line)

    def line(self, cell: int | None, line: int | None) -> str:
        if cell is None or line is None:
            return ""
        c = self.cells.get(cell)
        text = c.text.split("\n") if c is not None else [""]
        body = text[line - 1].strip() if 0 < line <= len(text) else ""
        return f"{self.where(cell, line)}:  {body}"

    def function(self, name: str) -> Function | None:
        info = self.definitions.functions.get(name)
        if info is None or info.status != "notebook" or info.cell is None or info.line is None:
            return None
        cell = self.cells.get(info.cell)
        try:
            tree = ast.parse(cell.source if cell is not None else "")
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == info.name:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if first <= info.line <= (node.end_lineno or node.lineno):
                    return Function(node, info.cell)
        return None

    def yield_lines(self, name: str) -> list[str]:
        fn = self.function(name)
        if fn is None:
            return []
        lines = {n.lineno for n in ast.walk(fn.node) if isinstance(n, (ast.Yield, ast.YieldFrom))}
        for loop in [n for n in ast.walk(fn.node) if isinstance(n, (ast.For, ast.While))]:
            if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(loop)):
                lines.add(loop.lineno)  # the loop that decides how many yields
        return [self.line(fn.cell, n) for n in sorted(lines)]

    def update_lines(self, name: str) -> list[str]:
        """The lines that compute what the function's yields read: inside its loops, the assignments to the
        yielded names and, transitively, to the names those read (the update, eps_bar, the loss, its input);
        before the loops, the assignments that set a name those lines read (eps_prev = None)."""
        fn = self.function(name)
        if fn is None:
            return []
        yielded = _yielded_names(fn.node)
        in_loops = _in_loops(fn.node)
        assigns = []
        for node in ast.walk(fn.node):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                wrote = {t.id for tt in targets for t in ast.walk(tt) if isinstance(t, ast.Name)}
                read = {t.id for t in ast.walk(node.value) if isinstance(t, ast.Name)}
                assigns.append((node.lineno, wrote, read, id(node) in in_loops))
        names, lines, grew = set(yielded), set(), True
        while grew:
            grew = False
            for lineno, wrote, read, looped in assigns:
                if looped and lineno not in lines and wrote & names:
                    lines.add(lineno)
                    names |= read
                    grew = True
        lines |= {lineno for lineno, wrote, _, looped in assigns if not looped and wrote & (names - yielded)}
        return [self.line(fn.cell, n) for n in sorted(lines)]

    def start_lines(self, name: str) -> list[str]:
        """The lines before the function's loops that set what it yields (the start x_T)."""
        fn = self.function(name)
        if fn is None:
            return []
        yielded = _yielded_names(fn.node)
        in_loops = _in_loops(fn.node)
        lines = sorted(
            {
                node.lineno
                for node in ast.walk(fn.node)
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                and id(node) not in in_loops
                and any(
                    isinstance(t, ast.Name) and t.id in yielded
                    for tt in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    for t in ast.walk(tt)
                )
            }
        )
        return [self.line(fn.cell, n) for n in lines]


def _yielded_names(fn: ast.AST) -> set[str]:
    """The names the function's yields read."""
    return {
        n.id
        for y in ast.walk(fn)
        if isinstance(y, (ast.Yield, ast.YieldFrom)) and y.value is not None
        for n in ast.walk(y.value)
        if isinstance(n, ast.Name)
    }


def _in_loops(fn: ast.AST) -> set[int]:
    """The ids of the nodes inside the function's loops."""
    return {id(node) for loop in ast.walk(fn) if isinstance(loop, (ast.For, ast.While)) for node in ast.walk(loop)}
