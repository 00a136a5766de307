"""``ddpm conform`` on smalldiffusion-style samplers ``samples(model, sigmas, gam, mu, ...)``.

The samplers here are written to smalldiffusion's two signatures (the current one, a generator calling
``model.predict_eps_cfg``, and the older ``samples(model, sigmas, batchsize, gam, device, xt, mu)``
calling ``model(xt, sigma)``): the correct ones pass, and each planted wrong one fails naming the
(gam, mu, steps) and the numbers, its Monte Carlo check past 3k (``ddpm.stats.assert_power``). The
package itself (its __init__ imports torchvision) is run in docs/conform.md, not here. Every run is
seeded (``ddpm.stats.generator_for``): no test depends on the global seed.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddpm.cli import main
from ddpm.conform import conform
from ddpm.conform.functions import is_function_sampler
from ddpm.conform.gam_mu import (
    GRID,
    N_MC,
    STEPS,
    GaussianEpsModel,
    LawResult,
    M,
    exact_tolerance,
    is_gam_mu_sampler,
    law_results,
)
from ddpm.stats import FALSE_ALARM, assert_power, studentized_rate, z_threshold
from ddpm.verify.report import FAIL, PASS


def _sig_p(sig, sig_next, mu):
    return (sig_next / sig**mu) ** (1 / (1 - mu))


@torch.no_grad()
def samples(model, sigmas, gam=1.0, mu=0.0, cfg_scale=0.0, batchsize=1, xt=None, cond=None, accelerator=None):
    """The current signature: a generator; eps from predict_eps_cfg at a 0-d sigma."""
    x = model.rand_input(batchsize) * sigmas[0] if xt is None else xt
    eps = None
    for i in range(len(sigmas) - 1):
        sig, sig_next = sigmas[i], sigmas[i + 1]
        eps, eps_prev = model.predict_eps_cfg(x, sig.to(x), cond, cfg_scale), eps
        eps_av = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev
        sig_p = _sig_p(sig, sig_next, mu)
        eta = (sig_next**2 - sig_p**2).sqrt()
        x = x - (sig - sig_p) * eps_av + eta * model.rand_input(x.shape[0]).to(x)
        yield x


@torch.no_grad()
def samples_float32(model, sigmas, gam=1.0, mu=0.0, cfg_scale=0.0, batchsize=1, xt=None, cond=None, accelerator=None):
    """The same in float32 (smalldiffusion's schedules are float32): within the round-off tolerance."""
    sigmas = sigmas.float()
    x = model.rand_input(batchsize).float() * sigmas[0] if xt is None else xt.float()
    eps = None
    for i in range(len(sigmas) - 1):
        sig, sig_next = sigmas[i], sigmas[i + 1]
        eps, eps_prev = model.predict_eps_cfg(x, sig.to(x), cond, cfg_scale), eps
        eps_av = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev
        sig_p = _sig_p(sig, sig_next, mu)
        x = x - (sig - sig_p) * eps_av + (sig_next**2 - sig_p**2).sqrt() * model.rand_input(x.shape[0]).to(x)
        yield x


@torch.no_grad()
def samples_old(model, sigmas, batchsize=1, gam=1, device="cpu", xt=None, mu=0.0):
    """The older signature: model(x, sigma) with sigma shaped (B, 1), rand_input(batchsize, device)."""
    if xt is None:
        xt = model.rand_input(batchsize, device) * sigmas[0]
    eps = None
    for i in range(len(sigmas) - 1):
        sig, sig_next = sigmas[i], sigmas[i + 1]
        eps, eps_prev = model(xt, sig.to(device) * xt.new_ones(xt.shape[0], 1)), eps
        eps_av = eps * gam + eps_prev * (1 - gam) if i > 0 else eps
        sig_p = _sig_p(sig, sig_next, mu)
        xt = xt - (sig - sig_p) * eps_av + (sig_next**2 - sig_p**2).sqrt() * model.rand_input(batchsize, device)
        yield xt


def samples_no_xt(model, sigmas, gam=1.0, mu=0.0, batchsize=1):
    """No xt to start from, and a tensor returned rather than yielded: every run is a Monte Carlo one."""
    return list(samples(model, sigmas, gam=gam, mu=mu, batchsize=batchsize))[-1]


def _planted(*, flip=False, mix=True, eta_scale=1.0, next_level=False):
    @torch.no_grad()
    def planted(model, sigmas, gam=1.0, mu=0.0, cfg_scale=0.0, batchsize=1, xt=None, cond=None, accelerator=None):
        x = model.rand_input(batchsize) * sigmas[0] if xt is None else xt
        eps, last = None, len(sigmas) - 1
        for i in range(last):
            sig, sig_next = sigmas[i], sigmas[i + 1]
            eps, eps_prev = model.predict_eps_cfg(x, sig.to(x), cond, cfg_scale), eps
            eps_av = eps if eps_prev is None or not mix else gam * eps + (1 - gam) * eps_prev
            if flip:  # one unreleased version's convention: sig' = sig^(1 - mu) sig_p^mu
                sig_p = sig_next if mu == 0 else (sig_next / sig ** (1 - mu)) ** (1 / mu)
            elif next_level:  # off by one: the level after next in place of the next
                sig_p = _sig_p(sig, sigmas[min(i + 2, last)], mu)
            else:
                sig_p = _sig_p(sig, sig_next, mu)
            eta = (sig_next**2 - sig_p**2).clamp_min(0).sqrt()
            x = x - (sig - sig_p) * eps_av + eta_scale * eta * model.rand_input(x.shape[0]).to(x)
            yield x

    return planted


PLANTED = {
    "flipped mu": _planted(flip=True),
    "no gam mix": _planted(mix=False),
    "no noise": _planted(eta_scale=0.0),
    "noise doubled": _planted(eta_scale=2.0),
    "sig_p off by one level": _planted(next_level=True),
}


# the current signature as a module of its own, for the command line
CLI_MODULE = """import torch

@torch.no_grad()
def samples(model, sigmas, gam=1., mu=0., cfg_scale=0., batchsize=1, xt=None, cond=None, accelerator=None):
    xt = model.rand_input(batchsize) * sigmas[0] if xt is None else xt
    eps = None
    for i in range(len(sigmas) - 1):
        sig, sig_next = sigmas[i], sigmas[i + 1]
        eps_prev, eps = eps, model.predict_eps_cfg(xt, sig.to(xt), cond, cfg_scale)
        eps_av = eps * gam + eps_prev * (1 - gam) if i > 0 else eps
        sig_p = (sig_next / sig**mu) ** (1 / (1 - mu))
        eta = (sig_next**2 - sig_p**2).sqrt()
        xt = xt - (sig - sig_p) * eps_av + eta * model.rand_input(xt.shape[0]).to(xt)
        yield xt
"""


def outcomes(report):
    return {o.spec: o for o in report.outcomes}


def test_recognised_beside_the_k_diffusion_style():
    assert is_gam_mu_sampler(samples) and is_gam_mu_sampler(samples_old) and is_gam_mu_sampler(samples_no_xt)
    assert not is_function_sampler(samples)

    def euler(model, x, sigmas):
        return x

    def no_mu(model, sigmas, gam=1.0):
        return sigmas

    assert not is_gam_mu_sampler(euler) and is_function_sampler(euler)
    assert not is_gam_mu_sampler(no_mu) and not is_gam_mu_sampler(GaussianEpsModel)


def test_the_model_answers_eps_star_for_every_shape_of_sigma():
    model = GaussianEpsModel(M, 0.25, torch.Generator().manual_seed(0))
    x = model.rand_input(5)
    assert x.dtype == torch.float64 and x.shape == (5, 2)
    want = 0.7 * (x - torch.tensor(M, dtype=torch.float64)) / (0.25 + 0.7**2)  # sigma (x - m) / (c + sigma^2)
    f64 = torch.float64
    for sigma in (
        0.7,
        torch.tensor(0.7, dtype=f64),
        torch.full((5,), 0.7, dtype=f64),
        torch.full((5, 1), 0.7, dtype=f64),
    ):
        torch.testing.assert_close(model.predict_eps_cfg(x, sigma, None, 0.0), want, rtol=1e-14, atol=0)
        torch.testing.assert_close(model(x, sigma), want, rtol=1e-14, atol=0)
    assert model.predict_eps(x.float(), 0.7).dtype == torch.float32
    with pytest.raises(ValueError, match=r"sigma of shape \(3,\) for x of shape \(5, 2\)"):
        model(x, torch.ones(3))
    assert model.eval() is model and model.to("cpu") is model and list(model.parameters()) == []


@pytest.mark.parametrize("fn", [samples, samples_old, samples_no_xt], ids=lambda f: f.__name__)
def test_correct_samplers_pass(fn):
    threads = torch.get_num_threads()
    report = conform(fn, name=fn.__name__)
    assert torch.get_num_threads() == threads  # one thread while it runs, restored after
    assert report.exit_status == 0, report.to_table()
    law = outcomes(report)["gam_mu_law"]
    assert law.status == PASS and "(1, 0.25)" in law.detail and "(2, 0)" in law.detail, law.detail
    assert report.steps == (10, 25)


def test_the_deterministic_runs_are_exact_to_round_off_in_float64_and_float32():
    ratios = {}
    for fn in (samples, samples_float32):
        results = [r for r in law_results(fn, steps=(25,), settings=((2.0, 0.0),)) if r.check is None]
        assert results and all(r.passed for r in results), [r.detail for r in results]
        err = float(results[0].detail.split(" = ")[1].split()[0])
        tol = float(results[0].detail.split("tolerance ")[1])
        ratios[fn.__name__] = err / tol
    # measured: 1e-12 of the tolerance in float64, 5e-4 in float32
    assert ratios["samples"] < 1e-9 and 1e-6 < ratios["samples_float32"] < 1e-2, ratios


def test_exact_tolerance_is_float32_round_off_per_step():
    xt = torch.tensor([[3.0, -8.0]], dtype=torch.float64)
    assert exact_tolerance(10, xt, torch.tensor(M)) == 16 * 10 * 2.0**-24 * 8.0
    assert exact_tolerance(10, xt, torch.tensor(M), torch.tensor([[20.0, 0.0]])) == 16 * 10 * 2.0**-24 * 20.0


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_wrong_samplers_fail_with_margin(name):
    results = law_results(PLANTED[name])
    failed = [r for r in results if not r.passed]
    assert failed, name
    checks = [r.check for r in failed if r.check is not None]
    if name != "no gam mix":  # each of these shows in the law of the noisy runs
        assert_power(max(checks, key=lambda c: c.z))
    if name in ("no gam mix", "sig_p off by one level"):  # and these in the deterministic runs, far off
        exact = [r for r in failed if r.check is None]
        errors = [float(r.detail.split(" = ")[1].split()[0]) for r in exact]
        assert errors and min(errors) > 1e-2, [r.detail for r in exact]
    assert all(isinstance(r, LawResult) for r in results)


def test_the_flipped_mu_convention_passes_at_one_half_and_fails_at_one_quarter():
    fn = PLANTED["flipped mu"]
    assert conform(fn, {"mu": 0.5}, steps=(10,)).exit_status == 0
    report = conform(fn, {"gam": 1, "mu": 0.25}, steps=(10,))
    law = outcomes(report)["gam_mu_law"]
    assert report.exit_status == 1 and law.status == FAIL
    assert law.detail.startswith("gam = 1, mu = 0.25, 10 steps: variance of coordinate"), law.detail
    assert "observed" in law.detail and "expected" in law.detail and "z = " in law.detail


@pytest.mark.parametrize(
    "name, config, words",
    [
        ("no gam mix", {"gam": 2}, "gam = 2, mu = 0, 10 steps: max |x - (m + gain (xt - m))| ="),
        ("no noise", {"mu": 0.5}, "gam = 1, mu = 0.5, 10 steps: variance of coordinate"),
        ("noise doubled", {"mu": 0.5}, "gam = 1, mu = 0.5, 10 steps: variance of coordinate"),
        ("sig_p off by one level", {}, "gam = 1, mu = 0, 10 steps: max |x - (m + gain (xt - m))| ="),
    ],
)
def test_each_planted_failure_names_the_run_and_the_numbers(name, config, words):
    law = outcomes(conform(PLANTED[name], config, steps=(10,)))["gam_mu_law"]
    assert law.status == FAIL and law.detail.startswith(words), law.detail
    assert "observed" in law.detail and "expected" in law.detail


def test_a_sampler_that_raises_or_returns_nothing_is_one_line():
    def broken(model, sigmas, gam=1.0, mu=0.0, batchsize=1, xt=None):
        raise ValueError("sigmas must be a tensor\nsecond line")

    def nothing(model, sigmas, gam=1.0, mu=0.0, batchsize=1, xt=None):
        return None

    def empty(model, sigmas, gam=1.0, mu=0.0, batchsize=1, xt=None):
        yield from ()

    cases = [
        (broken, "raised ValueError: sigmas must be a tensor"),
        (nothing, "returned NoneType, expected a tensor or a generator of tensors"),
        (empty, "returned a generator that yielded nothing"),
    ]
    for fn, line in cases:
        report = conform(fn)
        assert report.exit_status == 1 and all(o.status == FAIL for o in report.outcomes)
        assert outcomes(report)["gam_mu_law"].detail.startswith(line)


@pytest.mark.parametrize(
    "config, steps, message",
    [
        ({"eta": 1.0}, (10,), "takes --config gam=... mu=..., not 'eta'"),
        ({"mu": 1}, (10,), "--config mu=1.0: expected mu in [0, 1)"),
        ({"gam": "two"}, (10,), "--config gam='two': expected a finite number"),
        ({"gam": True}, (10,), "--config gam=True: expected a finite number"),
        ({}, (500,), "--steps: expected step counts in 1..200"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(config, steps, message):
    report = conform(samples, config, steps=steps)
    assert report.exit_status == 2 and message in report.error and "\n" not in report.error
    assert not report.outcomes


@pytest.mark.parametrize("runs", [1, 2, 6, 12])  # --config with one or two step counts; the grid with and without xt
def test_a_run_keeps_the_false_alarm_rate_at_its_sample_size(runs):
    """Each Monte Carlo run's 4 studentized means keep, summed over the runs, 1.5 times the stated rate.

    Under a correct sampler the output is exactly Gaussian, so the statistics' cumulants are known: x has
    skewness 0 and excess kurtosis 0, (x - mean)^2 is a scaled chi-square with one degree of freedom (2 sqrt 2
    and 12). Their rate at k by the Edgeworth expansion (``studentized_rate``, as tests/test_stats.py holds the
    specs' statistics); measured 1.23e-6 to 1.37e-6 at n = 20,000 (10,000 would give 1.65e-6 for 6 runs).
    """
    k = z_threshold(FALSE_ALARM / runs, 4)
    per_run = 2 * studentized_rate(k, N_MC, 0.0, 0.0) + 2 * studentized_rate(k, N_MC, 2 * math.sqrt(2), 12.0)
    assert runs * per_run <= 1.5 * FALSE_ALARM, runs * per_run
    assert sum(mu > 0 for _, mu in GRID) * len(STEPS) == 6  # the default run's count, as the docs state


def test_the_grid_holds_the_presets_and_both_mu_conventions_apart():
    assert {(1.0, 0.0), (1.0, 0.5), (2.0, 0.0), (1.5, 0.0), (1.0, 0.25)} <= set(GRID)


def test_cli_runs_a_module_function_and_rejects_bad_config(tmp_path, monkeypatch, capsys):
    (tmp_path / "mysd.py").write_text(CLI_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["conform", "mysd:samples", "--config", "gam=2", "--config", "mu=0.25", "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "mysd:samples gam=2 mu=0.25" in out and "gam_mu_law        pass" in out, out
    assert main(["conform", "mysd:samples", "--config", "mu=1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddpm conform: error: --config mu=1.5: expected mu in [0, 1)") and err.count("\n") == 1


def test_a_sampler_without_batchsize_is_undecided_where_a_law_needs_many_draws():
    def fixed_batch(model, sigmas, gam=1.0, mu=0.0, xt=None):
        yield from samples(model, sigmas, gam=gam, mu=mu, batchsize=7, xt=xt)

    report = conform(fixed_batch)
    assert report.exit_status == 2 and "takes no batchsize" in outcomes(report)["gam_mu_law"].detail
    assert conform(fixed_batch, {"gam": 2}, steps=(10,)).exit_status == 0  # mu = 0 from xt: exact, no draws
