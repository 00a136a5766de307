"""House style no linter checks: the first line of every docstring is under 100 characters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Students' files as they write them (fixtures of `ddpm verify`) keep their own style.
EXCLUDED = ("tests/verify_cases", "tests/verify_cases_s183", "tests/verify_hostile")
LIMIT = 100
# Files whose long first lines were left to their owners, who were editing them on other branches when
# this check came (2026-12-01): shorten them on the merged tree, then drop each file from this set.
# The last test fails for a file listed here that no longer needs to be.
PENDING = {
    "benchmarks/__init__.py",
    "benchmarks/sigma_workloads.py",
    "benchmarks/test_bench.py",
    "benchmarks/test_sigma_peer.py",
    "benchmarks/workloads.py",
    "conftest.py",
    "ddpm/__init__.py",
    "ddpm/cli.py",
    "ddpm/data/__init__.py",
    "ddpm/data/swissroll.py",
    "ddpm/flow_matching.py",
    "ddpm/losses.py",
    "ddpm/nets/__init__.py",
    "ddpm/nets/sigma_mlp.py",
    "ddpm/oracles.py",
    "ddpm/posterior.py",
    "ddpm/pytest_plugin.py",
    "ddpm/s183.py",
    "ddpm/sampler.py",
    "ddpm/schedule.py",
    "ddpm/sigma_losses.py",
    "ddpm/sigma_sampler.py",
    "ddpm/sigma_schedule.py",
    "ddpm/sigma_train.py",
    "ddpm/train.py",
    "ddpm/verify/adapter.py",
    "ddpm/verify/channel.py",
    "ddpm/verify/child.py",
    "ddpm/verify/cli.py",
    "ddpm/verify/coefficients.py",
    "ddpm/verify/courses.py",
    "ddpm/verify/dtu/decide.py",
    "ddpm/verify/dtu/observe.py",
    "ddpm/verify/formats.py",
    "ddpm/verify/loader.py",
    "ddpm/verify/runner.py",
    "ddpm/verify/s183/__init__.py",
    "ddpm/verify/s183/decide.py",
    "ddpm/verify/s183/notebook.py",
    "ddpm/verify/s183/observe.py",
    "ddpm/verify/s183/specs.py",
    "ddpm/verify/s183/standins.py",
    "ddpm/verify/sampling.py",
    "ddpm/verify/sandbox.py",
    "ddpm/verify/stats.py",
    "ddpm/verify/training.py",
    "scripts/seed_sweep.py",
    "specs/__init__.py",
    "specs/_bind.py",
    "specs/alg1_alg2_lines.py",
    "specs/alg1_lsimple_mc.py",
    "specs/alg2_sampler_mc.py",
    "specs/eq04_marginal.py",
    "specs/eq05_bound_mc.py",
    "specs/eq07_posterior.py",
    "specs/eq12_eps_weight.py",
    "specs/eq13_decoder.py",
    "specs/ex31_prior_limit.py",
    "specs/ex32_elbo_decomposition.py",
    "specs/ex33_kl_to_mse.py",
    "specs/q1b_optimal_eps.py",
    "specs/q1b_optimal_eps_mc.py",
    "specs/q1c_transport.py",
    "specs/q1c_transport_mc.py",
    "specs/s183_ddim_flow.py",
    "specs/s183_gam_law_mc.py",
    "specs/s183_mu_step.py",
    "specs/s183_ve_vp.py",
    "specs/sec32_sigma_choices.py",
    "tests/test_cli.py",
    "tests/test_core.py",
    "tests/test_data.py",
    "tests/test_posterior_properties.py",
    "tests/test_schedule_properties.py",
    "tests/test_sigma_cli.py",
    "tests/test_sigma_core.py",
    "tests/test_sigma_data_nets.py",
    "tests/test_sigma_peers.py",
    "tests/test_specs_planted.py",
    "tests/test_specs_planted_s183.py",
    "tests/test_stats.py",
    "tests/test_train.py",
    "tests/test_verify.py",
    "tests/test_verify_channel.py",
    "tests/test_verify_s183.py",
    "tests/test_verify_sandbox.py",
}


def python_files() -> list[Path]:
    files = []
    for folder in ("ddpm", "specs", "benchmarks", "scripts", "tests"):
        files += [p for p in sorted((ROOT / folder).rglob("*.py")) if not str(p.relative_to(ROOT)).startswith(EXCLUDED)]
    return files + [ROOT / "conftest.py"]


def long_first_lines(source: str) -> list[tuple[int, int]]:
    """(line number, length) of each docstring whose first line, stripped, has LIMIT characters or more."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
                if len(first) >= LIMIT:
                    found.append((node.body[0].lineno if not isinstance(node, ast.Module) else 1, len(first)))
    return found


def test_the_check_can_fail():
    source = f'def f():\n    """{"x" * LIMIT}"""\n\n\nclass A:\n    """short"""\n'
    assert long_first_lines(source) == [(2, LIMIT)]
    assert long_first_lines(f'"""{"y" * (LIMIT - 1)}\n\n{"z" * 300}\n"""\n') == []


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", [p for p in python_files() if relative(p) not in PENDING], ids=relative)
def test_docstring_first_lines_are_short(path):
    assert long_first_lines(path.read_text()) == [], f"{relative(path)}: (line, length) of long first lines"


def test_pending_files_are_still_pending():
    """The PENDING set only shrinks: a listed file that is gone or fixed must leave it."""
    done = [p for p in sorted(PENDING) if not (ROOT / p).is_file() or not long_first_lines((ROOT / p).read_text())]
    assert done == [], f"remove from PENDING in tests/test_style.py: {done}"
