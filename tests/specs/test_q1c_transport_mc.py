"""The pytest entry points of specs/q1c_transport_mc.py [6.S183 Q1c].

The claim and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

import pytest

from ddpm.oracles import transport_velocity
from ddpm.specs.q1c_transport_mc import (
    MIXTURE,
    PLANTED_RESIDUAL,
    N,
    check_flow_accuracy,
    check_flow_carries_p1_to_p0,
    check_transport_equation,
    sigma_ddpm,
    sigma_linear,
    velocity_t,
)
from ddpm.stats import assert_power


def _without_dsigma(mixture, x, sigma, dsigma):
    """Planted: v = E[eps | x_t], sigma'(t) left out."""
    return transport_velocity(mixture, x, sigma, 1.0)


def _flipped(mixture, x, sigma, dsigma):
    """Planted: v with its sign flipped."""
    return -transport_velocity(mixture, x, sigma, dsigma)


SIGMAS = pytest.mark.parametrize("sigma", [sigma_ddpm, sigma_linear], ids=["ddpm", "t"])


@SIGMAS
def test_q1c_transport_residual_vanishes(sigma, gen):
    check_transport_equation(sigma, gen)


@pytest.mark.parametrize(
    "sigma, velocity",
    [(sigma_ddpm, _without_dsigma), (sigma_ddpm, _flipped), (sigma_linear, _flipped)],
    ids=["ddpm-without_dsigma", "ddpm-flipped", "t-flipped"],
)
def test_q1c_transport_residual_rejects_planted(sigma, velocity, gen):
    worst = check_transport_equation(sigma, gen, velocity, raise_on_fail=False)
    assert worst > PLANTED_RESIDUAL, f"a planted velocity leaves a residual of only {worst:.3g} of its terms"


def test_q1c_flow_carries_p1_to_p0(gen):
    check_flow_carries_p1_to_p0(N, gen)


def test_q1c_flow_is_fourth_order_and_accurate(gen):
    check_flow_accuracy(gen)


def _flow_evaluating_at_tiny_sigma(x1, velocity=transport_velocity, steps=100):
    """Planted: the last stage evaluates v at t = 1 - steps (1 / steps) in floating point, ~1e-17.

    Not its limit.
    """
    v = lambda x, t: velocity(MIXTURE, x, t, 1.0)  # noqa: E731
    x, h = x1, -1.0 / steps
    for i in range(steps):
        t = 1.0 + i * h
        k1 = v(x, t)
        k2 = v(x + h / 2 * k1, t + h / 2)
        k3 = v(x + h / 2 * k2, t + h / 2)
        k4 = v(x + h * k3, max(t + h, 1e-17))
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _euler_flow(x1, velocity=transport_velocity, steps=100):
    """Planted: Euler steps, a first-order integrator."""
    x = x1
    for i in range(steps):
        x = x - velocity_t(x, (steps - i) / steps, velocity) / steps
    return x


@pytest.mark.parametrize("integrate", [_flow_evaluating_at_tiny_sigma, _euler_flow], ids=["tiny_sigma", "euler"])
def test_q1c_flow_accuracy_rejects_planted(integrate, gen):
    with pytest.raises(AssertionError, match="RK4 flow"):
        check_flow_accuracy(gen, integrate=integrate)


def test_q1c_flow_rejects_planted_flipped_sign(gen):
    # the flipped flow spreads p_1 further instead of contracting it: z ~ 55 at n = 1e4, >> 3k = 16
    assert_power(check_flow_carries_p1_to_p0(N, gen, _flipped, raise_on_fail=False))
