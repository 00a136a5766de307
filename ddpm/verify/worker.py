"""A stand-in child for ``ddpm verify`` until the sandboxed child main (``ddpm.verify.child``) replaces it.

Run as ``python -m ddpm.verify.worker FILE RESULT.json CONFIG.json``: observes the file with the 02460
observer (records kept in a list), decides them with the 02460 decider in this same process, and
writes the outcomes as JSON. It keeps the old command line working while the observe/decide split
lands; it offers none of the isolation the sandboxed child main gives (the verdict is computed in the
process that ran the student's code), so nothing should be built on it.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from ddpm.verify.courses import course
from ddpm.verify.report import Decision

__all__ = ["STAGES", "run_in_process"]

# The old command line's stage names: everything is decided in one stage now.
STAGES = {"load": ["schedule"], "done": []}


def run_in_process(path: Path | str, config: dict, name: str = "02460") -> tuple[Decision, list]:
    """Observe ``path`` with the course's observer in this process and decide its records; (decision, records)."""
    plug = course(name)
    records: list[dict] = []
    plug.observe()(Path(path), config, lambda kind, **fields: records.append({"kind": kind, "fields": fields}))
    return plug.decide()(records, config), records


def main(argv: list[str]) -> int:
    path, result, config_file = Path(argv[0]), Path(argv[1]), Path(argv[2])
    config = json.loads(config_file.read_text())
    config["sigma"] = list(config["sigma"])
    state = {"stage": "load", "outcomes": [], "notes": [], "error": ""}
    try:
        decision, _ = run_in_process(path, config)
        state.update(stage="done", notes=decision.notes, outcomes=[asdict(o) for o in decision.outcomes],
                     error=decision.error or (f"cannot verify: {decision.cannot_verify}" if decision.cannot_verify
                                              else ""))
    except Exception:  # noqa: BLE001 - the verifier's own bug: reported as such, never as the student's
        state["error"] = "internal error of the verifier:\n" + traceback.format_exc()
    Path(result).write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
