"""The pytest entry points of specs/alg2_sampler_mc.py [Ho20 alg. 2].

The claim and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

import ddpm.beta.sampler
from ddpm.beta.sampler import sample
from ddpm.beta.schedule import Schedule, at, linear_schedule
from ddpm.oracles import OptimalEps
from ddpm.specs.alg2_sampler_mc import (
    MIXTURE,
    N_LINEAR,
    N_MIXTURE,
    LinearEps,
    check_error_shrinks,
    check_linear_eps_recursion,
    check_reproduces_mixture,
)
from ddpm.stats import assert_power

# --- the checks, under every --seed, and their power against planted deviations -----------------------


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_alg2_reproduces_mixture(sigma2, gen):
    check_reproduces_mixture(sigma2, N_MIXTURE, gen)


def test_alg2_reproduces_mixture_rejects_planted_alpha_for_alpha_bar(gen):
    # eps* evaluated as if x_t = sqrt(alpha_t) x_0 + sqrt(beta_t) eps: z ~ 50 at n = 4000, >> 3k = 16
    schedule = linear_schedule(1000)
    # a SimpleNamespace standing in for the Schedule: only the two attributes OptimalEps reads
    wrong = OptimalEps(
        MIXTURE, cast(Schedule, SimpleNamespace(alpha_bar=schedule.alpha, one_minus_alpha_bar=schedule.beta))
    )
    assert_power(check_reproduces_mixture("beta", N_MIXTURE, gen, eps_model=wrong, raise_on_fail=False))


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_alg2_linear_eps_matches_recursion(sigma2, gen):
    check_linear_eps_recursion(sigma2, N_LINEAR, gen)


def _mu_with_alpha_bar(schedule, xt, t, eps):
    """Planted: line 4 divided by sqrt(alpha_bar_t) where sqrt(alpha_t) belongs."""
    return (xt - at(schedule.eps_coef, t, xt) * eps) / at(schedule.alpha_bar.sqrt(), t, xt)


def _sigma_without_sqrt(schedule, sigma2="beta"):
    """Planted: sigma_t = beta_t, a missing square root."""
    return _REVERSE_VARIANCE(schedule, sigma2) ** 2


_REVERSE_VARIANCE = ddpm.beta.sampler.reverse_variance


def _noise_at_last_step(eps_model, schedule, shape, *, sigma2, generator, dtype):
    """Planted: z drawn at t = 1 as well."""
    x = sample(eps_model, schedule, shape, sigma2=sigma2, generator=generator, dtype=dtype)
    return x + schedule.beta[1].sqrt() * torch.randn(shape, generator=generator, dtype=dtype)


# z at n = 1e5: mean coefficient ~200, missing square root ~140, noise at t = 1 ~27; 3k = 15.6
@pytest.mark.parametrize("planted", ["alpha_bar_in_line_4", "sigma_without_sqrt", "noise_at_last_step"])
@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_alg2_linear_eps_rejects_planted(planted, sigma2, gen, monkeypatch):
    sampler: Callable[..., Any] = sample
    if planted == "alpha_bar_in_line_4":
        monkeypatch.setattr(ddpm.beta.sampler, "mu_from_eps", _mu_with_alpha_bar)
    elif planted == "sigma_without_sqrt":
        monkeypatch.setattr(ddpm.beta.sampler, "reverse_variance", _sigma_without_sqrt)
    else:
        sampler = _noise_at_last_step
    assert_power(check_linear_eps_recursion(sigma2, N_LINEAR, gen, sampler=sampler, raise_on_fail=False))


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_alg2_error_shrinks_with_T(sigma2):
    check_error_shrinks(sigma2)


def test_alg2_error_shrinks_rejects_planted_alpha_for_alpha_bar():
    def wrong(schedule, m, C):  # eps* of N(m, C) with alpha_t where alpha_bar_t belongs: the KL grows with T
        return LinearEps.optimal_for_gaussian(
            cast(Schedule, SimpleNamespace(alpha_bar=schedule.alpha, one_minus_alpha_bar=schedule.beta)), m, C
        )

    with pytest.raises(AssertionError, match="order"):
        check_error_shrinks("beta", wrong)


def test_alg2_error_order_rejects_planted_scaled_eps():
    def wrong(schedule, m, C):  # eps* 1% too large: the law's error stalls at O(1e-4) and the fitted order collapses
        right = LinearEps.optimal_for_gaussian(schedule, m, C)
        return LinearEps(1.01 * right.A, 1.01 * right.b)

    with pytest.raises(AssertionError, match="order"):
        check_error_shrinks("beta", wrong)
