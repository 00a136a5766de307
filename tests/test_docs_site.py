"""The site's generated pages come from their one source, and its Markdown hook can fail."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import pkgutil
import re
import sys
from pathlib import Path

import pytest
from test_readme import load_script

import ddpm
from ddpm.cli import main as ddpm_main

ROOT = Path(__file__).resolve().parents[1]


def test_a_derivation_page_is_what_ddpm_derive_markdown_prints():
    """The site renders `ddpm derive eq07 --markdown` itself, generated at build time, not a copy."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ddpm_main(["derive", "eq07", "--markdown"]) == 0
    page = load_script("docs_pages").derivation_page("eq07")
    printed = out.getvalue()
    assert printed.strip() and printed in page and "$$" in printed
    assert not (ROOT / "docs" / "derivations").exists()  # nothing committed that could go stale
    assert "mkdocs_gen_files" not in sys.modules  # imported only by a build (its __getattr__ imports mkdocs)


def test_the_api_reference_has_a_page_for_every_module_of_the_library():
    docs_pages = load_script("docs_pages")
    pages = docs_pages.reference_pages()
    modules = {
        info.name
        for info in pkgutil.walk_packages(ddpm.__path__, "ddpm.")
        if not info.name.startswith(("ddpm.verify", "ddpm.conform")) and not info.name.split(".")[-1].startswith("_")
    }
    assert {"ddpm.beta.posterior", "ddpm.sigma.sampler", "ddpm.specs.eq07_posterior", "ddpm.oracles"} <= modules
    assert {f"reference/{m}.md" for m in modules | {"ddpm"}} | {"reference/index.md"} == set(pages)
    assert pages["reference/ddpm.beta.posterior.md"].startswith("::: ddpm.beta.posterior")


# The modules that implement the papers' equations, and their public names that implement none (helpers).
EQUATION_MODULES = (
    "ddpm.beta.schedule",
    "ddpm.beta.forward",
    "ddpm.beta.posterior",
    "ddpm.beta.losses",
    "ddpm.beta.sampler",
    "ddpm.sigma.schedule",
    "ddpm.sigma.sampler",
    "ddpm.sigma.losses",
    "ddpm.sigma.flow_matching",
    "ddpm.oracles",
)
HELPERS = {
    "at",
    "per_sample",
    "sum_per_sample",
    "check_sigmas",
    "batch_scale",
    "SamplerSettings",
    "GaussianLaw",
    "GaussianMixture",
}
CITATION = re.compile(r"\[(Ho20|02460|6\.S183|PY23|Song21|ND21|Nichol21|Rombach22|Lin24|Karras22|Esser24)[^\]]*\]")


@pytest.mark.parametrize("module", EQUATION_MODULES)
def test_each_public_function_of_the_maths_shows_its_citation(module):
    """The API reference shows each docstring's first line: there each function names its source."""
    mod = importlib.import_module(module)
    uncited = [
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module
        and name not in HELPERS
        and not CITATION.search((inspect.getdoc(obj) or "").splitlines()[0] if inspect.getdoc(obj) else "")
    ]
    assert uncited == []


def test_citations_after_brackets_stay_text():
    """`E[x | y] [6.S183 Q1a]` is no reference link; code spans and real links keep their text."""
    pytest.importorskip("markdown")  # the docs extra, which .ci/run installs
    keep = load_script("docs_markdown").keep_citations
    assert keep("E[x | y] [6.S183 Q1a]") == "E[x | y]&#32;[6.S183 Q1a]"
    assert keep("on [-1, 1] [Ho20 §4] and `a] [b`") == "on [-1, 1]&#32;[Ho20 §4] and `a] [b`"
    assert keep("[a link](page.md) [b]") == "[a link](page.md) [b]"
    assert keep("[text][]") == "[text][]"


def test_display_math_is_left_alone():
    pytest.importorskip("markdown")
    preprocessor = load_script("docs_markdown").CitationPreprocessor(None)
    assert preprocessor.run(["$$ \\left[a\\right] [b] $$", "E[x] [Ho20]"]) == [
        "$$ \\left[a\\right] [b] $$",
        "E[x]&#32;[Ho20]",
    ]


def test_the_site_renders_every_step_of_a_derivation_as_math_inside_its_step():
    """Python-Markdown with arithmatex, as on the site: each $$ is a math block in its list item."""
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("pymdownx.arithmatex")
    from ddpm.specs.eq07_posterior import derivation

    text = derivation().markdown()
    html = markdown.markdown(
        text, extensions=["pymdownx.arithmatex"], extension_configs={"pymdownx.arithmatex": {"generic": True}}
    )
    blocks = re.findall(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', html, re.S)
    assert len(blocks) == text.count("$$") // 2 > 0
    assert "<em>" not in html  # no subscript read as emphasis: all of the math was taken as math
    assert html.count("<ol>") == 1  # one numbered list: the math did not break it
