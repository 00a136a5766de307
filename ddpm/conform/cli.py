"""``ddpm conform TARGET | diffusers``: the options, the run, the exit status.

TARGET is ``module:Class`` (importable from the current directory) or ``module:function`` of a
k-diffusion style sampler or of a smalldiffusion-style ``samples(model, sigmas, gam, mu, ...)`` (whose
``--config`` is one ``gam=...`` and ``mu=...``); ``diffusers`` alone runs every
scheduler of the installed diffusers that the suite knows over its documented configurations
(:mod:`ddpm.conform.grid`), a line each, progress on stderr. Exit 0 every spec passes, 1 any fails,
2 the target cannot be checked (not installed, not a scheduler, a config it rejects) or a spec stayed
undecided.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from ddpm.conform import SPECS, conform
from ddpm.conform.beta import DEFAULT_STEPS
from ddpm.conform.report import ConformReport, summary_table, to_json, to_junit, to_markdown
from ddpm.conform.targets import TargetError, load, parse_config, parse_steps

__all__ = ["add_arguments", "run", "run_grid"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ddpm conform``."""
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="module:Class of a scheduler (e.g. diffusers:DDIMScheduler, mylib.schedulers:MyScheduler), "
        "module:function of a sampler f(model, x, sigmas) (k-diffusion's style) "
        "or samples(model, sigmas, gam, mu, ...) (smalldiffusion's style), "
        "or 'diffusers' for every scheduler the suite knows over its documented configurations",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a constructor argument (or a step argument such as eta; gam and mu for a samples(model, sigmas, "
        "gam, mu) function), VALUE a Python literal; repeatable",
    )
    parser.add_argument(
        "--steps",
        default=",".join(map(str, DEFAULT_STEPS)),
        metavar="N[,N...]",
        help="step counts to sample with (default: %(default)s)",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (for the docs)")
    parser.add_argument("--junit", type=Path, metavar="PATH", help="also write JUnit XML: a testcase a spec")


def run_grid(steps: tuple[int, ...], progress: TextIO | None = None) -> list[ConformReport]:
    """Every (scheduler, configuration) of the grid on the installed diffusers; progress to stderr."""
    progress = sys.stderr if progress is None else progress  # looked up now: the caller's sys.stderr
    import importlib

    from ddpm.conform.grid import DIFFUSERS_GRID

    try:
        diffusers = importlib.import_module("diffusers")
    except ModuleNotFoundError:
        raise TargetError("needs diffusers: pip install diffusers") from None
    version = getattr(diffusers, "__version__", "?")
    jobs = [(name, cfg) for name, cfgs in DIFFUSERS_GRID.items() for cfg in cfgs]
    reports = []
    start = time.monotonic()
    for i, (name, cfg) in enumerate(jobs, 1):
        try:
            cls = load(f"diffusers:{name}")
        except TargetError as e:
            print(f"[{i}/{len(jobs)}] diffusers {version}: skipped {name} ({e})", file=progress)
            continue
        report = conform(cls, cfg, steps, name=name)
        reports.append(report)
        print(
            f"[{i}/{len(jobs)} {time.monotonic() - start:5.1f} s] diffusers {version}: {report.label}: "
            f"exit {report.exit_status}",
            file=progress,
            flush=True,
        )
    return reports


def run(args: argparse.Namespace) -> int:
    """``ddpm conform``: print the report(s), write JUnit if asked; the worst exit status."""
    try:
        steps = parse_steps(args.steps)
        config = parse_config(args.config)
        if args.target == "diffusers":
            if config:
                raise TargetError("--config goes with one TARGET (module:Class), not with 'diffusers'")
            reports = run_grid(steps)
        else:
            reports = [conform(load(args.target), config, steps, name=args.target)]
    except TargetError as e:
        print(f"ddpm conform: error: {e}", file=sys.stderr)
        return 2
    if len(reports) == 1 and reports[0].error and not args.json:
        print(f"ddpm conform: error: {reports[0].error}", file=sys.stderr)
    elif args.json:
        print(to_json(reports))
    elif args.markdown:
        print(to_markdown(reports, SPECS), end="")
    elif len(reports) == 1:
        print(reports[0].to_table())
    else:
        print(summary_table(reports))
    if args.junit:
        from ddpm.verify.formats import write_atomically

        write_atomically(args.junit, to_junit(reports))
    return max((r.exit_status for r in reports), default=2)
