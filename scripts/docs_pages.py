"""The documentation site's generated pages: the derivations, the API reference, the changelog.

Run by mkdocs-gen-files at build time (mkdocs.yml), so the site never holds a copy that can go stale:

- ``derivations/<claim>.md``: each claim of ``ddpm.specs.CLAIMS``, from ``derivation().markdown()``,
  the same text that ``ddpm derive NAME --markdown`` prints; ``derivations/index.md`` lists them.
- ``reference/<module>.md``: a mkdocstrings page for each module of the library (``ddpm`` and
  ``ddpm.specs``, all but the command-line internals of ``ddpm.verify`` and ``ddpm.conform``);
  ``reference/index.md`` lists them.
- ``benchmarks.md`` and ``changelog.md``: benchmarks/README.md and CHANGELOG.md as they are.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Internals of commands that have their own pages (student.md, grader.md, conform.md), not a library API.
SKIPPED_PACKAGES = ("ddpm.verify", "ddpm.conform")


def derivation_pages() -> dict[str, str]:
    """Each claim's page, ``derivations/<claim>.md``, and the index, from ddpm.specs alone."""
    from ddpm.specs import CLAIMS

    pages = {}
    rows = ["# The derivations", "", DERIVATIONS_INTRO, "", "| claim | module | what it derives |", "|---|---|---|"]
    for name, (module, title) in CLAIMS.items():
        pages[f"derivations/{name}.md"] = derivation_page(name)
        rows.append(f"| [{name}]({name}.md) | `{module}` | {escape_cell(title)} |")
    pages["derivations/index.md"] = "\n".join(rows) + "\n"
    return pages


def derivation_page(name: str) -> str:
    """Claim ``name``'s page: a title, then what ``ddpm derive NAME --markdown`` prints."""
    from ddpm.specs import CLAIMS

    module = CLAIMS[name][0]
    derivation = importlib.import_module(f"ddpm.specs.{module}").derivation()
    return f"# {name}: `ddpm derive {name}`\n\n{derivation.markdown()}\n" + (
        f"\nThe claim's module, with its checks: [`ddpm.specs.{module}`](../reference/ddpm.specs.{module}.md). "
        f"Print it with `ddpm derive {name}` (unicode), `--latex` or `--markdown` (this page's text).\n"
    )


DERIVATIONS_INTRO = (
    "Every derivation of the two problem sets and the paper, as `ddpm derive NAME --markdown` writes it: "
    "these pages are generated from `ddpm.specs` when the site is built. Each step is a sympy equality that "
    "holds (the build fails otherwise: `derivation()` raises on a step that does not). How the claims are "
    "bound to the code and checked: [Derivations and statistics](../researcher.md)."
)


def escape_cell(text: str) -> str:
    """``text`` safe in a Markdown table cell: pipes escaped, brackets kept from reading as links."""
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def library_modules() -> list[str]:
    """Every module of ddpm and ddpm.specs that the API reference documents, in the package's order."""
    import ddpm

    names = ["ddpm"]
    for info in pkgutil.walk_packages(ddpm.__path__, "ddpm."):
        if info.name.startswith(SKIPPED_PACKAGES) or info.name.split(".")[-1].startswith("_"):
            continue
        names.append(info.name)
    return names


def first_line(module: str) -> str:
    """The first line of ``module``'s docstring (imported: mkdocstrings will import it anyway)."""
    doc = importlib.import_module(module).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def reference_pages() -> dict[str, str]:
    """A page per module, ``reference/<module>.md``, holding mkdocstrings' ``:::`` for it, and the index."""
    pages = {}
    rows = ["# API reference", "", REFERENCE_INTRO, "", "| module | what it holds |", "|---|---|"]
    for module in library_modules():
        options = "    options:\n      members: false\n" if module == "ddpm" else ""
        pages[f"reference/{module}.md"] = f"::: {module}\n{options}"
        rows.append(f"| [`{module}`]({module}.md) | {escape_cell(first_line(module))} |")
    pages["reference/index.md"] = "\n".join(rows) + "\n"
    return pages


REFERENCE_INTRO = (
    "Generated from the docstrings when the site is built. The first line of each function's docstring "
    "names its source where it implements an equation, e.g. `[Ho20 eq. 7]`. The time index is the paper's "
    "t = 1..T throughout. `ddpm` re-exports the beta world's main functions (`from ddpm import sample`)."
)


def copied_pages() -> dict[str, str]:
    """benchmarks/README.md and CHANGELOG.md as they are (neither links to a file of the repository)."""
    return {
        "benchmarks.md": (ROOT / "benchmarks" / "README.md").read_text(),
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(),
    }


def main() -> None:
    """Write every generated page into the site being built."""
    # Imported here, not at the top: its module __getattr__ imports mkdocs on any attribute access, even a
    # getattr probe, which mutates sys.modules under a loop over it (tests/test_verify.py's clean-process check).
    import mkdocs_gen_files

    for path, text in {**derivation_pages(), **reference_pages(), **copied_pages()}.items():
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(text)


if __name__ in ("__main__", "<run_path>"):  # mkdocs-gen-files runs this file with runpy.run_path
    main()
