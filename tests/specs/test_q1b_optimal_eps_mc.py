"""The pytest entry points of specs/q1b_optimal_eps_mc.py [6.S183 Q1b].

The claim and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

import pytest

from ddpm.specs.q1b_optimal_eps_mc import DATASET, MIXTURE, N, check_eps_star_is_conditional_mean, check_loss_minimum
from ddpm.stats import assert_power

LAWS = pytest.mark.parametrize("mixture", [MIXTURE, DATASET], ids=["mixture", "dataset"])


def _eps_star_sigma_squared(mixture):
    """Planted: eps* with sigma^2 where sigma belongs."""
    return lambda x, a, s: mixture.eps_star(x, a, s**2)


@LAWS
def test_q1b_eps_star_is_conditional_mean(mixture, gen):
    check_eps_star_is_conditional_mean(mixture, N, gen)


@LAWS
def test_q1b_eps_star_rejects_planted_sigma_squared(mixture, gen):
    # z ~ 170 (mixture), ~210 (data set) >> 3k = 17 at n = 4e4 (measured, seed 3), from sigma = 0.5 and 2
    assert_power(
        check_eps_star_is_conditional_mean(
            mixture, N, gen, eps_star=_eps_star_sigma_squared(mixture), raise_on_fail=False
        )
    )


@LAWS
def test_q1b_loss_minimum_and_margins(mixture, gen):
    check_loss_minimum(mixture, N, gen)


@LAWS
def test_q1b_loss_minimum_rejects_planted_sigma_squared(mixture, gen):
    # z > 150 at n = 4e4
    assert_power(check_loss_minimum(mixture, N, gen, eps_star=_eps_star_sigma_squared(mixture), raise_on_fail=False))
