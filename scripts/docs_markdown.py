"""A mkdocs hook: citations after brackets stay text, not cross-references (mkdocs.yml, ``hooks``).

The docstrings and pages write a citation after a bracket, e.g. ``E[x | y] [6.S183 Q1a]`` or
``[-1, 1] [Ho20 §4]``, which Markdown reads as a reference link ``[text] [id]`` and mkdocs-autorefs
then reports as a missing target. A preprocessor writes the space between ``]`` and ``[`` as the
entity ``&#32;``, which Markdown's reference pattern does not take for a space and the page shows as
one. Fenced code is stashed before it runs, so code blocks keep their text; links ``[text](url)`` and
``[text][]`` are untouched.
"""

from __future__ import annotations

import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

SPACED_BRACKETS = re.compile(r"\] (?=\[)")


def keep_citations(line: str) -> str:
    """``line`` with each space between ``]`` and ``[`` outside inline code written as ``&#32;``."""
    parts = re.split(r"(`+[^`]*`+)", line)  # odd indices: inline code spans
    return "".join(part if i % 2 else SPACED_BRACKETS.sub("]&#32;", part) for i, part in enumerate(parts))


class CitationPreprocessor(Preprocessor):
    """Apply ``keep_citations`` to every line outside fenced code and display math (``$$``)."""

    def run(self, lines: list[str]) -> list[str]:
        return [line if "$$" in line else keep_citations(line) for line in lines]


class CitationExtension(Extension):
    """Register the preprocessor after fenced code has been stashed (pymdownx.superfences: priority 32)."""

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Markdown's name)
        md.preprocessors.register(CitationPreprocessor(md), "keep_citations", 10)


@event_priority(100)  # before mkdocstrings reads the extensions for the docstrings it renders
def on_config(config):
    """Add the extension to the site's Markdown, pages and docstrings alike."""
    config.markdown_extensions.append(CitationExtension())
    return config
