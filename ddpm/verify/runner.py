"""The parent of ``ddpm verify``: one file in the sandbox to a report, and many files at once.

:func:`verify_file` runs the course's observer on the file in the sandboxed child
(:mod:`ddpm.verify.sandbox`), reads its authenticated records and hands them to the course's
``decide``, in this process, which has loaded none of the student's code. The verdict is then held to
what the run proves: every spec of the course gets exactly one outcome (a missing one is undecided,
never a pass); a forged, malformed or truncated stream, or one from a child that never confined itself,
is "could not verify" (exit 2) or, where failures were already seen, keeps them (exit 1) — never a pass.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome, Report
from ddpm.verify.sandbox import STARTUP_SECONDS, ChildRun, Limits, refusal, run_child, strict_from_env

__all__ = ["SUFFIXES", "course_for", "expand_paths", "verify_file", "verify_many"]

SUFFIXES = (".py", ".ipynb")


class CourseLike(Protocol):
    """What the runner uses of a course: :class:`ddpm.verify.courses.Course`, or a test's own plug-in."""

    @property
    def name(self) -> str: ...

    @property
    def observer(self) -> str: ...

    @property
    def specs(self) -> dict[str, tuple[str, str]]: ...

    def default_config(self) -> dict: ...

    def decide(self) -> Callable: ...

    def claims(self) -> dict[str, str]: ...


def _course(course: str | CourseLike) -> CourseLike:
    if not isinstance(course, str):
        return course
    from ddpm.verify.courses import course as named

    return named(course)


def course_for(path: Path, requested: str | CourseLike | None = None) -> CourseLike:
    """The course a file is verified as.

    The one asked for, else the first whose ``detect`` knows the file,
    else 02460."""
    from ddpm.verify.courses import COURSES

    if requested:
        return _course(requested)
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        text = ""
    for c in COURSES.values():
        try:
            if c.detect(text):
                return c
        except Exception:  # noqa: BLE001 - a detector's bug must not stop the batch; the default course decides
            continue
    return COURSES["02460"]


def _stop_reason(run: ChildRun, timeout: float) -> str | None:
    """Why the child's record stream has no end, in words; None when it ended."""
    if run.stream.complete:
        return None
    if run.timed_out and "__sandbox__" not in run.stream.system:
        return f"the verifier's child did not start within {STARTUP_SECONDS:g} s (the machine is overloaded?)"
    if run.timed_out:
        return f"it did not finish within the time limit of {timeout:g} s"
    code = run.exit_code
    if code is None:
        return "the child could not be stopped"
    if code > 128:
        sig = code - 128
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        why = {
            "SIGXCPU": " (the CPU time limit)",
            "SIGXFSZ": " (the file size limit)",
            "SIGKILL": " (killed: out of memory, or by the file itself)",
        }.get(name, "")
        reason = f"the process was killed by {name}{why}"
    elif code:
        reason = f"the process died with exit status {code}"
    else:
        reason = "the process ended before the verifier had finished (os._exit or similar in the file)"
    last = run.stderr.text().strip().splitlines()
    return reason + (f" ({last[-1][:200]})" if last else "")


def _undecided(specs: Iterable[str], cites: dict, why: str) -> list[Outcome]:
    return [Outcome(k, UNDECIDED, f"not decided: {why}", cites.get(k, "")) for k in specs]


def _held_to_the_run(decision: Decision, specs: dict, stop: str | None) -> Decision:
    """Every spec once, in the course's order; what the decision left out is undecided.

    A truncated run is no pass.
    """
    cites = {k: v[1] for k, v in specs.items()}
    seen: dict[str, Outcome] = {}
    notes = list(decision.notes)
    for o in decision.outcomes:
        if o.spec not in specs:
            notes.append(f"the decision named an unknown spec {o.spec!r}; ignored")
        elif o.spec in seen:
            return Decision(
                _undecided(specs, cites, "the verifier decided a spec twice"),
                notes,
                decision.error,
                f"internal error of the verifier: spec {o.spec!r} decided twice",
            )
        else:
            seen[o.spec] = o
    why = "the run stopped before this was observed" if stop else "the verifier's decision left it out"
    outcomes = [seen.get(k) or _undecided([k], cites, why)[0] for k in specs]
    error, cannot = decision.error, decision.cannot_verify
    if stop:
        if any(o.status == FAIL for o in outcomes):
            notes.append(f"the run did not finish: {stop}")
        else:  # why the run stopped says more than what its records lack
            notes += [f"from the records: {why}" for why in (error, cannot) if why]
            error, cannot = None, f"the run did not finish: {stop}"
    return Decision(outcomes, notes, error, cannot)


def verify_file(
    path: Path | str,
    course: str | CourseLike = "02460",
    config: dict | None = None,
    timeout: float = 60.0,
    limits: Limits | None = None,
    strict: bool | None = None,
) -> Report:
    """``path`` verified as ``course`` (a name or a Course) in the sandbox; the report [issue 9].

    ``strict`` (None: ``DDPM_VERIFY_STRICT`` decides): a file whose sandbox lacks a protection is not run
    at all, and the report says "could not verify" and what was missing.
    """
    strict = strict_from_env() if strict is None else strict
    c = _course(course)
    config = {**c.default_config(), **(config or {})}
    path = Path(path)
    specs, cites = c.specs, {k: v[1] for k, v in c.specs.items()}

    def report(decision: Decision, notes: list[str]) -> Report:
        return Report.of(str(path), decision, config, course=c.name, claims=c.claims(), notes=notes)

    if not path.is_file():
        return report(Decision(_undecided(specs, cites, "no file"), error=f"no such file: {path}"), [])
    job = {"course": c.name, "observer": c.observer, "file": str(path.resolve()), "config": config}
    run = run_child(job, timeout, limits, strict)
    notes = []
    if run.isolation:
        notes.append("sandbox: " + "; ".join(run.isolation))
    if strict and run.missing and not run.stream.error:
        why = "the file was not run: " + refusal(run.missing)
        return report(Decision(_undecided(specs, cites, why), cannot_verify=why), notes)
    notes += run.output_notes()
    if run.leftovers:
        notes.append(f"{run.leftovers} processes of the file were still running after it and were killed")
    stream = run.stream
    if stream.error:
        why = f"the record stream from the child is not intact: {stream.error}"
        return report(Decision(_undecided(specs, cites, why), cannot_verify=why), notes)
    if "__sandbox__" not in stream.system:
        why = "the child did not start: " + (_stop_reason(run, timeout) or "it never confined itself")
        return report(Decision(_undecided(specs, cites, why), cannot_verify=why), notes)
    try:
        decision = c.decide()(list(stream.records), config)
    except Exception as exc:  # noqa: BLE001 - the verifier's own bug: reported as such, never a verdict
        where = traceback.extract_tb(exc.__traceback__)[-1]
        why = (
            f"internal error of the verifier while deciding: {type(exc).__name__}: {exc} "
            f"({Path(where.filename).name}:{where.lineno})"
        )
        return report(Decision(_undecided(specs, cites, why), cannot_verify=why), notes)
    return report(_held_to_the_run(decision, specs, _stop_reason(run, timeout)), notes)


def expand_paths(args: Iterable[Path | str]) -> list[Path]:
    """Files and directories to the files to verify: a directory stands for its .py and .ipynb files.

    Raises ValueError naming the first path that does not exist or a directory without such files.
    """
    files: list[Path] = []
    for arg in map(Path, args):
        if arg.is_dir():
            found = sorted(p for p in arg.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"{arg} is a directory without .py or .ipynb files")
            files += found
        elif arg.is_file():
            files.append(arg)
        else:
            raise ValueError(f"no such file or directory: {arg}")
    return list(dict.fromkeys(files))


def verify_many(
    paths: list[Path],
    course: str | CourseLike | None = None,
    config: dict | None = None,
    timeout: float = 60.0,
    jobs: int | None = None,
    limits: Limits | None = None,
    done: Callable[[Report], None] | None = None,
    strict: bool | None = None,
) -> list[Report]:
    """Every file verified, up to ``jobs`` at once (default: the cores this process may use).

    Reports in order.

    ``done(report)`` is called as each file finishes (progress). Each file gets its own sandbox.
    """
    if not jobs:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def one(path: Path) -> Report:
        r = verify_file(path, course_for(path, course), config, timeout, limits, strict)
        if done:
            done(r)
        return r

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
        return list(pool.map(one, paths))


def counts(report: Report) -> dict[str, int]:
    return {s: sum(o.status == s for o in report.outcomes) for s in (PASS, FAIL, UNDECIDED)}
