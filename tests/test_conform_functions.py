"""``ddpm conform`` on k-diffusion style samplers ``f(model, x, sigmas)``, written to that signature.

k-diffusion itself is not installed (its package imports torchvision, clip and more): a correct Euler
and Heun written to its signature pass with fitted orders near 1 and 2, a planted wrong Euler fails,
and a stochastic sampler is undecided, never failed. ``gaussian_flow``, the closed form they are held
to, is checked against scipy's ODE solver.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from ddpm.conform import conform
from ddpm.conform.functions import is_function_sampler
from ddpm.oracles import SigmaOptimalEps, gaussian_flow
from ddpm.verify.report import FAIL, PASS, UNDECIDED


def sample_euler(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * x.new_ones(x.shape[0]))) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_heun(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        s, dt = sigmas[i], sigmas[i + 1] - sigmas[i]
        d = (x - model(x, s * x.new_ones(x.shape[0]))) / s
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x2 = x + d * dt
        d2 = (x2 - model(x2, sigmas[i + 1] * x.new_ones(x.shape[0]))) / sigmas[i + 1]
        x = x + (d + d2) / 2 * dt
    return x


def sample_euler_wrong(model, x, sigmas):  # planted: the derivative divided by sigma^2
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * x.new_ones(x.shape[0]))) / sigmas[i] ** 2
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_euler_ancestral(model, x, sigmas):  # stochastic: draws from the global generator
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * x.new_ones(x.shape[0]))) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i]) + 0.01 * torch.randn_like(x)
    return x


def test_gaussian_flow_is_the_solution_of_the_probability_flow_ode():
    eps = SigmaOptimalEps.gaussian(torch.tensor([0.5]), 2.0)
    x_from = np.array([3.0])

    def f(sigma, x):
        return eps(torch.tensor(x).reshape(1, 1), torch.tensor([sigma])).reshape(-1).numpy()

    ode = solve_ivp(f, (10.0, 0.1), x_from, rtol=1e-11, atol=1e-12)
    want = ode.y[0, -1]
    got = gaussian_flow(torch.tensor(x_from), 10.0, 0.1, mean=0.5, c=2.0)
    assert float(got[0]) == pytest.approx(want, rel=1e-8)


# fitted over 8..64 steps: 1.01 and 2.29 measured; the bands tell order 1 from order 2
@pytest.mark.parametrize("fn, low, high", [(sample_euler, 0.9, 1.2), (sample_heun, 1.7, 2.6)])
def test_correct_samplers_converge_with_their_order(fn, low, high):
    assert is_function_sampler(fn)
    report = conform(fn, name=fn.__name__)
    o = {o.spec: o for o in report.outcomes}["ode_order"]
    assert report.exit_status == 0 and o.status == PASS, report.to_table()
    order = float(o.detail.split("fitted order ")[1].split()[0])
    assert low <= order <= high, o.detail


def test_a_wrong_euler_fails_and_a_stochastic_one_is_undecided():
    wrong = {o.spec: o for o in conform(sample_euler_wrong).outcomes}["ode_order"]
    assert wrong.status == FAIL and "below 0.8" in wrong.detail
    anc = conform(sample_euler_ancestral)
    assert {o.spec: o.status for o in anc.outcomes}["ode_order"] == UNDECIDED and anc.exit_status == 2


def test_a_sampler_that_raises_is_one_line():
    def broken(model, x, sigmas):
        raise ValueError("sigmas must end at 0")

    o = conform(broken).outcomes[0]
    assert o.status == FAIL and o.detail == "raised ValueError: sigmas must end at 0"
