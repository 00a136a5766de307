"""Write docs/conform-diffusers.md: the conform table for the installed diffusers, its reproductions.

    python scripts/conform_docs.py            # runs `ddpm conform diffusers`'s grid, writes the page

The table is ``to_markdown`` of the grid's reports, as ``ddpm conform diffusers --markdown`` prints it;
each reproduction in docs/conform_repro/ is run here and its last line (the assertion it trips) shown.
"""

from __future__ import annotations

import argparse
import platform
import runpy
import time
from pathlib import Path

import torch

from ddpm.conform import SPECS
from ddpm.conform.beta import DEFAULT_STEPS
from ddpm.conform.cli import run_grid
from ddpm.conform.report import to_markdown

ROOT = Path(__file__).resolve().parents[1]
REPRO = ROOT / "docs" / "conform_repro"

# Each reproduction and the grid rows it explains (the rows whose failing spec it is).
FINDINGS = {
    "ddim_linspace.py": "DDIMScheduler `timestep_spacing='linspace'`: `step`",
    "ddim_trailing.py": "DDIMScheduler `timestep_spacing='trailing'` (with `eta=1.0`, and with zero terminal SNR): "
    "`step`, at the counts 3 and 7 that do not divide T = 1000",
    "ddpm_fixed_large_log.py": "DDPMScheduler `variance_type='fixed_large_log'`: `finite` (and `step` undecided)",
    "ddpm_trailing_last_noise.py": "DDPMScheduler `variance_type='fixed_large'` or `'learned_range'` with "
    "`timestep_spacing='trailing'`: `step`, its last step",
    "steps_offset_out_of_range.py": "DDIMScheduler `steps_offset=1`: `timesteps`, at n = T",
    "dpmsolver_repeated_timestep.py": "DPMSolverMultistepScheduler defaults (and its other non-Karras rows): "
    "`timesteps`, at n = T",
    "dpmsolver_karras_timestep_twice.py": "DPMSolverMultistepScheduler `use_karras_sigmas=True`: `timesteps`, "
    "at n = T (the script shows it at n = 128)",
    "euler_sigma_min_zero_step.py": "EulerDiscreteScheduler `final_sigmas_type='sigma_min'`: `timesteps`",
    "euler_log_linear_extra_level.py": "EulerDiscreteScheduler `interpolation_type='log_linear'`: `timesteps` and "
    "`levels`",
}


def reproduce(path: Path) -> str:
    """The assertion (or exception) the script stops with; '' if it runs clean (the bug is gone)."""
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return ""


def page(out_lines: list[str]) -> str:
    return "\n".join(out_lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "conform-diffusers.md")
    args = parser.parse_args()
    import diffusers

    start = time.monotonic()
    reports = run_grid(DEFAULT_STEPS)
    took = time.monotonic() - start
    n = {k: sum(r.exit_status == k for r in reports) for k in (0, 1, 2)}
    lines = [
        f"# ddpm conform: diffusers {diffusers.__version__}",
        "",
        "Made by `python scripts/conform_docs.py`, which runs the grid of `ddpm conform diffusers` (the "
        "documented configurations of each scheduler the suite knows, `ddpm/conform/grid.py`) at the step "
        f"counts {', '.join(map(str, DEFAULT_STEPS))} and writes this page; the table is its `--markdown` output. "
        f"This run: diffusers {diffusers.__version__}, torch {torch.__version__}, Python "
        f"{platform.python_version()}, {took:.0f} s on this machine's CPU. What each spec checks: "
        "[conform.md](conform.md).",
        "",
        f"{len(reports)} configurations: {n[0]} pass every spec, {n[1]} fail a spec (exit 1), {n[2]} could not be "
        "decided (exit 2: a spec undecided and none failed). An undecided spec says why below; it is never a pass.",
        "",
        to_markdown(reports, SPECS).rstrip(),
        "",
        "A `departure` is a documented choice that differs from the paper, reported with its cost, not a failure.",
        "",
        "## Findings, each with a script that reproduces it from the public API",
        "",
        "Each script is in `docs/conform_repro/`; it asserts what the paper asks and stops where diffusers "
        "differs. The last line below is what it printed in this run.",
    ]
    for name, rows in FINDINGS.items():
        path = REPRO / name
        code = path.read_text().rstrip()
        first = code.splitlines()[0].lstrip("# ")
        result = reproduce(path)
        lines += [
            "",
            f"### {first}",
            "",
            f"Rows: {rows}.",
            "",
            "```python",
            code,
            "```",
            "",
            f"This run: `{result}`" if result else "This run: **no longer reproduces** (the script ran clean).",
        ]
    args.out.write_text(page(lines))
    print(f"wrote {args.out} ({len(reports)} configurations, {took:.0f} s)")


if __name__ == "__main__":
    main()
