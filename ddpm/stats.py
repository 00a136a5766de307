"""The one Monte Carlo assertion of the project, with a stated false-alarm rate (docs/design.md).

Every statistical check compares an estimate with its closed form in units of its standard error and
fails past ``k`` standard errors, ``k`` chosen so that a correct implementation fails a check with
probability ``false_alarm`` (two-sided, normal approximation): 1e-6 gives k = 4.89. A tensor of
estimates is one check: ``k`` is Bonferroni-corrected for its size, so the whole call keeps the rate.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "FALSE_ALARM",
    "POWER",
    "z_threshold",
    "mean_stderr",
    "MonteCarloCheck",
    "check_mc",
    "assert_power",
    "binomial_tail",
    "binomial_z",
    "studentized_rate",
    "generator_for",
]

FALSE_ALARM = 1e-6
POWER = 3.0  # a planted deviation must sit at z > POWER * k: the check rejects it with room to spare


def z_threshold(false_alarm: float = FALSE_ALARM, count: int = 1) -> float:
    """k such that |Z| > k has probability ``false_alarm`` for any of ``count`` standard normals."""
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm!r}")
    from scipy.special import ndtri  # the normal quantile; scipy.stats would take ~1 s more to import

    return float(-ndtri(false_alarm / (2 * count)))


def mean_stderr(samples: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    """The sample mean along ``dim`` and its standard error std / sqrt(n)."""
    n = samples.shape[dim]
    return samples.mean(dim), samples.std(dim) / math.sqrt(n)


@dataclass(frozen=True)
class MonteCarloCheck:
    """The outcome of one check: the worst |z| over its elements and the threshold it was held to."""

    name: str
    z: float
    k: float
    n: int

    @property
    def passed(self) -> bool:
        return self.z <= self.k


def check_mc(
    name: str,
    estimate: Tensor | float,
    stderr: Tensor | float,
    expected: Tensor | float,
    n: int,
    *,
    false_alarm: float = FALSE_ALARM,
    raise_on_fail: bool = True,
) -> MonteCarloCheck:
    """Hold ``estimate`` (with standard error ``stderr``, from ``n`` draws) to ``expected``.

    Fails — an ``AssertionError`` whose message gives the estimate, expected value, stderr, z and n
    of the worst element — when any |estimate - expected| / stderr exceeds ``z_threshold``.
    """
    # tensors of one shape, under their own names (the parameters may be floats)
    est, err, exp = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float64) for v in (estimate, stderr, expected))
    )
    if not torch.isfinite(est).all():
        raise AssertionError(f"{name}: the estimate is not finite: {est}")
    if (err <= 0).any() or not torch.isfinite(err).all():
        raise ValueError(f"{name}: standard errors must be positive and finite, got {err}")
    z = ((est - exp).abs() / err).flatten()
    worst = int(z.argmax())
    k = z_threshold(false_alarm, z.numel())
    result = MonteCarloCheck(name, float(z[worst]), k, n)
    if raise_on_fail and not result.passed:
        e, s, x = (float(v.flatten()[worst]) for v in (est, err, exp))
        where = f" (element {worst} of {z.numel()})" if z.numel() > 1 else ""
        raise AssertionError(
            f"{name}{where}: estimate {e:.6g}, expected {x:.6g}, stderr {s:.3g}, z = {result.z:.2f} "
            f"> k = {k:.2f} (false-alarm rate {false_alarm:g}), n = {n}"
        )
    return result


def assert_power(result: MonteCarloCheck, multiple: float = POWER) -> MonteCarloCheck:
    """Assert that a check run on a planted deviation rejects it with margin: z > ``multiple`` * k."""
    if not result.z > multiple * result.k:
        raise AssertionError(
            f"{result.name}: the planted deviation sits at z = {result.z:.2f}, not beyond "
            f"{multiple:g} k = {multiple * result.k:.2f} (n = {result.n}): too little power"
        )
    return result


def binomial_tail(count: Tensor | int, n: int, p: float) -> Tensor:
    """min(P(K <= count), P(K >= count)) for K ~ Binomial(n, p), exactly, for each count (float64).

    The regularised incomplete beta function (scipy.special.bdtr), no normal approximation; half the
    exact two-sided tail. One source for the specs' half-plane counts and the verifier's counts.
    """
    from scipy.special import bdtr, bdtrc  # here, as in z_threshold: verify imports this module

    k = torch.as_tensor(count, dtype=torch.float64)
    counts = k.reshape(-1).numpy()
    lower = torch.as_tensor(bdtr(counts, n, p))  # P(K <= k)
    upper = torch.as_tensor(bdtrc(counts - 1, n, p)).where(k.reshape(-1) > 0, 1.0)  # P(K >= k) = P(K > k - 1)
    return lower.minimum(upper).reshape(k.shape)


def binomial_z(count: int, n: int, p: float) -> float:
    """The |z| whose two-sided normal tail equals the exact binomial tail of ``count``.

    The binomial tail is the exact two-sided tail of ``count`` in Binomial(n, p).

    Fed to ``check_mc`` as (z, 1, 0), a count is held to its exact tail: no normal approximation.
    The two-sided tail is 2 min(P(X <= count), P(X >= count)), capped at 1: :func:`binomial_tail`,
    summed here in log space so that a planted deviation's z ~ 100 (a tail far below float64's
    range) stays finite.
    """
    import numpy as np
    from scipy.special import logsumexp, ndtri_exp
    from scipy.stats import binom

    log_pmf = binom.logpmf(np.arange(n + 1), n, p)
    log_half_tail = min(float(logsumexp(log_pmf[: count + 1])), float(logsumexp(log_pmf[count:])))  # log(tail / 2)
    return max(0.0, -float(ndtri_exp(log_half_tail))) if log_half_tail < math.log(0.5) else 0.0


def studentized_rate(k: float, n: int, skew: float, excess_kurtosis: float) -> float:
    """P(|T| > k) for the studentized mean T of n i.i.d. draws, to O(1/n) by its Edgeworth expansion.

    2 Phi(-k) - 2 phi(k) q_2(k) / n with q_2(x) = x (kappa (x^2 - 3) / 12 - gamma^2 (x^4 + 2 x^2 - 3) / 18
    - (x^2 + 3) / 4) (Hall, The Bootstrap and Edgeworth Expansion, 1992, §2.6); the O(n^-1/2) terms,
    odd in x, cancel between the two tails. How the suite extrapolates a simulated statistic's
    skewness gamma and excess kurtosis kappa to its false-alarm rate at k = 4.89.
    """
    from scipy.stats import norm

    q2 = k * (excess_kurtosis * (k**2 - 3) / 12 - skew**2 * (k**4 + 2 * k**2 - 3) / 18 - (k**2 + 3) / 4)
    return float(2 * norm.sf(k) - 2 * norm.pdf(k) * q2 / n)


def generator_for(name: str, seed: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of its own for the check ``name``, reseeded by the suite-wide ``seed``."""
    return torch.Generator(device).manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
