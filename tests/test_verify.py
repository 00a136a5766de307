"""``ddpm verify``: sound on correct files of every style, sharp on each known mistake (tests/verify_cases).

The specs run in-process here (``ddpm.verify.worker.verify``, the worker's own function) so that the
whole zoo of mutants stays fast; the command line, with its child process, time limit and exit
status, is tested on a few files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ddpm.schedule import linear_schedule
from ddpm.verify import adapter
from ddpm.verify.coefficients import Monomial, explain, explain_all
from ddpm.verify.harness import Config
from ddpm.verify.loader import LoadError, Stub
from ddpm.verify.report import FAIL, PASS, SPECS, Report
from ddpm.verify.worker import verify

CASES = Path(__file__).parent / "verify_cases"
REFERENCE = Path(adapter.__file__).with_name("reference.py")

# file: (the spec that must fail, words its message must hold, other specs allowed to fail as a consequence)
MUTANTS = {
    "mutant_forward_no_sqrt": ("forward_mean", "alpha_bar_t x_0 where eq. 4 has sqrt(alpha_bar_t)", set()),
    "mutant_alpha_in_training": ("forward_mean", "sqrt(alpha_t) x_0 where eq. 4 has sqrt(alpha_bar_t)",
                                 {"forward_noise"}),
    "mutant_alpha_in_sampling": ("sample_mean", "factor on eps_theta is", {"sample_law"}),
    "mutant_alpha_bar_factor": ("sample_mean", "= 1 / sqrt(alpha_bar_t); eq. 11 has 1 / sqrt(alpha_t)", {"sample_law"}),
    "mutant_t_range": ("train_t", "never t = 1 (template index 0)", {"sample_law"}),
    "mutant_t_per_batch": ("train_t", "one t for the whole batch", {"sample_law"}),
    "mutant_noise_gate": ("sample_sigma", "no noise at t = 2 (template index 1)", {"sample_law"}),
    "mutant_last_step_noise": ("sample_last_step", "Algorithm 2 sets z = 0 at t = 1", {"sample_law"}),
    "mutant_skip_last_step": ("sample_steps", "takes 19 steps", {"sample_last_step", "sample_law"}),
    "mutant_t_encoding": ("t_encoding", "the two encode t differently", {"sample_law"}),
    "mutant_integer_time": ("t_encoding", "cannot tell the steps apart", set()),
    "mutant_batch_mean": ("loss_value", "one number for the whole batch", set()),
    "mutant_unsquared": ("loss_value", "not squared", set()),
    "mutant_x0_target": ("loss_value", "regresses x_0 instead of eps", set()),
    "mutant_shared_eps": ("train_eps", "eps of different samples are correlated", set()),
    "mutant_uniform_eps": ("forward_noise", "not Gaussian", set()),
    "mutant_sigma_beta": ("sample_sigma", "= beta_t at t = 2 (template index 1)", {"sample_law"}),
    "mutant_z_once": ("sample_z", "correlated between consecutive steps", {"sample_law"}),
    "mutant_prior": ("sample_prior", "x_T is not N(0, I)", {"sample_law"}),
    "broken_index_error": ("forward_mean", "IndexError", set()),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def outcomes(path: Path, **config) -> dict:
    result, _ = verify(path, Config(**config))
    assert [o.spec for o in result] == list(SPECS), "every spec is reported once, in order"
    return {o.spec: o for o in result}


@pytest.mark.parametrize("name", ["correct_template", "correct_onebased", "correct_image_only"])
def test_correct_files_pass(name: str, seed: int) -> None:
    result = outcomes(CASES / f"{name}.py", seed=seed)
    assert {k: o.message for k, o in result.items() if o.status != PASS} == {}


def test_reference_ddpm_passes_through_the_same_adapter(seed: int) -> None:
    result = outcomes(REFERENCE, seed=seed)
    assert {k: o.message for k, o in result.items() if o.status != PASS} == {}


def test_the_report_names_each_style() -> None:
    template, onebased = outcomes(CASES / "correct_template.py"), outcomes(CASES / "correct_onebased.py")
    assert "sum over dimensions" in template["loss_value"].message
    assert "mean over the 64 dimensions" in onebased["loss_value"].message
    assert template["sample_sigma"].message == "sigma_t^2 = beta_t"
    assert onebased["sample_sigma"].message == "sigma_t^2 = beta_tilde_t"


def test_sigma_beta_demands_the_sheets_choice() -> None:
    result = outcomes(CASES / "correct_onebased.py", sigma=("beta",))
    assert result["sample_sigma"].status == FAIL
    assert "sigma_t^2 = beta_tilde_t; --sigma beta demands beta_t" in result["sample_sigma"].message
    assert outcomes(CASES / "correct_template.py", sigma=("beta",))["sample_sigma"].status == PASS


def test_image_only_file_is_checked_on_images_with_a_note() -> None:
    _, notes = verify(CASES / "correct_image_only.py", Config())
    assert any("works only on image-shaped data" in n and "(1000, 1, 8, 8)" in n for n in notes)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_with_its_diagnosis(name: str, seed: int) -> None:
    spec, words, consequences = MUTANTS[name]
    result = outcomes(CASES / f"{name}.py", seed=seed)
    assert result[spec].status == FAIL and words in result[spec].message, result[spec]
    failed = {k for k, o in result.items() if o.status == FAIL}
    assert failed <= {spec} | consequences, {k: result[k].message for k in failed - {spec}}


@pytest.mark.parametrize("name", ["broken_syntax", "broken_no_ddpm"])
def test_a_file_off_the_interface_cannot_be_loaded(name: str) -> None:
    with pytest.raises(LoadError):
        verify(CASES / f"{name}.py", Config())


def test_stub_stands_in_for_missing_imports() -> None:
    tqdm = Stub("tqdm.tqdm")
    assert list(tqdm(range(3), desc="x")) == [0, 1, 2]
    assert isinstance(tqdm.write, Stub)

    class Net(Stub("unet.Unet")):  # subclassing a stubbed class works
        pass

    assert Net.__mro__[-1] is object


def test_explain_names_the_expression_a_coefficient_is() -> None:
    s = linear_schedule(20, 0.01, 0.2)
    want = Monomial(alpha_bar=0.5)
    assert explain(float(s.alpha_bar[7]), s, want) == (Monomial(alpha_bar=1.0), 7)
    assert str(Monomial(beta=1, alpha=-0.5, one_minus_alpha_bar=-0.5)) == "beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t))"
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


# The command line: a child process, a time limit, exit statuses 0 / 1 / 2, a table and JSON.

def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddpm.verify", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_passes_a_correct_file_from_outside_the_source_tree(tmp_path: Path) -> None:
    done = cli(CASES / "correct_template.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "16 passed, 0 failed, 0 skipped: all specs pass (exit 0)" in done.stdout
    stubbed = re.search(r"stubs for the imports that are not installed: (.*)", done.stdout)
    assert stubbed and "ToyData" in stubbed[1].split(", ")  # tqdm too, where it is not installed


def test_cli_reports_a_mutant_as_json(tmp_path: Path) -> None:
    done = cli(CASES / "mutant_last_step_noise.py", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["exit_status"] == 1
    failed = [o for o in report["outcomes"] if o["status"] == FAIL]
    assert [(o["spec"], o["cites"]) for o in failed] == [("sample_last_step", "[Ho20 alg. 2 l. 3]")]
    assert "Algorithm 2 sets z = 0 at t = 1" in failed[0]["message"]


def test_table_shows_each_spec_its_citation_and_the_failure() -> None:
    result, notes = verify(CASES / "mutant_noise_gate.py", Config())
    table = Report("mutant_noise_gate.py", 1, asdict(Config()), result, notes).to_table()
    assert "sample_sigma      FAIL    [Ho20 §3.2]" in table and "no noise at t = 2 (template index 1)" in table
    assert "forward_mean      pass    [Ho20 eq. 4]" in table
    assert table.endswith("14 passed, 2 failed, 0 skipped: some specs fail (exit 1)")


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
    assert done.returncode == 1, done.stdout
    report = done.stdout
    assert "sample_steps      FAIL" in report and "did not finish within the time limit" in report
    assert "loss_value        pass" in report  # what finished before the hang is kept


@pytest.mark.slow
def test_cli_passes_the_reference_ddpm(tmp_path: Path) -> None:
    done = cli(REFERENCE, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
