"""``ddpm verify``, 02460.

Sound on correct files of every style, sharp on each known mistake (tests/verify_cases).

The observer runs in-process here (the zoo of cases stays fast), its records go through
``channel.Recorder`` (encoded and decoded exactly as the real channel does) and ``decide`` computes
the outcomes from them, as the parent does. The ``clean_process`` fixture checks that observing leaves
nothing behind in the pytest process (stub modules, the student's module, sys.path entries, reseeded
global generators). The command line, with its sandboxed child and exit statuses, is tested on a few files.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch
from scipy.stats import binom

from ddpm.beta.schedule import linear_schedule
from ddpm.verify import adapter
from ddpm.verify.channel import Recorder
from ddpm.verify.coefficients import Monomial, explain, explain_all
from ddpm.verify.courses import COURSES, course
from ddpm.verify.dtu.decide import decide
from ddpm.verify.dtu.observe import observe
from ddpm.verify.dtu.specs import SPECS_02460, Config
from ddpm.verify.loader import Stub
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome, Report
from ddpm.verify.stats import binomial_ok

CASES = Path(__file__).parent / "verify_cases"
REFERENCE = Path(adapter.__file__).with_name("reference.py")

# file: (the spec that must fail, words its detail must hold, other specs allowed to fail or stay undecided)
MUTANTS = {
    "mutant_forward_no_sqrt": ("forward_mean", "alpha_bar_t x_0 where eq. 4 has sqrt(alpha_bar_t)", set()),
    "mutant_alpha_in_training": (
        "forward_mean",
        "sqrt(alpha_t) x_0 where eq. 4 has sqrt(alpha_bar_t)",
        {"forward_noise", "loss_value"},
    ),
    "mutant_alpha_in_sampling": ("sample_mean", "factor on eps_theta is", {"sample_law"}),
    "mutant_alpha_bar_factor": ("sample_mean", "= 1 / sqrt(alpha_bar_t); eq. 11 has 1 / sqrt(alpha_t)", {"sample_law"}),
    "mutant_t_range": ("train_t", "never t = 1 (template index 0)", {"sample_law"}),
    "mutant_t_per_batch": ("train_t", "one t for the whole batch", {"sample_law"}),
    "mutant_noise_gate": ("sample_sigma", "no noise at t = 2 (template index 1)", {"sample_law"}),
    "mutant_last_step_noise": ("sample_last_step", "Algorithm 2 sets z = 0 at t = 1", {"sample_law"}),
    "mutant_skip_last_step": ("sample_steps", "takes 19 steps", {"sample_last_step", "sample_law"}),
    "mutant_t_encoding": ("t_encoding", "the two encode t differently", {"sample_law"}),
    "mutant_integer_time": ("t_encoding", "cannot tell the steps apart", {"sample_law"}),
    "mutant_batch_mean": ("loss_value", "one number for the whole batch", set()),
    "mutant_unsquared": ("loss_value", "not squared", set()),
    "mutant_x0_target": ("loss_value", "regresses x_0 instead of eps", set()),
    "mutant_shared_eps": ("train_eps", "eps of different samples are correlated", {"forward_noise"}),
    "mutant_uniform_eps": ("forward_noise", "not Gaussian", set()),
    "mutant_sigma_beta": ("sample_sigma", "= beta_t at t = 2 (template index 1)", {"sample_law"}),
    "mutant_z_once": ("sample_z", "correlated between consecutive steps", {"sample_law"}),
    "mutant_prior": ("sample_prior", "x_T is not N(0, I)", {"sample_law"}),
    "mutant_schedule_scaled": (
        "schedule",
        "no coefficient the code applies is one of the linear schedule",
        {
            "forward_mean",
            "forward_noise",
            "train_t",
            "train_eps",
            "loss_value",
            "sample_steps",
            "sample_mean",
            "sample_sigma",
            "t_encoding",
            "sample_law",
        },
    ),
    "broken_index_error": (
        "forward_mean",
        "IndexError",
        {"forward_noise", "train_t", "train_eps", "loss_value", "loss_mean", "t_encoding", "sample_law"},
    ),
}
CORRECT = ["correct_template", "correct_onebased", "correct_image_only", "correct_renamed_buffers"]


def _numpy_key() -> numpy.ndarray:
    """The key of numpy's global Mersenne Twister."""
    state = numpy.random.get_state()  # legacy: ("MT19937", key, pos, has_gauss, cached_gaussian)
    assert isinstance(state, tuple)
    return state[1].copy()


def _state() -> dict:
    return {
        "modules": {
            k for k, m in sys.modules.items() if k == "student_ddpm" or getattr(m, "__ddpm_verify_stub__", False)
        },
        "path": list(sys.path),
        "torch": torch.get_rng_state(),
        "random": random.getstate(),
        "numpy": _numpy_key(),
        "randn": torch.randn,
        "normal_": torch.Tensor.normal_,
    }


@pytest.fixture(autouse=True)
def clean_process():
    """Every test leaves the process as it found it.

    No stubs, no sys.path entries, no reseeded generators.
    """
    before = _state()
    yield
    after = _state()
    assert after["modules"] == before["modules"], "stub or student modules were left in sys.modules"
    assert after["path"] == before["path"], "sys.path was changed"
    assert torch.equal(after["torch"], before["torch"]), "torch's global generator was reseeded"
    assert after["random"] == before["random"], "random's global generator was reseeded"
    assert (after["numpy"] == before["numpy"]).all(), "numpy's global generator was reseeded"
    assert after["randn"] is before["randn"] and after["normal_"] is before["normal_"], "torch's draws stay wrapped"


def run(path: Path, **config) -> Decision:
    """Observe in-process (records through the real encoding), then decide as the parent does."""
    cfg = Config(**config).to_dict()
    recorder = Recorder()
    observe(path, cfg, recorder)
    return decide(recorder.records, cfg)


def outcomes(path: Path, **config) -> dict[str, Outcome]:
    decision = run(path, **config)
    assert [o.spec for o in decision.outcomes] == list(SPECS_02460), "every spec is reported once, in order"
    return {o.spec: o for o in decision.outcomes}


@pytest.mark.parametrize("name", CORRECT)
def test_correct_files_pass(name: str, seed: int) -> None:
    decision = run(CASES / f"{name}.py", seed=seed)
    assert {o.spec: o.detail for o in decision.outcomes if o.status != PASS} == {}
    assert decision.exit_status == 0


def test_reference_ddpm_passes_through_the_same_adapter(seed: int) -> None:
    result = outcomes(REFERENCE, seed=seed)
    assert {k: o.detail for k, o in result.items() if o.status != PASS} == {}


def test_names_are_not_maths_renamed_buffers_pass_with_a_note() -> None:
    decision = run(CASES / "correct_renamed_buffers.py")
    assert decision.exit_status == 0
    note = next(n for n in decision.notes if n.startswith("schedule:"))
    assert "alpha_bar_t in 'alpha_bar'" in note and "names do not matter" in note


def test_the_report_names_each_style() -> None:
    template, onebased = outcomes(CASES / "correct_template.py"), outcomes(CASES / "correct_onebased.py")
    assert "sum over dimensions" in template["loss_value"].detail
    assert "mean over the 64 dimensions" in onebased["loss_value"].detail
    assert template["sample_sigma"].detail == "sigma_t^2 = beta_t"
    assert onebased["sample_sigma"].detail == "sigma_t^2 = beta_tilde_t"


def test_sigma_beta_demands_the_sheets_choice() -> None:
    result = outcomes(CASES / "correct_onebased.py", sigma=("beta",))
    assert result["sample_sigma"].status == FAIL
    assert "sigma_t^2 = beta_tilde_t; --sigma beta demands beta_t" in result["sample_sigma"].detail
    assert outcomes(CASES / "correct_template.py", sigma=("beta",))["sample_sigma"].status == PASS


def test_image_only_file_is_checked_on_images_with_a_note() -> None:
    decision = run(CASES / "correct_image_only.py")
    assert any("works only on image-shaped data" in n and "(1000, 1, 8, 8)" in n for n in decision.notes)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_with_its_diagnosis_and_the_students_line(name: str, seed: int) -> None:
    spec, words, consequences = MUTANTS[name]
    result = outcomes(CASES / f"{name}.py", seed=seed)
    assert result[spec].status == FAIL and words in result[spec].detail, result[spec]
    off = {k for k, o in result.items() if o.status != PASS}
    assert off <= {spec} | consequences, {k: result[k].detail for k in off - {spec}}
    for o in result.values():  # every failure points at the student's lines: file:line and the source text
        if o.status == FAIL:
            assert o.lines and all(line.startswith(f"{name}.py:") and "  " in line for line in o.lines), o


def test_masked_bugs_are_all_named_in_one_run_noise_in_the_bracket_and_the_gate() -> None:
    result = outcomes(CASES / "mutant_bracket_noise_and_gate.py")
    sigma = result["sample_sigma"]
    assert sigma.status == FAIL
    assert "no noise at t = 2 (template index 1)" in sigma.detail
    assert "= sqrt(beta_t) / sqrt(alpha_t)" in sigma.detail  # the noise inside the 1/sqrt(alpha_t) bracket
    assert any("z = torch.randn_like(x_t)" in line for line in sigma.lines)
    assert result["sample_mean"].status == PASS and result["sample_last_step"].status == PASS


def test_masked_bugs_are_all_named_in_one_run_a_loop_that_never_reaches_t1() -> None:
    result = outcomes(CASES / "mutant_loop_skips_t1.py")
    assert result["sample_steps"].status == FAIL and "takes 19 steps" in result["sample_steps"].detail
    assert "step 1 never ran" in result["sample_steps"].detail
    assert result["sample_sigma"].status == FAIL and "no noise at t = 2" in result["sample_sigma"].detail
    last = result["sample_last_step"]
    assert last.status == UNDECIDED and last.detail.startswith("not decided: no step t = 1 ran")
    assert result["sample_mean"].status == PASS  # the 19 steps that ran compute eq. 11


def test_a_file_with_its_own_generator_cannot_be_verified_not_failed() -> None:
    decision = run(CASES / "correct_own_generator.py")
    assert decision.exit_status == 2 and not any(o.status == FAIL for o in decision.outcomes)
    assert "own torch.Generator" in (decision.cannot_verify or "") and "cannot verify this file's randomness" in (
        decision.cannot_verify or ""
    )
    assert "correct_own_generator.py:" in (decision.cannot_verify or "")  # the line that drew


def test_a_meta_tensor_from_sample_is_described_not_an_internal_error() -> None:
    decision = run(CASES / "broken_meta_sample.py")
    assert decision.exit_status == 2 and decision.error is None
    assert "sample returned a tensor of shape (1000, 64), dtype torch.float32, on device meta" in (
        decision.cannot_verify or ""
    )


class _Hidden:
    """diffusers made uninstalled for one test: ``import diffusers`` fails as for a missing package."""

    def __enter__(self):
        self.saved = {k: m for k, m in sys.modules.items() if k == "diffusers" or k.startswith("diffusers.")}
        for k in self.saved:
            del sys.modules[k]
        # the import system's own "not importable" marker, which typeshed's sys.modules leaves out
        sys.modules["diffusers"] = None  # type: ignore[assignment]
        return self

    def __exit__(self, *exc):
        for k in [k for k in sys.modules if k == "diffusers" or k.startswith("diffusers.")]:
            del sys.modules[k]
        sys.modules.update(self.saved)


def test_a_file_that_needs_a_missing_package_cannot_be_verified_not_a_list_of_bugs() -> None:
    with _Hidden():
        decision = run(CASES / "needs_diffusers.py")
    assert decision.exit_status == 2 and not any(o.status == FAIL for o in decision.outcomes)
    assert (decision.cannot_verify or "").startswith("needs diffusers: the file's DDPM uses diffusers.DDPMScheduler")
    assert "needs_diffusers.py:" in (decision.cannot_verify or "")


@pytest.mark.slow
def test_the_diffusers_file_passes_where_diffusers_is_installed() -> None:
    pytest.importorskip("diffusers", reason="the file's verdict with the real package needs diffusers installed")
    decision = run(CASES / "needs_diffusers.py")
    assert decision.exit_status == 0, [(o.spec, o.detail) for o in decision.outcomes if o.status != PASS]


def test_a_progress_bar_stand_in_is_harmless() -> None:
    tqdm = Stub("tqdm.tqdm")
    assert list(tqdm(range(3), desc="x")) == [0, 1, 2]
    assert list(Stub("tqdm.trange")(2, 5)) == [2, 3, 4]
    assert isinstance(tqdm.write, Stub)

    # subclassing a stubbed class works: a stand-in instance as the base, on purpose, as a student's file does
    class Net(Stub("unet.Unet")):  # type: ignore[misc]
        pass

    assert Net.__mro__[-1] is object


def _records(path: Path) -> list:
    recorder = Recorder()
    observe(path, Config().to_dict(), recorder)
    return list(recorder.records)


def test_decide_is_a_pure_function_of_the_records() -> None:
    records = _records(CASES / "mutant_noise_gate.py")
    first, second = decide(records, Config().to_dict()), decide(records, Config().to_dict())
    assert first == second and first.exit_status == 1


def test_records_it_does_not_expect_are_could_not_verify_never_a_pass() -> None:
    records = _records(CASES / "correct_template.py")
    cfg = Config().to_dict()
    assert decide(records, cfg).exit_status == 0
    forged = records + [{"kind": "verdict", "fields": {"all": "pass"}}]
    bad = decide(forged, cfg)
    assert bad.exit_status == 2 and "unknown kind 'verdict'" in (bad.error or "")
    broken = [r if r.kind != "call" else {"kind": "call", "fields": dict(r.fields, net="x")} for r in records]
    assert decide(broken, cfg).exit_status == 2
    call = next(r for r in records if r.kind == "call")
    assert "two records of the same call" in (decide(records + [call], cfg).error or "")  # a replayed observation
    assert decide([], cfg).exit_status == 2


def test_every_spec_is_decided_or_says_why_not() -> None:
    for name in ("mutant_skip_last_step", "broken_index_error", "mutant_integer_time"):
        for o in outcomes(CASES / f"{name}.py").values():
            assert o.status in (PASS, FAIL) or o.detail.startswith("not decided:"), o


def test_the_02460_course_is_registered() -> None:
    c = course("02460")
    assert COURSES["02460"] is c and c.specs is SPECS_02460
    assert c.observe() is observe and c.decide() is decide
    assert c.detect((CASES / "correct_template.py").read_text()) and not c.detect("print('hello')")
    with pytest.raises(ValueError, match="no course 'x'"):
        course("x")


# Exact binomial tails [issue 12 item 4]: the rate holds at a level where it can be simulated.


def _rejected(counts: torch.Tensor, n: int, p: float, rate: float) -> int:
    """How many of the counts ``binomial_ok`` rejects (each distinct count checked once)."""
    values, times = counts.unique(return_counts=True)
    return sum(int(m) for k, m in zip(values.tolist(), times) if not binomial_ok(k, n, p, rate)[0])


def test_binomial_check_keeps_its_false_alarm_rate() -> None:
    """At 1e-3, 20 000 correct counts (n = 1500, p = 1/20) are rejected at most as often as 1e-3 allows."""
    gen = torch.Generator().manual_seed(12)
    n, p, runs, rate = 1500, 1 / 20, 20000, 1e-3
    counts = torch.binomial(torch.full((runs,), float(n)), torch.full((runs,), p), generator=gen).long()
    rejected = _rejected(counts, n, p, rate)
    assert rejected <= binom.isf(1e-6, runs, rate), rejected  # the count's own exact bound, at 1e-6
    # and a planted deviation, p = 0.08 instead of 0.05 (power ~0.95 at this level), is rejected
    planted = torch.binomial(torch.full((200,), float(n)), torch.full((200,), 0.08), generator=gen).long()
    assert _rejected(planted, n, p, rate) > 150


def test_binomial_check_is_exact_at_the_tails() -> None:
    n, p, rate = 1500, 1 / 20, 1e-6
    lo = int(binom.ppf(rate / 2, n, p))  # P(K <= lo) >= rate / 2 > P(K <= lo - 1)
    assert binomial_ok(lo, n, p, rate)[0] and not binomial_ok(lo - 1, n, p, rate)[0]
    hi = int(binom.isf(rate / 2, n, p)) + 1  # the smallest k with P(K >= k) <= rate / 2
    assert not binomial_ok(hi, n, p, rate)[0] and binomial_ok(hi - 1, n, p, rate)[0]


def test_explain_names_the_expression_a_coefficient_is() -> None:
    s = linear_schedule(20, 0.01, 0.2)
    want = Monomial(alpha_bar=0.5)
    assert explain(float(s.alpha_bar[7]), s, want) == (Monomial(alpha_bar=1.0), 7)
    assert (
        str(Monomial(beta=1, alpha=-0.5, one_minus_alpha_bar=-0.5)) == "beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t))"
    )
    # sqrt(alpha_2) ~ alpha_bar_1 to 5e-5: one monomial must explain every observed step
    observed = [float(s.alpha[t].sqrt()) for t in range(1, 21)]
    assert explain_all(observed, s, want) == (Monomial(alpha=0.5), [1] + list(range(2, 21)))
    assert explain(1e9, s, want) is None  # no expression of the schedule is that large


def test_adapter_maps_template_indices_to_steps() -> None:
    s = linear_schedule(5, 0.1, 0.3)
    tensors = adapter.template_tensors(s, torch.float64)
    assert adapter.step_of_index(0) == 1 and adapter.index_of_step(5) == 4
    for name, ours in adapter.TEMPLATE_TENSORS.items():
        assert torch.equal(adapter.paper_tensor(tensors[name])[1:], getattr(s, ours)[1:])
    assert adapter.describe_step(3) == "t = 3 (template index 2)"


def test_table_shows_each_spec_its_citation_the_failure_and_the_line() -> None:
    decision = run(CASES / "mutant_noise_gate.py")
    table = Report.of("mutant_noise_gate.py", decision, Config().to_dict(), claims=course("02460").claims()).to_table()
    assert "sample_sigma      FAIL       [Ho20 §3.2]" in table and "no noise at t = 2 (template index 1)" in table
    assert "> mutant_noise_gate.py:37  z = torch.randn_like(x_t)" in table
    assert "forward_mean      pass       [Ho20 eq. 4]" in table
    assert table.endswith("14 passed, 2 failed, 0 undecided: some specs fail (exit 1)")


# The command line: the sandboxed child, exit statuses 0 / 1 / 2, a table and JSON.


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ddpm.verify", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_passes_a_correct_file_from_outside_the_source_tree(tmp_path: Path) -> None:
    done = cli(CASES / "correct_template.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "16 passed, 0 failed, 0 undecided: all specs pass (exit 0)" in done.stdout
    assert "ToyData" in done.stdout  # the stubbed import is listed


def test_cli_reports_a_mutant_as_json_with_the_line(tmp_path: Path) -> None:
    done = cli(CASES / "mutant_last_step_noise.py", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [o for o in report["outcomes"] if o["status"] == FAIL]
    assert [(o["spec"], o["cites"]) for o in failed] == [("sample_last_step", "[Ho20 alg. 2 l. 3]")]
    assert "Algorithm 2 sets z = 0 at t = 1" in failed[0]["detail"]
    assert failed[0]["lines"] == ["mutant_last_step_noise.py:37  z = torch.randn_like(x_t)"]


def test_cli_exit_2_for_a_broken_file(tmp_path: Path) -> None:
    done = cli(CASES / "broken_syntax.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "SyntaxError" in done.stdout and "line 5 of broken_syntax.py" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_exit_2_for_a_file_that_hangs_while_loading(tmp_path: Path) -> None:
    done = cli(CASES / "broken_hangs_on_import.py", "--timeout", "4", cwd=tmp_path)
    assert done.returncode == 2
    assert "did not finish within the time limit of 4 s" in done.stdout


@pytest.mark.slow
def test_cli_reports_a_sampler_that_hangs(tmp_path: Path) -> None:
    done = cli(CASES / "broken_hangs_in_sample.py", "--timeout", "60", cwd=tmp_path)
    assert done.returncode == 2, done.stdout  # a run that did not finish is not verified, and nothing failed
    assert "did not finish within the time limit" in done.stdout
    assert re.search(r"^  loss_value +pass ", done.stdout, re.M), done.stdout  # what finished before the hang is kept


@pytest.mark.slow
def test_cli_passes_the_reference_ddpm(tmp_path: Path) -> None:
    done = cli(REFERENCE, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
