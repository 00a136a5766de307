"""``ddpm verify FILE``: run the specs against a DDPM written to the 02460 template, in a child process.

The file runs in ``python -m ddpm.verify.worker`` under a wall-clock limit; whatever it does — hang,
crash, print, raise — ends up in the report, never as a hang or a traceback of the verifier. Exit
status: 0 when every spec passes, 1 when any fails, 2 when the file cannot be loaded, does not
follow the interface, or cannot be run to the end of loading.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import ddpm
from ddpm.schedule import SIGMA2_CHOICES, linear_schedule
from ddpm.verify.harness import Config
from ddpm.verify.report import FAIL, SKIP, Outcome, Report
from ddpm.verify.worker import STAGES

__all__ = ["add_arguments", "run", "verify_file"]

OUTPUT_NOTE_CHARS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ddpm verify``."""
    d = Config()
    parser.add_argument("file", type=Path, help="a Python file defining class DDPM as in the 02460 template")
    parser.add_argument("--T", type=int, default=d.T, help="diffusion steps the DDPM is built with (default: %(default)s)")
    parser.add_argument("--beta-1", type=float, default=d.beta_1, help="beta_1 (default: %(default)s)")
    parser.add_argument("--beta-T", type=float, default=d.beta_T, help="beta_T (default: %(default)s)")
    parser.add_argument("--sigma", choices=("any",) + SIGMA2_CHOICES, default="any",
                        help="the reverse variance to demand: beta (the sheet's choice), beta_tilde, or any of the "
                             "two (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the file may run in all (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON, for graders")


def _config(args: argparse.Namespace) -> Config:
    if args.T < 2:
        raise ValueError(f"--T must be at least 2 (Algorithm 2 needs a step with noise and one without), got {args.T}")
    linear_schedule(args.T, args.beta_1, args.beta_T)  # raises ValueError naming a bad beta
    sigma = SIGMA2_CHOICES if args.sigma == "any" else (args.sigma,)
    return Config(T=args.T, beta_1=args.beta_1, beta_T=args.beta_T, sigma=sigma, seed=args.seed)


def _output_note(stream: str, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    lines = text.splitlines()
    first = lines[0][:OUTPUT_NOTE_CHARS]
    return f"the file wrote {len(lines)} line{'s' * (len(lines) != 1)} to {stream} (the verifier ignores it): {first!r}"


def _unfinished(outcomes: list[Outcome], stage: str, why: str) -> list[Outcome]:
    """The outcomes so far, the stage under way failed with ``why`` and the later stages not run."""
    names = list(STAGES)
    first, *rest = STAGES[stage]
    later = [k for s in names[names.index(stage) + 1:] for k in STAGES[s]]
    return outcomes + [Outcome(first, FAIL, why)] + [Outcome(k, SKIP, f"not run ({why})") for k in rest + later]


def verify_file(path: Path, config: Config, timeout: float) -> Report:
    """Run the worker on ``path`` and turn what it left behind into a report."""
    path = Path(path)
    package_root = str(Path(ddpm.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="ddpm-verify-") as tmp:
        result, config_file = Path(tmp, "result.json"), Path(tmp, "config.json")
        config_file.write_text(json.dumps(asdict(config)))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ddpm.verify.worker", str(path.resolve()), str(result), str(config_file)],
            cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            why = "" if proc.returncode == 0 else f"the process died with exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group, started above
            stdout, stderr = proc.communicate()
            why = f"it did not finish within the time limit of {timeout:g} s"
        state = json.loads(result.read_text()) if result.exists() else {"stage": "load", "outcomes": [], "notes": []}
    outcomes = [Outcome(**o) for o in state["outcomes"]]
    notes = list(state.get("notes", []))
    notes += filter(None, [_output_note("stdout", stdout), _output_note("stderr", stderr)])
    error = state.get("error", "")
    if not error and state["stage"] != "done":
        if why.startswith("the process died") and stderr.strip():
            why += f" ({stderr.strip().splitlines()[-1][:OUTPUT_NOTE_CHARS]})"
        if state["stage"] == "load":
            error = f"loading {path.name}: {why}"
        else:
            outcomes = _unfinished(outcomes, state["stage"], why)
    status = 2 if error else 1 if any(o.status == FAIL for o in outcomes) else 0
    return Report(str(path), status, asdict(config) | {"sigma": "/".join(config.sigma)}, outcomes, notes, error)


def run(args: argparse.Namespace) -> int:
    """``ddpm verify``: print the report (a table, or JSON with --json); return the exit status."""
    report = verify_file(args.file, _config(args), args.timeout)
    print(report.to_json() if args.json else report.to_table())
    return report.exit_status
