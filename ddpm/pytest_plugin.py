"""A pytest plugin.

``pytest --ddpm-verify path/to/ddpm.py`` turns each spec of ``ddpm verify`` into a test, and
``pytest --ddpm-conform mylib:MyScheduler`` each spec of ``ddpm conform`` (one test a spec, the target
checked once; ``--ddpm-conform-config KEY=VALUE`` and ``--ddpm-conform-steps N,N`` as on the command).

Registered through the ``pytest11`` entry point, so installing ``ddpm`` is enough. Each file given
(a ``.py``, a notebook, or a directory of them; the option may repeat) is verified once, in the
sandbox, when its first test runs; its specs are the tests ``path::spec``, and a failing or undecided
spec fails with the report's text for it (the detail and the student's lines). Works with ``-k``,
``--junitxml`` and the other reporting options like any test::

    pytest --ddpm-verify ddpm.py --junitxml=report.xml -k "sample"
"""

from __future__ import annotations

from typing import Any, cast

import pytest

__all__ = ["VerifyFile", "VerifySpec", "ConformSpec", "pytest_addoption", "pytest_collection_modifyitems"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ddpm", "ddpm verify")
    group.addoption(
        "--ddpm-verify",
        action="append",
        default=[],
        metavar="PATH",
        help="verify a DDPM file, notebook or directory with ddpm verify: one test a spec (repeatable)",
    )
    group.addoption(
        "--ddpm-verify-course",
        default=None,
        metavar="NAME",
        help="the course the files are written for (default: detected from each file)",
    )
    group.addoption(
        "--ddpm-verify-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds each file may run once loading it begins (default: %(default)s)",
    )
    group.addoption(
        "--ddpm-verify-strict",
        action="store_true",
        default=None,
        help="refuse to verify where the sandbox lacks a protection (DDPM_VERIFY_STRICT=1 makes it the default)",
    )
    group.addoption(
        "--ddpm-conform",
        action="append",
        default=[],
        metavar="TARGET",
        help="hold a scheduler (module:Class) to the specs with ddpm conform: one test a spec (repeatable)",
    )
    group.addoption("--ddpm-conform-config", action="append", default=[], metavar="KEY=VALUE", help="its configuration")
    group.addoption("--ddpm-conform-steps", default=None, metavar="N[,N...]", help="step counts to sample with")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect, so that they apply to the specs too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    _collect_conform(session, config, items)
    paths = config.getoption("ddpm_verify")
    if not paths:
        return
    from ddpm.verify.runner import expand_paths

    try:
        files = expand_paths(paths)
    except ValueError as exc:
        raise pytest.UsageError(f"--ddpm-verify: {exc}") from None
    timeout = config.getoption("ddpm_verify_timeout")
    if not timeout > 0:
        raise pytest.UsageError(f"--ddpm-verify-timeout must be a positive number of seconds, got {timeout}")
    from ddpm.verify.sandbox import missing_here, refusal, strict_from_env

    try:
        strict = bool(config.getoption("ddpm_verify_strict")) or strict_from_env()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if strict and missing_here():
        raise pytest.UsageError(refusal(missing_here()))
    for path in files:
        items.extend(VerifyFile.from_parent(session, path=path.resolve()).collect())


class SpecFailed(Exception):
    """A spec that did not pass; the message is the report's text for it."""


class VerifyFile(pytest.File):
    """One file under ``ddpm verify``: its course's specs as items, one sandboxed run shared by all."""

    _report = None

    @property
    def course(self):
        from ddpm.verify.runner import course_for

        return course_for(self.path, self.config.getoption("ddpm_verify_course"))

    def collect(self):
        return [VerifySpec.from_parent(self, name=spec) for spec in self.course.specs]

    def report(self):
        if self._report is None:
            from ddpm.verify.runner import verify_file
            from ddpm.verify.sandbox import strict_from_env

            strict = bool(self.config.getoption("ddpm_verify_strict")) or strict_from_env()
            timeout = self.config.getoption("ddpm_verify_timeout")
            self._report = verify_file(self.path, self.course, None, timeout, strict=strict)
        return self._report


class VerifySpec(pytest.Item):
    """One spec of one file: passes when the report says pass and the file could be verified."""

    def runtest(self) -> None:
        from ddpm.verify.formats import spec_text
        from ddpm.verify.report import PASS

        report = cast(VerifyFile, self.parent).report()  # VerifyFile.collect makes every VerifySpec
        outcome = next((o for o in report.outcomes if o.spec == self.name), None)
        if outcome is None or outcome.status != PASS or report.exit_status == 2:
            raise SpecFailed(spec_text(report, self.name) or f"{self.name}: no outcome")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"ddpm verify {self.path.name}::{self.name}"


def _collect_conform(session: pytest.Session, config: pytest.Config, items: list) -> None:
    targets = config.getoption("ddpm_conform")
    if not targets:
        return
    from ddpm.conform import SPECS
    from ddpm.conform.beta import DEFAULT_STEPS
    from ddpm.conform.targets import TargetError, parse_config, parse_steps

    try:
        cfg = parse_config(config.getoption("ddpm_conform_config"))
        steps_text = config.getoption("ddpm_conform_steps")
        steps = parse_steps(steps_text) if steps_text else DEFAULT_STEPS
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None
    for target in targets:
        run = _ConformRun(target, cfg, steps)
        for spec in SPECS:
            item = ConformSpec.from_parent(session, name=f"{spec}[{target}]")
            item.run, item.spec = run, spec
            items.append(item)


class _ConformRun:
    """One target checked once, shared by its specs' items."""

    def __init__(self, target: str, cfg: dict, steps: tuple[int, ...]):
        self.target, self.cfg, self.steps = target, cfg, steps
        self._report: Any = None

    def report(self):
        if self._report is None:
            from ddpm.conform import conform
            from ddpm.conform.report import ConformReport
            from ddpm.conform.targets import TargetError, load

            try:
                self._report = conform(load(self.target), self.cfg, self.steps, name=self.target)
            except TargetError as exc:
                self._report = ConformReport(self.target, self.cfg, self.steps, [], str(exc))
        return self._report


class ConformSpec(pytest.Item):
    """One spec of ``ddpm conform`` on one target: passes when the report says pass."""

    run: _ConformRun
    spec: str

    def runtest(self) -> None:
        report = self.run.report()
        if report.error:
            raise SpecFailed(f"cannot check {self.run.target}: {report.error}")
        o = next((o for o in report.outcomes if o.spec == self.spec), None)
        if o is None or o.status != "pass":
            detail = f"{o.spec} {o.status} {o.cites}: {o.detail}" if o else f"{self.spec}: no outcome"
            raise SpecFailed(f"{report.label}: {detail}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"ddpm conform {self.run.target}::{self.spec}"
