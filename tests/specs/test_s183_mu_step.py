"""The pytest entry points of specs/s183_mu_step.py [PY23 App. A].

The claim, its derivation and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

import pytest

from ddpm.sigma.sampler import step_levels
from ddpm.specs.s183_mu_step import MUS, N, check_keeps_marginal, check_mu_step_is_alg2, check_step_levels, derivation
from ddpm.stats import assert_power


def _eta_without_squares(x, sigma, sigma_next, eps_bar_, mu_=0.0, z_=None):
    """Planted: eta = sigma' - sigma_p.

    The square root of the difference taken as the difference of roots.
    """
    p, _ = step_levels(sigma, sigma_next, mu_)
    return x - (sigma - p) * eps_bar_ + (sigma_next - p) * z_


def test_s183_mu_step_derivation():
    derivation()


def test_s183_mu_step_binds_step_levels():
    check_step_levels()


def test_s183_mu_step_binds_alg2_on_the_twin():
    check_mu_step_is_alg2()


@pytest.mark.parametrize("mu_", MUS)
def test_s183_mu_step_keeps_the_marginal(mu_, gen):
    check_keeps_marginal(mu_, N, gen)


@pytest.mark.parametrize("mu_", (0.25, 0.5))
def test_s183_mu_step_marginal_rejects_planted_eta(mu_, gen):
    # the worst level pair: z ~ 40 (mu = 1/4), ~76 (mu = 1/2) > 3k = 15.7 (measured)
    checks = check_keeps_marginal(mu_, N, gen, impl=_eta_without_squares, raise_on_fail=False)
    assert_power(max(checks, key=lambda c: c.z / c.k))
