"""House style no linter checks: the first line of every docstring is under 100 characters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Students' files as they write them (fixtures of `ddpm verify`) keep their own style.
EXCLUDED = ("tests/verify_cases", "tests/verify_cases_s183", "tests/verify_hostile")
LIMIT = 100


def python_files() -> list[Path]:
    files = []
    for folder in ("ddpm", "specs", "benchmarks", "scripts", "tests"):
        files += [p for p in sorted((ROOT / folder).rglob("*.py")) if not str(p.relative_to(ROOT)).startswith(EXCLUDED)]
    return files + [ROOT / "conftest.py"]


def long_first_lines(source: str) -> list[tuple[int, int]]:
    """(line number, length) of each docstring whose first line, stripped, has LIMIT characters or more."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
                if len(first) >= LIMIT:
                    found.append((node.body[0].lineno if not isinstance(node, ast.Module) else 1, len(first)))
    return found


def test_the_check_can_fail():
    source = f'def f():\n    """{"x" * LIMIT}"""\n\n\nclass A:\n    """short"""\n'
    assert long_first_lines(source) == [(2, LIMIT)]
    assert long_first_lines(f'"""{"y" * (LIMIT - 1)}\n\n{"z" * 300}\n"""\n') == []


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", python_files(), ids=relative)
def test_docstring_first_lines_are_short(path):
    assert long_first_lines(path.read_text()) == [], f"{relative(path)}: (line, length) of long first lines"
