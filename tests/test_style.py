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


def entry_points_in(source: str) -> list[str]:
    """What a spec module must not hold: a pytest import, a test function, a ``__main__`` block."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in ("pytest", "_pytest")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pytest", "_pytest"):
            found.append(f"from {node.module} import ...")
    found += [f"def {n.name}" for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    found += ["__main__ block" for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    return found


def test_the_entry_point_check_can_fail():
    lines = ["import pytest", "from _pytest.fixtures import x", "def test_a():", "    pass"]
    source = "\n".join(lines + ['if __name__ == "__main__":', "    f()"])
    expected = ["import pytest", "from _pytest.fixtures import ...", "def test_a", "__main__ block"]
    assert entry_points_in(source) == expected
    assert entry_points_in("def check_a():\n    pass\n") == []


def test_specs_hold_claims_and_tests_specs_their_entry_points():
    """specs/ holds the claims and their checks; pytest runs them from tests/specs/test_<module>.py."""
    for path in sorted((ROOT / "specs").glob("*.py")):
        assert entry_points_in(path.read_text()) == [], relative(path)
    claims = {p.stem for p in (ROOT / "specs").glob("[a-z]*.py")}
    entry_points = {p.stem.removeprefix("test_") for p in (ROOT / "tests" / "specs").glob("test_*.py")}
    assert claims == entry_points


def test_the_test_paths_the_scripts_run_exist():
    """scripts/mutate.py's tests of each module and seed_sweep.py's default paths are there."""
    import re

    tree = ast.parse((ROOT / "scripts" / "mutate.py").read_text())
    (tests,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "TESTS"]
    paths = {p for module_tests in ast.literal_eval(tests).values() for p in module_tests}
    assert any(p.startswith("tests/specs/") for p in paths)
    assert [p for p in sorted(paths) if not (ROOT / p).is_file()] == []
    sweep = re.search(r'"--paths",.*?default=\[(.*?)\]', (ROOT / "scripts" / "seed_sweep.py").read_text())
    assert sweep, "seed_sweep.py: no --paths default"
    defaults = re.findall(r'"([^"]+)"', sweep.group(1))
    assert defaults and [p for p in defaults if not (ROOT / p).exists()] == []


def layout_entries(design: str) -> set[str]:
    """The paths that docs/design.md's layout tree names, relative to the root (folders end in '/').

    A line of the tree is indented two spaces a level; its entry, before a run of two spaces, is a
    folder (``name/``) or one or more modules separated by commas. A line that starts deeper than the
    entries above it continues their description."""
    block = design.split("## Layout", 1)[1].split("```", 2)[1]
    found: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, path) of the open folders
    last_indent = -1
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        entry = line.strip().split("  ", 1)[0]
        if indent > last_indent + 2 or not (entry.endswith("/") or entry.endswith((".py", ".py,"))):
            continue  # a description's continuation
        last_indent = indent
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        if entry.endswith("/"):
            found.add(parent + entry)
            folders.append((indent, parent + entry))
        else:
            found.update(parent + name.strip() for name in entry.split(",") if name.strip())
    return found


def test_the_layout_parser_reads_a_tree():
    tree = "## Layout\n```\na/  the a\n  b.py  one\n          more words\n  c/  cs\n    d.py, e.py\n  f.py\ng/\n```\n"
    assert layout_entries(tree) == {"a/", "a/b.py", "a/c/", "a/c/d.py", "a/c/e.py", "a/f.py", "g/"}


def test_design_layout_names_every_module_and_only_modules_that_exist():
    """docs/design.md's layout is the package's tree: nothing named is missing, nothing there is unnamed."""
    named = layout_entries((ROOT / "docs" / "design.md").read_text())
    assert {p for p in named if not (ROOT / p).exists()} == set()
    modules = {
        str(p.relative_to(ROOT))
        for folder in ("ddpm", "specs", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")  # rglob does not follow ddpm/specs, the link to specs/
        if p.name != "__init__.py" or p.parent.name in ("ddpm", "specs")
    }
    modules -= {p for p in modules if p.startswith("benchmarks/test_")}  # tests, named by their folder
    assert modules - named == set()
