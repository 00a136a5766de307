"""The pytest plugin: ``pytest --ddpm-verify FILE`` runs each spec of ``ddpm verify`` as a test item."""

from __future__ import annotations

import shutil
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CASES = Path(__file__).parent / "verify_cases"
# Installed, the plugin loads through its pytest11 entry point; from a source tree without the install, by -p.
LOAD = [] if any(e.name == "ddpm" for e in entry_points(group="pytest11")) else ["-p", "ddpm.pytest_plugin"]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux's")


def test_each_spec_is_a_test_and_a_failure_shows_the_report(pytester: pytest.Pytester) -> None:
    shutil.copy(CASES / "mutant_last_step_noise.py", pytester.path / "ddpm_student.py")
    result = pytester.runpytest_subprocess(
        *LOAD, "--ddpm-verify", "ddpm_student.py", "-v", "--junitxml=report.xml", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=15, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ddpm_student.py::schedule PASSED*",
            "*ddpm_student.py::sample_last_step FAILED*",
            "*sample_last_step fail [[]Ho20 alg. 2 l. 3[]]*z = 0 at t = 1*",
        ]
    )
    cases = ET.parse(pytester.path / "report.xml").getroot().findall(".//testcase")
    assert len(cases) == 16
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["sample_last_step"]


def test_k_selects_specs_and_a_correct_file_passes(pytester: pytest.Pytester) -> None:
    (pytester.path / "hw").mkdir()  # not ddpm.py in the working directory: `python -m pytest` would import it as ddpm
    shutil.copy(CASES / "correct_onebased.py", pytester.path / "hw" / "ddpm.py")
    result = pytester.runpytest_subprocess(
        *LOAD, "--ddpm-verify", "hw/ddpm.py", "-k", "sample_", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=7, deselected=9)


def test_a_missing_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*LOAD, "--ddpm-verify", "nope.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ddpm-verify: no such file or directory: nope.py*"])


def test_without_the_option_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess(*LOAD, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_strict_runs_where_the_sandbox_is_whole_and_a_bad_variable_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddpm.verify import sandbox

    shutil.copy(CASES / "correct_onebased.py", pytester.path / "student.py")
    args = (*LOAD, "--ddpm-verify", "student.py", "--ddpm-verify-strict", "-k", "schedule", "-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(*args)
    if sandbox.missing_here():  # refused up front, naming what is missing
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--strict: the sandbox lacks*"])
    else:
        result.assert_outcomes(passed=1, deselected=15)
    monkeypatch.setenv("DDPM_VERIFY_STRICT", "maybe")
    result = pytester.runpytest_subprocess(*LOAD, "--ddpm-verify", "student.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*DDPM_VERIFY_STRICT='maybe': expected 1 (strict) or 0 (not strict)*"])
