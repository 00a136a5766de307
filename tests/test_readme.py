"""What the README shows a newcomer holds: the example runs; numbers, LaTeX and figures are real."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block_after(heading: str, language: str, text: str = README) -> str:
    """The first fenced ``language`` code block after the line ``heading``."""
    rest = text[text.index(f"\n{heading}\n") :]
    match = re.search(rf"```{language}\n(.*?)```", rest, re.S)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def test_title_comes_before_the_quick_start():
    assert README.startswith("# ddpm")
    assert README.index("# ddpm") < README.index("## Quick start")


def test_quick_start_names_the_cpu_wheel_index():
    quick_start = block_after("## Quick start", "bash")
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quick_start
    assert "any torch >= 2.2" in README
    assert "named first so that pip" not in README  # the old, wrong explanation


def test_the_from_python_example_runs_as_written():
    """The block runs as it stands, quickly (the fast sampler, 500 samples), and gives what it says."""
    namespace: dict = {}
    exec(compile(block_after("### From Python", "python"), "README.md", "exec"), namespace)
    assert namespace["x"].shape == (500, 2) and torch.isfinite(namespace["x"]).all()
    assert namespace["loss"].ndim == 0 and torch.isfinite(namespace["loss"])


def test_unet_parameter_count_in_both_readmes():
    from ddpm.nets import build_network

    count = sum(p.numel() for p in build_network("unet", T=1000).parameters())
    assert f"({count:,} parameters)" in (ROOT / "benchmarks" / "README.md").read_text()
    assert f"{round(count / 1000)}k parameters" in README


def test_the_latex_shown_is_what_ddpm_derive_writes():
    from ddpm.specs.eq07_posterior import derivation

    shown = block_after("### Derivations for a class: LaTeX, Markdown, Jupyter", "latex")
    assert shown.strip() and shown in derivation().latex()


def test_the_speedup_chart_data_is_the_measured_table():
    """make_figures charts the benchmark README's measured quick run; each speedup is peer / ours."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts" / "make_figures.py")
    assert spec and spec.loader
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    rows = make_figures.rows_from_benchmarks_readme()
    assert len(rows) == 7 and rows[0]["workload"] == "fc64 sample N=256 T=1000" and rows[0]["target"] == 2.0
    for row in rows:
        assert abs(row["speedup"] - row["peer_s"] / row["ours_s"]) <= 0.01, row


def test_every_figure_the_readme_shows_is_committed_and_every_committed_figure_shown():
    shown = set(re.findall(r"docs/[A-Za-z0-9_]+\.png", README))
    committed = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.png")}
    assert shown == committed
    kinds = {"cb_samples", "cb_loss", "cb_trajectory", "mnist_style_grid", "speedup"}  # one of each kind
    assert {f"docs/{kind}.png" for kind in kinds} <= shown
    for name in committed:
        assert (ROOT / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_path_the_readmes_commands_name_exists():
    """The README's shell blocks name paths that exist, and give pytest only paths under tests/."""
    pattern = r"(?<![\w/.$-])((?:tests|specs|scripts|benchmarks|docs)/[\w/.*-]*)"
    lines = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S)).splitlines()
    paths = {p for line in lines for p in re.findall(pattern, line.split("#")[0])}
    assert {"tests/specs", "tests/specs/test_eq07_posterior.py", "scripts/seed_sweep.py"} <= paths
    assert [p for p in sorted(paths) if not list(ROOT.glob(p.rstrip("/")))] == []
    run_by_pytest = {p for line in lines if "pytest" in line for p in re.findall(pattern, line.split("#")[0])}
    assert run_by_pytest and all(p.startswith("tests/") for p in run_by_pytest), run_by_pytest
