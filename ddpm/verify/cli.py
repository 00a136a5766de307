"""``ddpm verify FILE|DIR ...``.

Each file verified in its own sandbox, the verdict computed in this process.

The file under test runs in a confined child (:mod:`ddpm.verify.sandbox`) that only streams raw
observations over an authenticated channel; the course's ``decide`` turns them into outcomes here
(:mod:`ddpm.verify.runner`). One file prints its report (a table, or JSON with ``--json``); several
files (a directory stands for its .py and .ipynb files) are verified in parallel and summed up in one
table, with ``--json``, ``--gradescope results.json`` and ``--junit report.xml`` for graders' tools.
Exit status, the worst over the files: 0 every spec passes; 1 a spec fails; 2 a file cannot be
verified (it cannot be loaded, its run did not finish, a spec stayed undecided) or a bad argument, or
``--strict`` (or ``DDPM_VERIFY_STRICT=1``) where the sandbox lacks a protection.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ddpm.beta.schedule import SIGMA2_CHOICES, linear_schedule
from ddpm.verify.formats import summary_table, to_gradescope, to_json, to_junit, write_atomically
from ddpm.verify.runner import expand_paths, verify_file, verify_many
from ddpm.verify.sandbox import STRICT_ENV, Limits, adopt_orphans, kill_adopted, missing_here, refusal, strict_from_env

__all__ = ["add_arguments", "run", "verify_file", "config_of"]

DEFAULT_T, DEFAULT_BETA_1, DEFAULT_BETA_T = 20, 0.01, 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ddpm verify``."""
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="Python files or notebooks defining class DDPM as in the 02460 template, or 6.S183 "
        "notebooks (.ipynb or script) defining training_loop and samples; or directories of them",
    )
    from ddpm.verify.courses import COURSES

    parser.add_argument(
        "--course",
        choices=tuple(COURSES),
        default=None,
        help="verify every file as this course's answer: 02460 (a class DDPM) or 6.S183 (a notebook "
        "defining training_loop and samples); default: recognised from what each file defines",
    )
    parser.add_argument(
        "--T", type=int, default=DEFAULT_T, help="diffusion steps the DDPM is built with (default: %(default)s)"
    )
    parser.add_argument("--beta-1", type=float, default=DEFAULT_BETA_1, help="beta_1 (default: %(default)s)")
    parser.add_argument("--beta-T", type=float, default=DEFAULT_BETA_T, help="beta_T (default: %(default)s)")
    parser.add_argument(
        "--sigma",
        choices=("any",) + SIGMA2_CHOICES,
        default="any",
        help="the reverse variance to demand: beta (the sheet's choice), beta_tilde, or any of the "
        "two (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default: %(default)s)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds each file may run once loading it begins; the verifier's own start is not counted "
        "(default: %(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=0, help="files verified at once (default: the number of cores)")
    parser.add_argument(
        "--memory-gib",
        type=float,
        default=Limits().memory / 2**30,
        help="address space the file may use, in GiB (default: %(default)s)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="refuse to verify (exit 2) where the sandbox lacks a protection: confined reads and writes, no "
        f"network, no signals out; {STRICT_ENV}=1 makes it the default",
    )
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON, for graders")
    parser.add_argument(
        "--gradescope", type=Path, metavar="PATH", help="also write a Gradescope autograder results.json to PATH"
    )
    parser.add_argument("--junit", type=Path, metavar="PATH", help="also write JUnit XML to PATH")


def config_of(args: argparse.Namespace) -> dict:
    """The verifier's settings from the options, each checked up front; ValueError naming a bad value."""
    if args.T < 2:
        raise ValueError(f"--T must be at least 2 (Algorithm 2 needs a step with noise and one without), got {args.T}")
    schedule = linear_schedule(args.T, args.beta_1, args.beta_T)  # raises ValueError naming a bad beta
    tiny = torch.finfo(torch.float32).tiny
    alpha_bar_T = float(schedule.alpha_bar[-1])
    if alpha_bar_T < tiny:
        raise ValueError(
            f"--T {args.T} with beta {args.beta_1}..{args.beta_T}: alpha_bar_T = {alpha_bar_T:.3g} "
            f"underflows in float32 (smallest normal {tiny:.3g}), where a template DDPM computes it; "
            "choose a smaller --T or smaller betas"
        )
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.jobs < 0:
        raise ValueError(f"--jobs must be 0 (the number of cores) or more, got {args.jobs}")
    if not (math.isfinite(args.memory_gib) and args.memory_gib >= 1):
        raise ValueError(f"--memory-gib must be at least 1 (torch alone maps about 1 GiB), got {args.memory_gib}")
    sigma = list(SIGMA2_CHOICES) if args.sigma == "any" else [args.sigma]
    return {"T": args.T, "beta_1": args.beta_1, "beta_T": args.beta_T, "sigma": sigma, "seed": args.seed}


def _check_output(path: Path | None, option: str) -> None:
    if path is not None and not path.parent.is_dir():
        raise ValueError(f"{option} {path}: the folder {path.parent} does not exist")


def run(args: argparse.Namespace) -> int:
    """``ddpm verify``.

    Verify every file, print the report(s), write the graders' files; the worst exit status.
    """
    config = config_of(args)
    files = expand_paths(args.files)
    _check_output(args.gradescope, "--gradescope")
    _check_output(args.junit, "--junit")
    limits = Limits(memory=int(args.memory_gib * 2**30))
    args.strict = bool(args.strict) or strict_from_env()  # ValueError naming a bad DDPM_VERIFY_STRICT
    missing = missing_here() if args.strict else {}
    if missing:
        raise ValueError(refusal(missing))
    adopt_orphans()  # this command owns its process: whatever escapes a reaper comes back here and is killed
    try:
        return _run(args, config, files, limits)
    finally:
        left = kill_adopted()
        if left:
            print(f"ddpm verify: killed {left} processes the files left running", file=sys.stderr)


def _run(args: argparse.Namespace, config: dict, files: list[Path], limits: Limits) -> int:
    if len(files) == 1:
        reports = [verify_file(files[0], _course_of(args, files[0]), config, args.timeout, limits, args.strict)]
    else:
        total = len(files)
        finished = []

        def progress(report) -> None:
            finished.append(report)
            print(f"[{len(finished)}/{total}] {report.file}: exit {report.exit_status}", file=sys.stderr, flush=True)

        reports = verify_many(
            files,
            getattr(args, "course", None),
            config,
            args.timeout,
            args.jobs or None,
            limits,
            done=progress,
            strict=args.strict,
        )
    if args.json:
        print(to_json(reports))
    elif len(reports) == 1:
        print(reports[0].to_table())
    else:
        print(summary_table(reports))
    if args.gradescope:
        import json

        write_atomically(args.gradescope, json.dumps(to_gradescope(reports), indent=2))
    if args.junit:
        write_atomically(args.junit, to_junit(reports))
    return max(r.exit_status for r in reports)


def _course_of(args: argparse.Namespace, path: Path):
    from ddpm.verify.runner import course_for

    return course_for(path, getattr(args, "course", None))
