"""What the README and the site show holds: the examples run; numbers, LaTeX and figures are real.

The README is the front page (at most 200 lines); the detail lives on the pages under docs/, built by
MkDocs (mkdocs.yml). The tests read the text where it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = {p.name: p.read_text() for p in sorted(DOCS.glob("*.md"))}
READER_PAGES = ("student.md", "grader.md", "library-author.md", "researcher.md", "training.md", "sigma.md")
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def block_after(heading: str, language: str, text: str = README) -> str:
    """The first fenced ``language`` code block after the line ``heading``."""
    rest = text[text.index(f"\n{heading}\n") :]
    match = re.search(rf"```{language}\n(.*?)```", rest, re.S)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def test_title_comes_before_the_quick_start():
    assert README.startswith("# ddpm")
    assert README.index("# ddpm") < README.index("## Quick start")


def test_the_readme_is_a_front_page_of_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_quick_start_is_two_commands_after_the_venv_with_the_cpu_torch_index():
    """After the venv, one line installs (torch's CPU build by the extra index) and trains; one tests."""
    quick_start = block_after("## Quick start", "bash")
    venv, install, test = quick_start.strip().splitlines()
    assert venv.startswith("python3 -m venv .venv")
    assert install.startswith('pip install -e ".[test]"') and CPU_INDEX in install and install.endswith("&& ddpm train")
    assert test == "python -m pytest"
    assert quick_start == block_after("## Quick start", "bash", PAGES["index.md"])  # the site's home says the same
    assert "any torch >= 2.2" in README


def test_the_uv_quick_start_says_the_same_with_the_index_strategy():
    """uv takes each package from the first index that has it unless told to choose as pip does."""
    venv, install, test = (
        block_after("With [uv](https://docs.astral.sh/uv/), the same two commands:", "bash", PAGES["index.md"])
        .strip()
        .splitlines()
    )
    assert venv.startswith("uv venv") and test == "python -m pytest"
    assert install == 'uv pip install -e ".[test]" ' + CPU_INDEX + " --index-strategy unsafe-best-match && ddpm train"
    assert f"`{install}`" in README.replace("\n", " ")


def test_one_example_per_command():
    commands = [line.split()[1] for line in block_after("## One example per command", "bash").strip().splitlines()]
    assert commands == ["train", "sample", "elbo", "derive", "verify", "conform"]
    assert "ddpm conform diffusers:DDIMScheduler" in README


def test_the_readme_links_every_page_of_the_site():
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", README))
    assert set(PAGES) <= linked, set(PAGES) - linked


def test_every_page_is_in_the_sites_nav():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    in_nav = set(re.findall(r"([\w/-]+\.md)", nav))
    assert set(PAGES) <= in_nav, set(PAGES) - in_nav
    assert {"derivations/index.md", "reference/index.md", "benchmarks.md", "changelog.md"} <= in_nav


def test_the_from_python_example_runs_as_written():
    """The block runs as it stands, quickly (the fast sampler, 500 samples), and gives what it says."""
    namespace: dict = {}
    exec(
        compile(block_after("From Python (a test runs this block as it stands):", "python"), "README.md", "exec"),
        namespace,
    )
    assert namespace["x"].shape == (500, 2) and torch.isfinite(namespace["x"]).all()
    assert namespace["loss"].ndim == 0 and torch.isfinite(namespace["loss"])
    training = block_after("### From Python", "python", PAGES["training.md"])
    assert training == block_after("From Python (a test runs this block as it stands):", "python")


def test_the_library_authors_example_runs_and_its_check_can_fail():
    """The page's own posterior passes eq. 7's check; without the root of alpha_bar_{t-1}, it fails."""
    import pytest

    block = block_after("## Hold your function to a derivation", "python", PAGES["library-author.md"])
    exec(compile(block, "library-author.md", "exec"), {})
    wrong = block.replace("alpha_bar[t - 1].sqrt() * beta", "alpha_bar[t - 1] * beta")
    assert wrong != block
    namespace: dict = {}
    with pytest.raises(AssertionError, match="mu_tilde"):
        exec(compile(wrong, "library-author.md (planted)", "exec"), namespace)


def test_unet_parameter_count_in_the_docs():
    from ddpm.nets import build_network

    count = sum(p.numel() for p in build_network("unet", T=1000).parameters())
    assert f"({count:,} parameters)" in (ROOT / "benchmarks" / "README.md").read_text()
    assert f"{round(count / 1000)}k parameters" in PAGES["training.md"]


def test_the_latex_shown_is_what_ddpm_derive_writes():
    from ddpm.specs.eq07_posterior import derivation

    shown = block_after("### Derivations for a class: LaTeX, Markdown, Jupyter", "latex", PAGES["researcher.md"])
    assert shown.strip() and shown in derivation().latex()


def load_script(name: str):
    """scripts/NAME.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_speedup_chart_data_is_the_measured_table():
    """make_figures charts the benchmark README's measured quick run; each speedup is peer / ours."""
    rows = load_script("make_figures").rows_from_benchmarks_readme()
    assert len(rows) == 7 and rows[0]["workload"] == "fc64 sample N=256 T=1000" and rows[0]["target"] == 2.0
    for row in rows:
        assert abs(row["speedup"] - row["peer_s"] / row["ours_s"]) <= 0.01, row


def figures_named(text: str) -> set[str]:
    return set(re.findall(r"([A-Za-z0-9_]+\.png)", text))


def test_every_figure_shown_is_committed_and_every_committed_figure_shown():
    """The README and the pages show exactly the PNGs under docs/, all made by scripts/make_figures.py."""
    shown = figures_named(README) | {name for text in PAGES.values() for name in figures_named(text)}
    shown |= figures_named((ROOT / "benchmarks" / "README.md").read_text())
    committed = {p.name for p in DOCS.glob("*.png")}
    assert committed <= shown and {name for name in shown if (DOCS / name).exists()} == committed
    assert "docs/cb_default_samples.png" in README.split("## Quick start")[0]  # the first picture: the default job
    kinds = {
        "cb_default_samples",
        "cb_samples",
        "cb_loss",
        "cb_trajectory",
        "mnist_style_grid",
        "speedup",
        "swissroll_samples",
    }
    assert {f"{kind}.png" for kind in kinds} == committed
    script = (ROOT / "scripts" / "make_figures.py").read_text()
    assert [name for name in sorted(committed) if f'"{name}"' not in script] == []
    for name in committed:
        assert (DOCS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def shell_lines(text: str) -> list[str]:
    return "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S)).splitlines()


def test_every_path_the_commands_name_exists():
    """The README's and the pages' shell blocks name paths that exist, and give pytest only tests/."""
    pattern = r"(?<![\w/.$-])((?:tests|specs|scripts|benchmarks|docs)/[\w/.*-]*)"
    lines = shell_lines(README) + [line for text in PAGES.values() for line in shell_lines(text)]
    paths = {p for line in lines for p in re.findall(pattern, line.split("#")[0])}
    assert {"tests/specs", "tests/specs/test_eq07_posterior.py", "scripts/seed_sweep.py"} <= paths
    assert [p for p in sorted(paths) if not list(ROOT.glob(p.rstrip("/")))] == []
    run_by_pytest = {p for line in lines if "pytest" in line for p in re.findall(pattern, line.split("#")[0])}
    assert run_by_pytest and all(p.startswith("tests/") for p in run_by_pytest), run_by_pytest


def test_the_readme_counts_of_conform_are_the_tables():
    """The README's counts for diffusers are those of docs/conform-diffusers.md.

    The slow tier regenerates that page's table and compares it (test_conform.py); a test reruns its scripts."""
    table = (ROOT / "docs" / "conform-diffusers.md").read_text()
    counts = re.search(r"(\d+) configurations: (\d+) pass every spec", table)
    assert counts, "docs/conform-diffusers.md has no summary line"
    total, passed = counts.groups()
    assert f"passes {passed} of its {total} configurations" in " ".join(README.split())
    scripts = sorted((ROOT / "docs" / "conform_repro").glob("*.py"))
    words = {5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"finds {words.get(len(scripts), len(scripts))} distinct failures" in " ".join(README.split())
