"""The outputs of ``ddpm verify`` over many files.

The summary table, JSON, Gradescope's results.json, JUnit XML.

Gradescope reads ``results.json`` as its autograder specification describes it: a top-level ``score``
and ``tests``, each with ``name``, ``score``, ``max_score``, ``status`` ("passed" / "failed") and
``output``. JUnit XML is one ``testsuite`` per file, one ``testcase`` per spec (classname the file,
name the spec); a failing spec is a ``failure``, an undecided one an ``error`` (the verifier could not
decide it: neither passed nor failed), and a file that cannot be verified holds an ``error`` testcase
naming why.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ddpm.verify.report import FAIL, PASS, UNDECIDED, Report, counts

__all__ = ["spec_text", "summary_table", "to_gradescope", "to_json", "to_junit", "write_atomically"]


def _verdict(r: Report) -> str:
    if r.exit_status == 0:
        return "all specs pass"
    if r.exit_status == 1:
        return "FAIL: " + ", ".join(o.spec for o in r.outcomes if o.status == FAIL)
    why = (
        r.error
        or r.cannot_verify
        or "specs undecided: " + ", ".join(o.spec for o in r.outcomes if o.status == UNDECIDED)
    )
    return "cannot verify: " + why.splitlines()[0] if why else "cannot verify"


def summary_table(reports: list[Report], width: int = 120) -> str:
    """One line a file: exit status, counts and the verdict in words; then the worst exit status."""
    name_w = min(max([len(r.file) for r in reports] + [4]), 60)
    lines = [f"{'file':<{name_w}}  exit  pass  fail  undecided  verdict"]
    for r in reports:
        c = counts(r.outcomes)
        name = r.file if len(r.file) <= name_w else "..." + r.file[-(name_w - 3) :]
        head = f"{name:<{name_w}}  {r.exit_status:>4}  {c[PASS]:>4}  {c[FAIL]:>4}  {c[UNDECIDED]:>9}  "
        lines.append((head + _verdict(r))[:width])
    worst = max((r.exit_status for r in reports), default=0)
    n = {k: sum(r.exit_status == k for r in reports) for k in (0, 1, 2)}
    lines.append(f"{len(reports)} files: {n[0]} pass, {n[1]} fail, {n[2]} could not be verified (exit {worst})")
    return "\n".join(lines)


def to_json(reports: list[Report]) -> str:
    """A single file's report as it always was; many files as ``{"exit_status": worst, "files": [...]}``."""
    if len(reports) == 1:
        return reports[0].to_json()
    worst = max((r.exit_status for r in reports), default=0)
    return json.dumps({"exit_status": worst, "files": [r.to_dict() for r in reports]}, indent=2)


def spec_text(r: Report, spec: str) -> str:
    """What the report says about one spec.

    status, detail and the student's lines, then the file-level problem.
    """
    o = next((o for o in r.outcomes if o.spec == spec), None)
    parts = []
    if o is not None:
        parts.append(f"{o.spec} {o.status} {o.cites}: {o.detail or r.claims.get(o.spec, '')}".rstrip())
        parts += [f"  > {line}" for line in o.lines]
    if r.error:
        parts.append(f"cannot verify: {r.error}")
    if r.cannot_verify:
        parts.append(f"cannot verify: {r.cannot_verify}")
    return "\n".join(parts)


def to_gradescope(reports: list[Report]) -> dict:
    """Gradescope autograder results: one test a spec a file, 1 point each when it passes."""
    tests = []
    for r in reports:
        prefix = f"{Path(r.file).name}: " if len(reports) > 1 else ""
        for o in r.outcomes:
            ok = o.status == PASS and r.exit_status != 2
            tests.append(
                {
                    "name": f"{prefix}{o.spec} {o.cites}".strip(),
                    "score": 1.0 if ok else 0.0,
                    "max_score": 1.0,
                    "status": "passed" if ok else "failed",
                    "output": spec_text(r, o.spec),
                }
            )
        if not r.outcomes:
            tests.append(
                {
                    "name": f"{prefix}verify",
                    "score": 0.0,
                    "max_score": 1.0,
                    "status": "failed",
                    "output": r.error or r.cannot_verify or "no specs were decided",
                }
            )
    return {
        "score": sum(t["score"] for t in tests),
        "tests": tests,
        "output": "\n\n".join(r.to_table() for r in reports),
    }


def to_junit(reports: list[Report]) -> str:
    """JUnit XML: a testsuite a file, a testcase a spec."""
    suites = ET.Element("testsuites", name="ddpm verify")
    for r in reports:
        c = counts(r.outcomes)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=r.file,
            tests=str(max(len(r.outcomes), 1)),
            failures=str(c[FAIL]),
            errors=str(c[UNDECIDED] + (not r.outcomes)),
            skipped="0",
        )
        for o in r.outcomes:
            case = ET.SubElement(suite, "testcase", classname=r.file, name=o.spec)
            if o.status == FAIL:
                ET.SubElement(case, "failure", message=(o.detail or o.spec)[:500]).text = spec_text(r, o.spec)
            elif o.status != PASS:
                ET.SubElement(case, "error", message=(o.detail or o.status)[:500]).text = spec_text(r, o.spec)
            elif r.exit_status == 2:
                ET.SubElement(case, "error", message="the file could not be verified").text = spec_text(r, o.spec)
        if not r.outcomes:
            case = ET.SubElement(suite, "testcase", classname=r.file, name="verify")
            ET.SubElement(case, "error", message=(r.error or r.cannot_verify)[:500]).text = r.error or r.cannot_verify
        if r.notes:
            ET.SubElement(suite, "system-out").text = "\n".join(r.notes)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file beside it, so an interrupted run leaves no half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
