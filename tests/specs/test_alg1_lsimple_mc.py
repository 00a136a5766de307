"""The pytest entry points of specs/alg1_lsimple_mc.py [Ho20 alg. 1, eq. 14].

The claim and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from ddpm.beta.schedule import Schedule, linear_schedule
from ddpm.oracles import OptimalEps
from ddpm.specs.alg1_lsimple_mc import DATA, N, check_expected_l_simple
from ddpm.stats import assert_power


def test_alg1_expected_l_simple_of_eps_star(gen):
    check_expected_l_simple(N, gen)


@pytest.mark.slow
def test_alg1_expected_l_simple_of_eps_star_large_n(gen):
    check_expected_l_simple(20 * N, gen)


# At n = 5e4 the planted eps* sit at z ~ 170 (alpha for alpha_bar) and z ~ 28 (missing square root), > 3k = 14.7.
@pytest.mark.parametrize("planted", ["alpha_for_alpha_bar", "missing_sqrt"])
def test_alg1_expected_l_simple_rejects_planted(planted, gen):
    s = linear_schedule(1000)
    if planted == "alpha_for_alpha_bar":
        wrong = SimpleNamespace(alpha_bar=s.alpha, one_minus_alpha_bar=s.beta)
    else:  # the signal scale alpha_bar_t where sqrt(alpha_bar_t) belongs
        wrong = SimpleNamespace(alpha_bar=s.alpha_bar**2, one_minus_alpha_bar=s.one_minus_alpha_bar)
    # the SimpleNamespace stands in for a Schedule: only the two attributes OptimalEps reads
    stand_in = cast(Schedule, wrong)
    assert_power(check_expected_l_simple(N, gen, eps_model=OptimalEps(DATA, stand_in), schedule=s, raise_on_fail=False))
