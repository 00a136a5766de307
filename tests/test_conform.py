"""``ddpm conform``: each spec passes on correct diffusers configurations, fails on planted ones.

The planted schedulers are subclasses of diffusers' with one thing wrong, and each failure names its
cause; bad input is one line.

The step counts are kept small (1, 7, 10: 7 does not divide T = 1000) so the default tier stays fast;
the whole documented grid runs in the slow tier and in docs/conform-diffusers.md.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
# Any: diffusers' classes are subclassed below with one thing wrong, their attributes set freely
DDIMScheduler: Any = diffusers.DDIMScheduler
DDPMScheduler: Any = diffusers.DDPMScheduler

from ddpm.cli import main  # noqa: E402
from ddpm.conform import conform  # noqa: E402
from ddpm.conform.law import LAW_DRAWS  # noqa: E402
from ddpm.stats import MonteCarloCheck, assert_power  # noqa: E402
from ddpm.verify.report import FAIL, PASS, UNDECIDED  # noqa: E402

STEPS = (1, 7, 10)
ROOT = Path(__file__).resolve().parents[1]
DOCS_RELEASE = "0.42.1"  # the release docs/conform-diffusers.md was made on


def outcomes(report):
    return {o.spec: o for o in report.outcomes}


# -- correct configurations pass --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, config",
    [
        (DDPMScheduler, {}),
        (DDPMScheduler, {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}),
        (DDPMScheduler, {"variance_type": "fixed_large", "beta_schedule": "scaled_linear"}),
        (DDPMScheduler, {"variance_type": "learned_range", "timestep_spacing": "linspace"}),
        (DDIMScheduler, {"eta": 0.5, "prediction_type": "sample"}),
        (DDIMScheduler, {"eta": 1.0, "rescale_betas_zero_snr": True}),
    ],
)
def test_correct_configurations_pass_every_spec(cls, config):
    report = conform(cls, config, STEPS)
    assert report.exit_status == 0, report.to_table()
    assert [o.spec for o in report.outcomes] == [
        "schedule",
        "timesteps",
        "step",
        "parameterisation",
        "add_noise",
        "finite",
        "law",  # each of these adds noise
    ]


def test_leading_spacing_is_reported_as_a_departure_with_its_cost_not_a_failure():
    o = outcomes(conform(DDIMScheduler, {}, (10,)))["timesteps"]
    assert o.status == PASS and "departure" in o.detail and "starts at t = 900" in o.detail


def test_set_alpha_to_one_false_is_a_departure_a_missing_last_level_is_not():
    o = outcomes(conform(DDIMScheduler, {"set_alpha_to_one": False}, (10,)))["step"]
    assert o.status == PASS and "lands at alpha_bar = 0.9999" in o.detail

    class MissingLastLevel(DDIMScheduler):  # claims set_alpha_to_one=True, stops at t = 0 anyway
        def __init__(self, **kw):
            super().__init__(**kw)
            self.final_alpha_cumprod = self.alphas_cumprod[0]

    o = outcomes(conform(MissingLastLevel, {}, (10,)))["step"]
    assert o.status == FAIL and "t = 0 -> x_0" in o.detail, o.detail


# -- the DDIM findings of the issue, from the public API alone ------------------------------------------


def test_ddim_linspace_lands_at_899_not_at_the_listed_888():
    o = outcomes(conform(DDIMScheduler, {"timestep_spacing": "linspace"}, (10,)))["step"]
    assert o.status == FAIL
    assert "t = 999 -> 888" in o.detail and "matches the step to t = 899 instead" in o.detail, o.detail


def test_ddim_trailing_with_a_count_that_does_not_divide_T_steps_one_past_the_listed_timestep():
    o = outcomes(conform(DDIMScheduler, {"timestep_spacing": "trailing"}, (7,)))["step"]
    assert o.status == FAIL and "t = 999 -> 856" in o.detail and "t = 857 instead" in o.detail, o.detail
    assert outcomes(conform(DDIMScheduler, {"timestep_spacing": "trailing"}, (10,)))["step"].status == PASS


# -- planted wrong schedulers: each spec fails and names the cause -------------------------------------


class WrongBeta(DDPMScheduler):
    """One beta 1% off, alphas_cumprod recomputed from it."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.betas[500] *= 1.01
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)


class NearlyZeroSNR(DDIMScheduler):
    """Zero terminal SNR asked, 2**-24 delivered."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.alphas_cumprod[-1] = 2.0**-24


class DropsAStep(DDIMScheduler):
    def set_timesteps(self, n, device=None):
        super().set_timesteps(n, device)
        listed: torch.Tensor = getattr(self, "timesteps")  # noqa: B009 (mypy cannot type the inherited attribute)
        setattr(self, "timesteps", listed[:-1] if n > 1 else listed)  # noqa: B010


class OffByOnePrevious(DDPMScheduler):
    def previous_timestep(self, timestep):
        prev = super().previous_timestep(timestep)
        return prev - 1 if int(prev) > 0 else prev


class LargeVarianceForSmall(DDPMScheduler):
    """fixed_small asked, beta (fixed_large) drawn."""

    def _get_variance(self, t, predicted_variance=None, variance_type=None):
        return super()._get_variance(t, predicted_variance, "fixed_large")


class WrongV(DDIMScheduler):
    def step(self, model_output, timestep, sample, *args, **kw):
        if self.config.prediction_type == "v_prediction":
            model_output = 1.01 * model_output
        return super().step(model_output, timestep, sample, *args, **kw)


class AddNoiseWithoutRoot(DDPMScheduler):
    def add_noise(self, original_samples, noise, timesteps):
        ab = self.alphas_cumprod.to(original_samples.dtype)[timesteps][:, None]
        return ab * original_samples + (1 - ab).sqrt() * noise  # sqrt(alpha_bar) missing its root


class NanAtTheEnd(DDIMScheduler):
    def step(self, model_output, timestep, sample, *args, **kw):
        out = super().step(model_output, timestep, sample, *args, **kw)
        if int(timestep) == 0:
            out.prev_sample = out.prev_sample / 0.0
        return out


class RaisesInStep(DDIMScheduler):
    def step(self, model_output, timestep, sample, *args, **kw):
        raise RuntimeError("shape mismatch in my kernel")


@pytest.mark.parametrize(
    "cls, config, spec, cause",
    [
        (WrongBeta, {}, "schedule", "betas[500]"),
        (NearlyZeroSNR, {"rescale_betas_zero_snr": True}, "schedule", "zero terminal SNR asked"),
        (DropsAStep, {}, "timesteps", "6 timesteps listed, not 7"),
        (OffByOnePrevious, {}, "step", "matches the step to t = "),
        (LargeVarianceForSmall, {"timestep_spacing": "trailing"}, "step", "coefficient of the noise (sigma)"),
        (WrongV, {"prediction_type": "v_prediction"}, "parameterisation", "v_prediction gives x_t'"),
        (AddNoiseWithoutRoot, {}, "add_noise", "off q(x_t | x_0)"),
        (NanAtTheEnd, {}, "finite", "inf or nan"),
        (RaisesInStep, {}, "step", "raised RuntimeError: shape mismatch in my kernel"),
    ],
)
def test_each_spec_fails_on_its_planted_wrong_scheduler_naming_the_cause(cls, config, spec, cause):
    report = conform(cls, config, STEPS)
    o = outcomes(report)[spec]
    assert o.status == FAIL and cause in o.detail, o.detail
    assert report.exit_status == 1


def test_a_step_that_is_not_affine_is_undecided_not_failed():
    class Thresholded(DDIMScheduler):  # x' = |DDIM|: not affine in anything
        def step(self, model_output, timestep, sample, *args, **kw):
            out = super().step(model_output, timestep, sample, *args, **kw)
            out.prev_sample = out.prev_sample.abs()
            return out

    report = conform(Thresholded, {}, (3,), specs=("step",))
    assert outcomes(report)["step"].status == UNDECIDED and report.exit_status == 2


class SameNoiseEachStep(DDPMScheduler):  # replays a generator's first draw at every later step
    def step(self, model_output, timestep, sample, generator=None, return_dict=True):
        if getattr(self, "_first", (None, None))[0] is not generator:
            self._first = (generator, generator.get_state())
        replay = torch.Generator().set_state(self._first[1])
        return super().step(model_output, timestep, sample, generator=replay, return_dict=return_dict)


def test_the_law_sees_what_probing_one_step_cannot():
    """The same noise at every step: each step alone is the posterior, the run's variance is not."""
    report = conform(SameNoiseEachStep, {}, (10,))
    o = outcomes(report)
    assert o["step"].status == PASS, o["step"].detail
    assert o["law"].status == FAIL and "the variance" in o["law"].detail and report.exit_status == 1
    z, k = (float(o["law"].detail.split(f"{key} = ")[1].split(maxsplit=1)[0].rstrip(",)")) for key in ("z", "k"))
    assert_power(MonteCarloCheck("law", z, k, LAW_DRAWS))
    correct = outcomes(conform(DDPMScheduler, {}, (10,)))
    assert correct["law"].status == PASS and "z = " in correct["law"].detail
    assert "law" not in outcomes(conform(DDIMScheduler, {}, (10,)))  # eta = 0 adds no noise: no law to hold


def test_a_nan_step_fails_finite_and_is_not_taken_for_state():
    report = conform(DDPMScheduler, {"variance_type": "fixed_large_log"}, (10,))
    status = {o.spec: o.status for o in report.outcomes}
    assert status["finite"] == FAIL and status["add_noise"] == PASS and report.exit_status == 1
    assert "not finite" in outcomes(report)["step"].detail


def test_stateful_schedulers_without_levels_are_undecided_never_failed():
    pndm = conform(diffusers.PNDMScheduler, {}, (10,))  # a multistep solver with no sigmas to read
    assert {o.status for o in pndm.outcomes} == {PASS, UNDECIDED} and pndm.exit_status == 2
    assert "keeps state" in outcomes(pndm)["step"].detail
    assert outcomes(pndm)["schedule"].status == PASS


@pytest.mark.parametrize("script", sorted((ROOT / "docs" / "conform_repro").glob("*.py")), ids=lambda p: p.name)
def test_each_reproduction_in_the_docs_reproduces_on_the_release_the_table_is_for(script):
    if diffusers.__version__ != DOCS_RELEASE:
        pytest.skip(f"docs/conform-diffusers.md is for diffusers {DOCS_RELEASE}, installed {diffusers.__version__}")
    code = script.read_text()
    assert len([line for line in code.splitlines() if line.strip()]) <= 12, "a reproduction is about ten lines"
    assert "ddpm" not in code.replace("DDPMScheduler", ""), "from diffusers' public API alone"
    with pytest.raises((AssertionError, IndexError)):
        runpy.run_path(str(script), run_name="__main__")
    assert f"### {code.splitlines()[0].lstrip('# ')}" in (ROOT / "docs" / "conform-diffusers.md").read_text()


# -- the command: formats, exit codes, one-line errors -------------------------------------------------


def test_cli_prints_the_report_json_and_junit(tmp_path, capsys):
    junit = tmp_path / "r.xml"
    code = main(
        ["conform", "diffusers:DDIMScheduler", "--config", "timestep_spacing='linspace'", "--steps", "10", "--json"]
        + ["--junit", str(junit)]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["exit_status"] == 1 and data["config"] == {"timestep_spacing": "linspace"}
    assert {o["spec"]: o["status"] for o in data["outcomes"]}["step"] == "fail"
    xml = junit.read_text()
    assert 'name="ddpm conform"' in xml and "<failure" in xml and 'name="step"' in xml


def test_cli_exit_0_and_the_table(capsys):
    assert main(["conform", "diffusers:DDIMScheduler", "--config", "eta=1.0", "--steps", "1,7"]) == 0
    out = capsys.readouterr().out
    assert "DDIM eta = 1" in out and "7 passed, 0 failed, 0 undecided: all specs pass (exit 0)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuchlib_xyz:S"], "needs nosuchlib_xyz"),
        (["diffusers:NoSuchScheduler"], "'diffusers' has no 'NoSuchScheduler'"),
        (["DDIMScheduler"], "TARGET must be module:Class"),
        (["torch:Tensor"], "expected a scheduler class"),
        (["diffusers:DDIMScheduler", "--config", "colour=1"], "takes no config key 'colour'"),
        (["diffusers:DDIMScheduler", "--config", "num_train_timesteps='many'"], "rejected num_train_timesteps='many'"),
        (["diffusers:DDIMScheduler", "--config", "beta_schedule=[1,"], "is not a Python literal"),
        (["diffusers:DDIMScheduler", "--config", "eta"], "--config takes KEY=VALUE"),
        (["diffusers:DDIMScheduler", "--steps", "10,x"], "--steps takes integers >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["conform", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_needs_diffusers_when_it_is_not_installed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers now fails as if not installed
    assert main(["conform", "diffusers:DDIMScheduler"]) == 2
    assert "needs diffusers" in capsys.readouterr().err
    assert main(["conform", "diffusers"]) == 2
    assert "needs diffusers" in capsys.readouterr().err


def test_conform_imports_without_diffusers():
    code = "import sys; sys.modules['diffusers'] = None; import ddpm.conform, ddpm.cli; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_an_authors_own_scheduler_importable_from_the_current_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "mylib_sched.py").write_text(
        textwrap.dedent(
            """
            from diffusers import DDIMScheduler

            class Mine(DDIMScheduler):
                pass
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["conform", "mylib_sched:Mine", "--steps", "10"]) == 0, capsys.readouterr()


def test_the_python_api_takes_a_factory_function():
    report = conform(lambda **kw: DDIMScheduler(**{"prediction_type": "sample", **kw}), {}, (10,), name="factory")
    assert report.exit_status == 0, report.to_table()
    bad = conform(lambda **kw: object(), {}, (10,), name="not_a_scheduler")
    assert bad.exit_status == 2 and "expected a scheduler class" in bad.error


@pytest.mark.slow
def test_the_docs_table_is_the_grids_markdown_on_its_release():
    if diffusers.__version__ != DOCS_RELEASE:
        pytest.skip(f"docs/conform-diffusers.md is for diffusers {DOCS_RELEASE}")
    from ddpm.conform import SPECS
    from ddpm.conform.beta import DEFAULT_STEPS
    from ddpm.conform.cli import run_grid
    from ddpm.conform.report import to_markdown

    table = to_markdown(run_grid(DEFAULT_STEPS), SPECS).split("\n\n")[0]
    assert table in (ROOT / "docs" / "conform-diffusers.md").read_text()


@pytest.mark.slow
def test_the_diffusers_grid_runs_and_reports_a_line_each(capsys):
    code = main(["conform", "diffusers"])
    out = capsys.readouterr()
    assert code in (1, 2) and "configurations:" in out.out and "DDIMScheduler timestep_spacing='linspace'" in out.out
    assert "[1/" in out.err


def _pytest(tmp_path, *args):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_the_pytest_plugin_makes_a_test_a_spec(tmp_path):
    run = _pytest(
        tmp_path,
        "--ddpm-conform",
        "diffusers:DDIMScheduler",
        "--ddpm-conform-config",
        "timestep_spacing='linspace'",
        "--ddpm-conform-steps",
        "10",
        "--junitxml",
        "r.xml",
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 5 passed" in run.stdout and "it matches the step to t = 899 instead" in run.stdout
    assert 'name="step[diffusers:DDIMScheduler]"' in (tmp_path / "r.xml").read_text()


@pytest.mark.slow
def test_the_pytest_plugin_reports_a_target_it_cannot_check(tmp_path):
    run = _pytest(tmp_path, "--ddpm-conform", "nosuchlib_xyz:S")
    assert run.returncode == 1 and "cannot check nosuchlib_xyz:S: needs nosuchlib_xyz" in run.stdout
    bad = _pytest(tmp_path, "--ddpm-conform", "diffusers:DDIMScheduler", "--ddpm-conform-steps", "0")
    assert bad.returncode == 4 and "--steps takes integers >= 1" in bad.stderr
