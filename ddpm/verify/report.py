"""What ``ddpm verify`` says about a file: each spec's outcome, a course's decision, the report.

A course's ``decide`` (run in the parent, on the child's raw records) returns a :class:`Decision`:
one :class:`Outcome` per spec of the course, notes, and either nothing wrong with the run, an
``error`` (the file could not be loaded or run to the end of loading) or ``cannot_verify`` (the file
runs, but the verifier cannot observe what it needs: its own generator, a stand-in for a missing
package, an exotic tensor). An outcome is ``pass``, ``fail`` (the detail says what the file does
instead and ``lines`` shows the student's lines involved) or ``undecided`` (the evidence is missing;
the detail says why: "not decided: no step t = 1 ran"). Undecided is never a pass.

Exit status: 0 every spec passes; 1 any spec fails; 2 the file cannot be verified (an error,
cannot_verify, or undecided specs and no failure).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

__all__ = [
    "PASS",
    "FAIL",
    "UNDECIDED",
    "STATUSES",
    "Outcome",
    "Decision",
    "Report",
    "exit_status",
    "counts",
    "closing_line",
]

PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
STATUSES = (PASS, FAIL, UNDECIDED)


@dataclass(frozen=True)
class Outcome:
    """One spec's outcome: ``status`` pass, fail or undecided; ``detail`` in plain words; the spec's
    citation; ``lines``, the student's source lines involved (``"ddpm.py:41  x_t = ..."``)."""

    spec: str
    status: str
    detail: str = ""
    cites: str = ""
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"an outcome's status is one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "lines", tuple(self.lines))


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """How many outcomes have each status."""
    found = [o.status for o in outcomes]
    return {s: found.count(s) for s in STATUSES}


def closing_line(outcomes: Iterable[Outcome], status: int, not_checked: str) -> str:
    """A report's last line: the counts, the verdict (``not_checked`` for exit 2) and the exit status."""
    c = counts(outcomes)
    verdict = {0: "all specs pass", 1: "some specs fail", 2: not_checked}[status]
    return f"{c[PASS]} passed, {c[FAIL]} failed, {c[UNDECIDED]} undecided: {verdict} (exit {status})"


def exit_status(outcomes: list[Outcome], error: str | None = None, cannot_verify: str | None = None) -> int:
    """0 all pass; 1 any fail; 2 an error, cannot_verify, or undecided specs with no failure."""
    if error or cannot_verify:
        return 2
    if any(o.status == FAIL for o in outcomes):
        return 1
    if not outcomes or any(o.status != PASS for o in outcomes):
        return 2
    return 0


@dataclass
class Decision:
    """A course's verdict on one file, computed in the parent from the child's records alone."""

    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    cannot_verify: str | None = None

    @property
    def exit_status(self) -> int:
        return exit_status(self.outcomes, self.error, self.cannot_verify)


@dataclass
class Report:
    """Everything ``ddpm verify`` says about one file; ``claims`` maps each spec to its claim in words."""

    file: str
    exit_status: int
    config: dict
    outcomes: list[Outcome]
    notes: list[str]
    error: str = ""
    cannot_verify: str = ""
    course: str = "02460"
    claims: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        file: str,
        decision: Decision,
        config: dict,
        course: str = "02460",
        claims: dict[str, str] | None = None,
        notes: Sequence[str] = (),
    ) -> Report:
        """The report of a decision (``notes`` are the parent's own, appended to the course's)."""
        return cls(
            file,
            decision.exit_status,
            config,
            list(decision.outcomes),
            list(decision.notes) + list(notes),
            decision.error or "",
            decision.cannot_verify or "",
            course,
            dict(claims or {}),
        )

    def __post_init__(self) -> None:
        if not self.claims:  # the course's own claims, when the caller gave none
            from ddpm.verify.courses import COURSES

            if self.course in COURSES:
                self.claims = COURSES[self.course].claims()

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("claims")
        data["outcomes"] = [
            dict(asdict(o), lines=list(o.lines), claim=self.claims.get(o.spec, "")) for o in self.outcomes
        ]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_table(self, width: int = 112) -> str:
        c = self.config
        sigma = c.get("sigma")
        sigma = "/".join(sigma) if isinstance(sigma, (list, tuple)) else sigma
        if self.course == "6.S183":
            lines = [f"ddpm verify {self.file}  (6.S183 pset 1: training_loop and samples, seed {c.get('seed')})"]
        else:
            lines = [
                f"ddpm verify {self.file}  (T = {c.get('T')}, beta {c.get('beta_1')}..{c.get('beta_T')}, "
                f"sigma {sigma}, seed {c.get('seed')})"
            ]
        if self.error:
            lines.append(f"cannot verify: {self.error}")
        if self.cannot_verify:
            lines.extend(textwrap.wrap(f"cannot verify: {self.cannot_verify}", width, subsequent_indent="  "))
        shown = [o for o in self.outcomes if not (self.cannot_verify and o.status == UNDECIDED)]
        if shown:
            name_w = max(len(o.spec) for o in shown)
            cite_w = max(len(o.cites) for o in shown)
            status_w = max(len(UNDECIDED), 6)
            lines.append(f"  {'spec':<{name_w}}  {'result':<{status_w}}  {'cites':<{cite_w}}  details")
            indent = 2 + name_w + 2 + status_w + 2 + cite_w + 2
            for o in shown:
                status = o.status.upper() if o.status == FAIL else o.status
                head = f"  {o.spec:<{name_w}}  {status:<{status_w}}  {o.cites:<{cite_w}}  "
                text = o.detail or self.claims.get(o.spec, "")
                body = textwrap.wrap(text, max(width - indent, 30)) or [""]
                lines.append(head + body[0])
                lines.extend(" " * indent + more for more in body[1:])
                lines.extend(" " * indent + "> " + src for src in o.lines)
        for note in self.notes:
            lines.extend(textwrap.wrap(note, width, initial_indent="note: ", subsequent_indent="      "))
        lines.append(closing_line(self.outcomes, self.exit_status, "not verified"))
        return "\n".join(lines)
