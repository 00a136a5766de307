"""`ddpm derive` for a class: LaTeX, Markdown, math in Jupyter, and on a plain install."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from ddpm import specs
from ddpm.cli import main
from ddpm.specs._sym import Derivation, latex, latex_document, latex_symbol, latex_text, markdown_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def all_derivations() -> dict[str, Derivation]:
    return {
        name: importlib.import_module(f"ddpm.specs.{module}").derivation() for name, (module, _) in specs.CLAIMS.items()
    }


def braces_balance(text: str) -> bool:
    """Unescaped { and } pair up, never closing more than was opened."""
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


@pytest.mark.parametrize(
    "name, expected",
    [
        ("alpha_bar_t-1", r"\bar{\alpha}_{t-1}"),
        ("alpha_bar_t", r"\bar{\alpha}_{t}"),
        ("beta_tilde", r"\tilde{\beta}"),
        ("beta_t", r"\beta_{t}"),
        ("x_t-1", "x_{t-1}"),
        ("mu_theta", r"\mu_{\theta}"),
        ("epsilon_θ", r"\epsilon_{\theta}"),
        ("sigma_t^2", r"{\sigma_{t}}^{2}"),
        ("sigma'", r"{\sigma}^{\prime}"),
        ("D", "D"),
        ("log q(x_{t-1} | x_t, x_0)", r"\log q(x_{t-1} \mid x_t, x_0)"),
        ("E[x_0 | x]", r"\mathbb{E}[x_0 \mid x]"),
        ("‖μ̃ − μθ‖²", r"\| \tilde{\mu} - \mu \theta \| ^{2}"),
    ],
)
def test_symbol_names_in_latex(name, expected):
    assert latex_symbol(name) == expected


def test_latex_of_an_equation_uses_the_papers_notation():
    from ddpm.specs._sym import alpha_bar, alpha_bar_prev, beta

    eq = sp.Eq(sp.Symbol("beta_tilde", positive=True), (1 - alpha_bar_prev) / (1 - alpha_bar) * beta)
    assert latex(eq) == r"\tilde{\beta} = \frac{\beta_{t} \left(1 - \bar{\alpha}_{t-1}\right)}{1 - \bar{\alpha}_{t}}"


def test_text_is_escaped():
    assert latex_text("x_{t-1} | 50% & #1 $ ~ ^ \\") == (
        r"x\_\{t-1\} \textbar{} 50\% \& \#1 \$ \~{} \^{} \textbackslash{}"
    )
    assert latex_text("ᾱ_t ≤ 1 [Ho20 §3.2]") == r"$\bar{\alpha}$\_t $\le$ 1 [Ho20 \S{}3.2]"
    assert markdown_text("a_b *c* $x$ `y` #") == r"a\_b \*c\* \$x\$ \`y\` \#"


def test_every_derivation_as_latex_is_ascii_and_balanced(all_derivations):
    """pdflatex reads the article as it is: plain ASCII, balanced braces, each step an item."""
    for name, d in all_derivations.items():
        body = d.latex(standalone=False)
        assert body.isascii(), (name, [c for c in body if not c.isascii()])
        assert "[U+" not in body, name  # every unicode character the specs use has a LaTeX form
        assert braces_balance(body), name
        assert body.count(r"\item ") == len(d.steps)
        assert body.count(r"\[ ") == sum(not isinstance(m, str) for s in d.steps for m in s.math)
        for s in d.steps:
            for m in s.math:
                if not isinstance(m, str):
                    assert latex(m) in body
    doc = latex_document(["A", "B"])
    assert doc.startswith(r"\documentclass") and r"\usepackage{amsmath,amssymb}" in doc
    assert doc.index(r"\begin{document}") < doc.index("A") < doc.index("B") < doc.index(r"\end{document}")


def test_markdown_and_jupyter_displays(all_derivations):
    d = all_derivations["eq07"]
    md = d.markdown()
    assert md.startswith("### q(x\\_{t-1} | x\\_t, x\\_0) = N(mu\\_tilde, beta\\_tilde I)")
    assert md.count("$$") == 2 * sum(not isinstance(m, str) for s in d.steps for m in s.math)
    assert [line.split(". ")[0] for line in md.splitlines() if line[:1].isdigit()] == [
        str(i) for i in range(1, len(d.steps) + 1)
    ]
    assert d._repr_markdown_() == md
    shown = d._repr_latex_()
    assert shown.startswith("$$\\begin{array}{l}") and shown.endswith("\\end{array}$$")
    assert shown.count("$") == 4 and braces_balance(shown)  # one display; no $ inside to end it early
    assert shown.count(r"\text{") == len(d.steps)
    assert r"\tilde{\beta}" in shown
    for other in all_derivations.values():
        assert braces_balance(other._repr_latex_()) and other._repr_latex_().count("$") == 4


def test_cli_latex_and_markdown(capsys, all_derivations):
    assert main(["derive", "eq07", "--latex"]) == 0
    assert capsys.readouterr().out == latex_document([all_derivations["eq07"].latex(standalone=False)])
    assert main(["derive", "ex33", "--markdown"]) == 0
    assert capsys.readouterr().out == all_derivations["ex33"].markdown()
    assert main(["derive", "eq07"]) == 0
    assert capsys.readouterr().out == all_derivations["eq07"].render() + "\n"


def test_cli_help_lists_the_claims(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["derive", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--latex" in out and "--markdown" in out
    for name, (_, title) in specs.CLAIMS.items():
        assert f"  {name:6s} {title}" in out


def test_cli_latex_and_markdown_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["derive", "eq07", "--latex", "--markdown"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


BLOCK_TEST_EXTRA = """
import sys
for name in ("pytest", "_pytest", "pytest_benchmark", "diffusers"):
    sys.modules[name] = None  # importing any of them now raises ImportError
from ddpm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_test_extra(code: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("argv", [["derive", "eq07", "--markdown"], ["derive", "--help"]])
def test_derive_needs_no_test_extra(argv):
    """A plain install (no pytest, no bench extra) derives: the specs import nothing from the test tools."""
    run = run_without_test_extra(BLOCK_TEST_EXTRA, *argv)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and run.stdout


def test_every_spec_imports_without_test_extra():
    """Every spec module imports on a plain install, the Monte Carlo ones too: no spec needs pytest.

    Their pytest entry points are tests/specs/test_<module>.py, apart from the claims."""
    modules = sorted(p.stem for p in (ROOT / "specs").glob("*.py") if p.stem != "__init__")
    imports = "".join(f"import ddpm.specs.{m}\n" for m in modules)
    run = run_without_test_extra(BLOCK_TEST_EXTRA.replace("from ddpm.cli", imports + "from ddpm.cli"), "derive")
    assert run.returncode == 0, run.stderr
    assert len(modules) >= 20 and all(name in run.stdout for name in specs.CLAIMS)


def test_the_blocker_blocks():
    """The checks above can fail: a module that needs pytest does not import under the same blocker."""
    run = run_without_test_extra(BLOCK_TEST_EXTRA.replace("from ddpm.cli", "import ddpm.pytest_plugin\nfrom ddpm.cli"))
    assert run.returncode != 0 and "import of pytest halted" in run.stderr, run.stderr


def test_hypothesis_is_a_dependency_of_the_package():
    """The specs' bindings draw inputs with hypothesis at run time, so a plain install must bring it."""
    text = (ROOT / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"hypothesis' in dependencies and '"matplotlib' in dependencies and '"mpmath' in dependencies


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-base)")
def test_pdflatex_compiles_the_article(tmp_path, all_derivations):
    """Where TeX is installed, the article compiles as written: every derivation, one section each."""
    tex = tmp_path / "all.tex"
    tex.write_text(latex_document([d.latex(standalone=False) for d in all_derivations.values()]))
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "all.pdf").read_bytes()[:5] == b"%PDF-"
