"""What ``ddpm conform`` says: one report a (target, configuration), in verify's shape.

Each spec's :class:`~ddpm.verify.report.Outcome` (pass / fail / undecided, citation, the numbers
observed and expected, where: the step count n and the timesteps); the exit status is verify's
(0 every spec passes, 1 any fails, 2 the target cannot be checked or a spec stayed undecided).
Text, JSON, JUnit (through verify's writer: a testsuite a configuration, a testcase a spec) and a
Markdown table for the docs.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ddpm.verify.formats import to_junit as verify_junit
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome, Report, closing_line, counts, exit_status

__all__ = ["ConformReport", "summary_table", "to_json", "to_junit", "to_markdown"]


@dataclass
class ConformReport:
    """The specs' outcomes for one target built with one configuration, held at ``steps`` step counts."""

    target: str
    config: dict[str, Any]
    steps: tuple[int, ...]
    outcomes: list[Outcome] = field(default_factory=list)
    error: str = ""  # the target could not be checked: one line
    claims: dict[str, str] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        return exit_status(self.outcomes, self.error or None)

    @property
    def label(self) -> str:
        cfg = " ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.target} {cfg}".strip()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "config": self.config,
            "steps": list(self.steps),
            "exit_status": self.exit_status,
            "error": self.error,
            "outcomes": [
                dict(asdict(o), lines=list(o.lines), claim=self.claims.get(o.spec, "")) for o in self.outcomes
            ],
        }

    def to_table(self, width: int = 112) -> str:
        lines = [f"ddpm conform {self.label}  (step counts {', '.join(map(str, self.steps))})"]
        if self.error:
            lines.append(f"cannot check: {self.error}")
        for o in self.outcomes:
            status = o.status.upper() if o.status == FAIL else o.status
            lines.append(f"  {o.spec:<17} {status:<9} {o.cites}")
            text = o.detail or self.claims.get(o.spec, "")
            lines.extend(textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      "))
        lines.append(closing_line(self.outcomes, self.exit_status, "not checked"))
        return "\n".join(lines)

    def as_verify_report(self) -> Report:
        """The same outcomes as a ``ddpm verify`` report, for its JUnit writer."""
        return Report(
            self.label,
            self.exit_status,
            dict(self.config),
            list(self.outcomes),
            [],
            self.error,
            "",
            "conform",
            dict(self.claims),
        )


def _verdict(r: ConformReport) -> str:
    if r.error:
        return "cannot check: " + r.error
    failed = [o.spec for o in r.outcomes if o.status == FAIL]
    undecided = [o.spec for o in r.outcomes if o.status == UNDECIDED]
    if failed:
        return "FAIL: " + ", ".join(failed)
    if undecided:
        return "undecided: " + ", ".join(undecided)
    return "all specs pass"


def summary_table(reports: Sequence[ConformReport]) -> str:
    """One line a (target, configuration): exit, counts, verdict; then the worst exit status."""
    lines = []
    for r in reports:
        c = counts(r.outcomes)
        lines.append(
            f"{r.exit_status}  {c[PASS]} pass {c[FAIL]} fail {c[UNDECIDED]} undecided  {r.label}: {_verdict(r)}"
        )
    worst = max((r.exit_status for r in reports), default=0)
    n = {k: sum(r.exit_status == k for r in reports) for k in (0, 1, 2)}
    lines.append(f"{len(reports)} configurations: {n[0]} pass, {n[1]} fail, {n[2]} not checked (exit {worst})")
    return "\n".join(lines)


def to_json(reports: Sequence[ConformReport]) -> str:
    """One report as its dict; several as ``{"exit_status": worst, "reports": [...]}``."""
    if len(reports) == 1:
        return json.dumps(reports[0].to_dict(), indent=2)
    worst = max((r.exit_status for r in reports), default=0)
    return json.dumps({"exit_status": worst, "reports": [r.to_dict() for r in reports]}, indent=2)


def to_junit(reports: Sequence[ConformReport]) -> str:
    """JUnit XML: a testsuite a configuration, a testcase a spec (verify's writer)."""
    return verify_junit([r.as_verify_report() for r in reports]).replace('name="ddpm verify"', 'name="ddpm conform"', 1)


def to_markdown(reports: Sequence[ConformReport], specs: Sequence[str]) -> str:
    """A Markdown table: a row a (target, configuration), a column a spec; failures' details below it."""
    head = "| scheduler | configuration | " + " | ".join(specs) + " |"
    rows = [head, "|" + "---|" * (len(specs) + 2)]
    details: list[str] = []
    departures: dict[str, list[str]] = {}  # a documented departure's text -> the rows it holds for
    for r in reports:
        cfg = ", ".join(f"`{k}={v!r}`" for k, v in r.config.items()) or "defaults"
        by_spec = {o.spec: o for o in r.outcomes}
        cells = []
        for s in specs:
            o = by_spec.get(s)
            cells.append("—" if o is None else {PASS: "pass", FAIL: "**FAIL**", UNDECIDED: "undecided"}[o.status])
        if r.error:
            cells = ["cannot check"] * len(specs)
        rows.append(f"| {r.target} | {cfg} | " + " | ".join(cells) + " |")
        for o in r.outcomes:
            if o.status != PASS:
                details.append(f"- **{r.target}** {cfg}, `{o.spec}` ({o.status}): {o.detail}")
            elif "departure: " in o.detail:
                text = f"`{o.spec}`: " + o.detail.split("departure: ", 1)[1]
                departures.setdefault(text, []).append(f"{r.target} {cfg}")
    if departures:
        details.append("")
        details.append("Documented departures from the paper (passes, reported with their cost):")
        details += [f"- {text} — in {'; '.join(where)}" for text, where in departures.items()]
    return "\n".join(rows) + ("\n\n" + "\n".join(details) if details else "") + "\n"
