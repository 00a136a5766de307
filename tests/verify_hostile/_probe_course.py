"""A minimal course for the sandbox's own tests: the observer imports the file and emits what ``answer()`` returns.

It lets tests/test_verify_sandbox.py exercise the child, the channel and the sandbox without the 02460
course's probes (which take seconds a file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def observe(path: Path, config: dict, emit) -> None:
    spec = importlib.util.spec_from_file_location("student", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    emit("answer", value=module.answer())


# The parent side: one spec, "answer", passes when the file's answer() returned 42.
SPECS = {"answer": ("answer() returns 42", "[probe]"), "loaded": ("the file loads", "[probe]")}


def decide(records: list, config: dict):
    from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome

    kinds = [r.kind for r in records]
    if any(k not in ("answer", "crash") for k in kinds):
        return Decision([], cannot_verify=f"unexpected records: {kinds}")
    crash = next((r for r in records if r.kind == "crash"), None)
    answer = next((r for r in records if r.kind == "answer"), None)
    if answer is not None or crash is not None:
        loaded = Outcome("loaded", PASS if answer else FAIL, crash["error"] if crash else "", "[probe]")
    else:
        loaded = Outcome("loaded", UNDECIDED, "not decided: nothing was observed", "[probe]")
    outcomes = [loaded]
    if answer is not None:
        ok = answer["value"] == 42
        outcomes.append(Outcome("answer", PASS if ok else FAIL, "" if ok else f"answer() = {answer['value']!r}",
                                "[probe]"))
    elif crash is None:
        outcomes.append(Outcome("answer", UNDECIDED, "not decided: no answer was observed", "[probe]"))
    return Decision(outcomes)


class ProbeCourse:
    """The duck-typed Course the runner needs (ddpm.verify.courses.Course has the same attributes)."""

    name = "probe"
    observer = __name__
    decider = __name__
    specs = SPECS
    detect = staticmethod(lambda source: False)

    @staticmethod
    def default_config() -> dict:
        return {}

    @staticmethod
    def decide():
        return decide

    @staticmethod
    def claims() -> dict:
        return {k: v[0] for k, v in SPECS.items()}


COURSE = ProbeCourse()
