"""A minimal course for the sandbox's own tests: the observer imports the file and emits what ``answer()`` returns.

It lets tests/test_verify_sandbox.py exercise the child, the channel and the sandbox without the 02460
course's probes (which take seconds a file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def observe(path: Path, config: dict, emit) -> None:
    spec = importlib.util.spec_from_file_location("student", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    emit("answer", value=module.answer())
