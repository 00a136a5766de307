"""``ddpm conform`` on the sigma world: the closed forms, diffusers' schedulers, planted wrong ones.

The closed forms the specs hold schedulers to are checked against independent references first (an
ODE solver for the Gaussian flow in every parameterisation, the defining property of the Karras levels
and of the shift). Then each spec passes on diffusers' correct configurations and fails, naming the
cause, on a subclass with one thing wrong: Karras' rho, the last level, the timestep handed to the
network, a first-order update in a second-order solver, the ancestral noise, the flow-matching shift,
add_noise after set_begin_index, the step to level 0.
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from ddpm.conform import conform
from ddpm.conform.law import LAW_DRAWS
from ddpm.oracles import GaussianMixture, gaussian_flow, gaussian_flow_at
from ddpm.sigma.flow_matching import shift_levels, unshift_levels
from ddpm.sigma.schedule import karras_sigmas
from ddpm.stats import MonteCarloCheck, assert_power, z_threshold
from ddpm.verify.report import FAIL, PASS, UNDECIDED

diffusers = pytest.importorskip("diffusers")
# Any: diffusers' classes are subclassed below with one thing wrong
Euler: Any = diffusers.EulerDiscreteScheduler
EulerAncestral: Any = diffusers.EulerAncestralDiscreteScheduler
DPMSolver: Any = diffusers.DPMSolverMultistepScheduler
FlowMatchEuler: Any = diffusers.FlowMatchEulerDiscreteScheduler
STEPS = (1, 3, 10)


def outcomes(report):
    return {o.spec: o for o in report.outcomes}


# -- the closed forms ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ve", "vp", "fm"])
def test_gaussian_flow_at_solves_the_probability_flow_ode_in_each_parameterisation(kind):
    m, c = torch.tensor([[0.5]], dtype=torch.float64), 0.7
    mix = GaussianMixture(torch.ones(1, dtype=torch.float64), m, torch.tensor([c], dtype=torch.float64))

    def coords(sig):  # x = a x_0 + s eps at level sig
        if kind == "fm":
            return 1 - sig, sig
        a = 1.0 if kind == "ve" else 1 / math.sqrt(1 + sig * sig)
        return a, sig * a

    def velocity(sig, x):  # d x / d sig of E[a x_0 + s eps | x]: a' E[x_0 | x] + s' E[eps | x]
        h = 1e-6
        (a0, s0), (a1, s1) = coords(sig - h), coords(sig + h)
        a, s = coords(sig)
        xt = torch.tensor(x).reshape(1, 1)
        x0 = mix.posterior_mean(xt, a, s)
        eps = (xt - a * x0) / s
        return (((a1 - a0) * x0 + (s1 - s0) * eps) / (2 * h)).reshape(-1).numpy()

    lo, hi = (0.05, 0.95) if kind == "fm" else (0.05, 20.0)
    ode = solve_ivp(velocity, (hi, lo), np.array([2.3]), rtol=1e-10, atol=1e-12)
    (a_hi, s_hi), (a_lo, s_lo) = coords(hi), coords(lo)
    got = gaussian_flow_at(torch.tensor([2.3], dtype=torch.float64), a_hi, s_hi, a_lo, s_lo, mean=0.5, c=c)
    assert float(got[0]) == pytest.approx(ode.y[0, -1], rel=1e-7)
    if kind == "ve":
        assert torch.equal(got, gaussian_flow(torch.tensor([2.3], dtype=torch.float64), hi, lo, 0.5, c))


def test_karras_levels_are_evenly_spaced_in_sigma_to_the_one_over_rho():
    s = karras_sigmas(9, 0.002, 80.0, rho=7.0)
    assert float(s[0]) == pytest.approx(80.0, rel=1e-15) and float(s[-1]) == pytest.approx(0.002, rel=1e-14)
    spacing = (s ** (1 / 7)).diff()
    assert torch.allclose(spacing, spacing[0].expand(8), rtol=1e-12)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        karras_sigmas(0, 0.002, 80.0)


def test_the_shift_is_sd3s_and_unshift_inverts_it():
    assert float(shift_levels(0.5, 3.0)) == pytest.approx(0.75)  # 3 (1/2) / (1 + 2 (1/2))
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(unshift_levels(shift_levels(t, 3.0), 3.0), t, atol=1e-15)
    with pytest.raises(ValueError, match="shift = 0.0 must be a finite number > 0"):
        shift_levels(t, 0.0)


# -- diffusers' correct configurations -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, config, judged",
    [
        ("EulerDiscreteScheduler", {}, "ode_order"),
        ("EulerDiscreteScheduler", {"use_karras_sigmas": True, "prediction_type": "v_prediction"}, "ode_order"),
        ("EulerDiscreteScheduler", {"timestep_type": "continuous", "prediction_type": "v_prediction"}, "ode_order"),
        ("EulerAncestralDiscreteScheduler", {}, "law"),
        ("HeunDiscreteScheduler", {"use_karras_sigmas": True}, "ode_order"),
        ("DPMSolverMultistepScheduler", {"timestep_spacing": "trailing"}, "ode_order"),
        ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, "ode_order"),
    ],
)
def test_correct_sigma_schedulers_pass(name, config, judged):
    report = conform(getattr(diffusers, name), config, STEPS)
    assert report.exit_status == 0, report.to_table()
    assert judged in outcomes(report) and "levels" in outcomes(report)


def test_heun_is_second_order_and_euler_first():
    orders = {}
    for name in ("EulerDiscreteScheduler", "HeunDiscreteScheduler"):
        detail = outcomes(conform(getattr(diffusers, name), {}, (3,)))["ode_order"].detail
        orders[name] = float(detail.split("fitted order ")[1].split()[0])
    assert 0.9 < orders["EulerDiscreteScheduler"] < 1.1 and 1.9 < orders["HeunDiscreteScheduler"] < 2.1, orders


def test_log_linear_interpolation_lists_a_level_too_many_and_stops_short_of_0():
    report = conform(diffusers.EulerDiscreteScheduler, {"interpolation_type": "log_linear"}, (10,))
    o = outcomes(report)
    assert o["timesteps"].status == FAIL and "12 levels listed for 10 timesteps" in o["timesteps"].detail
    assert o["levels"].status == FAIL and "not 0" in o["levels"].detail and report.exit_status == 1


def test_leading_spacing_starts_at_a_level_that_moves_with_n_so_no_order_is_fitted():
    report = conform(diffusers.EulerDiscreteScheduler, {"timestep_spacing": "leading"}, STEPS)
    o = outcomes(report)["ode_order"]
    assert o.status == UNDECIDED and "sampling starts at level" in o.detail and report.exit_status == 2


# -- planted wrong schedulers --------------------------------------------------------------------


class KarrasRho5(Euler):
    def _convert_to_karras(self, in_sigmas, num_inference_steps):
        lo, hi = float(in_sigmas[-1]), float(in_sigmas[0])
        return karras_sigmas(num_inference_steps, lo, hi, rho=5.0).numpy()


class NoLastZero(Euler):
    def set_timesteps(self, *args, **kwargs):
        super().set_timesteps(*args, **kwargs)
        self.sigmas[-1] = self.sigmas[-2] / 2


class TimestepOffByOne(DPMSolver):  # the network is told the training step below the level's
    timesteps: Any

    def set_timesteps(self, *args, **kwargs):
        super().set_timesteps(*args, **kwargs)
        self.timesteps = (self.timesteps - 1).clamp_min(0)


class FirstOrderDPM(DPMSolver):  # states solver_order = 2, steps at order 1
    def multistep_dpm_solver_second_order_update(self, model_output_list, *args, sample=None, noise=None, **kwargs):
        return self.dpm_solver_first_order_update(model_output_list[-1], sample=sample, noise=noise)


class NoisyAncestral(EulerAncestral):  # noise 50% larger than the level asks
    def step(self, model_output, timestep, sample, generator=None, return_dict=True):
        i = self.step_index if self.step_index is not None else 0
        out = super().step(model_output, timestep, sample, generator=generator, return_dict=True)
        extra = 0.5 * float(self.sigmas[i + 1]) * torch.randn(sample.shape, generator=generator, dtype=sample.dtype)
        return type(out)(prev_sample=out.prev_sample + extra, pred_original_sample=out.pred_original_sample)


class ShiftTwice(FlowMatchEuler):
    def set_timesteps(self, *args, **kwargs):
        super().set_timesteps(*args, **kwargs)
        shift = self.config.shift
        s = self.sigmas[:-1]
        self.sigmas[:-1] = shift * s / (1 + (shift - 1) * s)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps


class BeginIndexIgnored(Euler):  # add_noise uses the level after begin_index
    def add_noise(self, original_samples, noise, timesteps):
        if self.begin_index is None:
            return super().add_noise(original_samples, noise, timesteps)
        sigma = self.sigmas[min(self.begin_index + 1, len(self.sigmas) - 1)].to(original_samples.dtype)
        return original_samples + noise * sigma


class LastStepDoubled(Euler):  # the step to 0 goes twice as far as the denoiser's x_0
    def step(self, model_output, timestep, sample, *args, **kwargs):
        i = self.step_index if self.step_index is not None else 0
        out = super().step(model_output, timestep, sample, *args, **kwargs)
        if float(self.sigmas[i + 1]) == 0:
            out.prev_sample = 2 * out.prev_sample - sample
        return out


@pytest.mark.parametrize(
    "cls, config, spec, cause",
    [
        (KarrasRho5, {"use_karras_sigmas": True}, "levels", "Karras level"),
        (NoLastZero, {}, "levels", "not 0"),
        (TimestepOffByOne, {}, "levels", "handed to the network at level"),
        (FirstOrderDPM, {}, "ode_order", "states 2; needs >= 1.5"),
        (ShiftTwice, {"shift": 3.0}, "levels", "not shift(3) of an evenly spaced grid"),
        (BeginIndexIgnored, {}, "add_noise", "after set_begin_index"),
        (LastStepDoubled, {"timestep_spacing": "trailing"}, "ode_order", "the step to level 0 lands"),
    ],
)
def test_planted_wrong_schedulers_fail_naming_the_cause(cls, config, spec, cause):
    report = conform(cls, config, STEPS)
    o = outcomes(report)[spec]
    assert o.status == FAIL and cause in o.detail and report.exit_status == 1, report.to_table()


def test_an_ancestral_sampler_with_the_wrong_noise_fails_its_law_with_power():
    report = conform(NoisyAncestral, {}, STEPS)
    o = outcomes(report)["law"]
    assert o.status == FAIL and "variance" in o.detail, o.detail
    z, k = (float(o.detail.split(f"{key} = ")[1].split(maxsplit=1)[0].rstrip(",)")) for key in ("z", "k"))
    assert k == pytest.approx(z_threshold(count=8), rel=1e-3)  # Bonferroni over 2 counts x (2 means, 2 variances)
    assert_power(MonteCarloCheck("law", z, k, LAW_DRAWS))
    correct = outcomes(conform(diffusers.EulerAncestralDiscreteScheduler, {}, STEPS))["law"]
    assert correct.status == PASS


def test_sigma_schedulers_are_reported_with_their_specs_only():
    report = conform(diffusers.FlowMatchEulerDiscreteScheduler, {}, STEPS)
    assert [o.spec for o in report.outcomes] == ["timesteps", "levels", "ode_order", "add_noise", "finite"]
    ddim = conform(diffusers.DDIMScheduler, {}, STEPS)
    assert "levels" not in outcomes(ddim) and "step" in outcomes(ddim)


def test_the_pytest_plugin_makes_a_test_of_each_sigma_spec(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    cmd += ["--ddpm-conform", "diffusers:FlowMatchEulerDiscreteScheduler", "--ddpm-conform-steps", "3"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "5 passed" in run.stdout, run.stdout + run.stderr
