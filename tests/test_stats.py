"""The one Monte Carlo assertion, ``ddpm.stats.check_mc``: its threshold, its messages, and its real false-alarm rate."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm.stats import FALSE_ALARM, assert_power, check_mc, generator_for, mean_stderr, z_threshold


def test_threshold_of_the_stated_rate():
    assert z_threshold() == pytest.approx(4.8916, abs=1e-4)  # P(|Z| > 4.8916) = 1e-6
    assert z_threshold(0.05) == pytest.approx(1.95996, abs=1e-5)
    assert z_threshold(1e-6, 10) == pytest.approx(z_threshold(1e-7))  # Bonferroni


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0])
def test_threshold_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="false_alarm"):
        z_threshold(bad)


def test_check_passes_within_and_fails_beyond_k():
    k = z_threshold()
    assert check_mc("inside", 1.0 + 0.99 * k, 1.0, 1.0, 100).passed
    with pytest.raises(AssertionError, match=r"beyond: estimate 7, expected 1, stderr 1, z = 6.00 > k = 4.89.*n = 100"):
        check_mc("beyond", 7.0, 1.0, 1.0, 100)
    assert not check_mc("quiet", 7.0, 1.0, 1.0, 100, raise_on_fail=False).passed


def test_check_names_the_worst_element():
    with pytest.raises(AssertionError, match=r"element 2 of 3"):
        check_mc("vector", torch.tensor([0.0, 1.0, 9.0]), 1.0, 0.0, 10)


def test_check_rejects_bad_inputs():
    with pytest.raises(ValueError, match="standard errors"):
        check_mc("zero stderr", 1.0, 0.0, 1.0, 10)
    with pytest.raises(AssertionError, match="not finite"):
        check_mc("nan", float("nan"), 1.0, 1.0, 10)


def test_generators_are_reproducible_and_distinct():
    a, b = generator_for("x", 3), generator_for("x", 3)
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    draws = {float(torch.randn(1, generator=generator_for(name, seed))) for name in ("x", "y") for seed in (0, 1)}
    assert len(draws) == 4


def _false_alarms(rate: float, replicates: int, n: int, generator: torch.Generator, shift: float = 0.0) -> torch.Tensor:
    """How many of ``replicates`` correct checks of a mean (n draws each) fail at ``rate``."""
    x = torch.randn(replicates, n, generator=generator, dtype=torch.float64) + shift
    est, se = mean_stderr(x, dim=1)
    return torch.tensor([not check_mc("mean", e, s, 0.0, n, false_alarm=rate, raise_on_fail=False).passed
                         for e, s in zip(est, se)], dtype=torch.float64)


def check_false_alarm_rate(rate: float, replicates: int, generator: torch.Generator, shift: float = 0.0,
                           raise_on_fail: bool = True):
    """The observed failure rate of correct checks at a lenient ``rate`` against ``rate`` (binomial z)."""
    fails = _false_alarms(rate, replicates, 400, generator, shift)
    return check_mc(f"false-alarm rate at {rate}", fails.mean(), math.sqrt(rate * (1 - rate) / replicates), rate, replicates,
                    raise_on_fail=raise_on_fail)


def test_false_alarm_rate_is_as_stated(gen):
    # at a lenient rate the stated rate is measurable: 2000 replicates, 0.05 expected failures each
    check_false_alarm_rate(0.05, 2000, gen)


def test_false_alarm_rate_check_rejects_planted_bias(gen):
    # a bias of 0.1 standard deviations at n = 400 is z = 2 per replicate: ~52% fail instead of 5%, z ~ 95
    assert_power(check_false_alarm_rate(0.05, 2000, gen, shift=0.1, raise_on_fail=False))


def test_default_rate_is_one_in_a_million():
    assert FALSE_ALARM == 1e-6
