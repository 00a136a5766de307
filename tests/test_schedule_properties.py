"""Properties of every admissible schedule [Ho20 §2, eq. 7; ND21 eq. 17].

By hypothesis (profiles in conftest.py).

The domain: strictly increasing beta_1 < ... < beta_T in [1e-12, 1 - 1e-12], 1 <= T <= 25, so that
float64 resolves every step (log alpha_bar_t >= -25 * 27.7 > -700: no underflow; each beta_t >= 1e-12
moves log alpha_bar by many ulps) — outside it the mathematics still holds but float64 cannot show
strictness. Long schedules are pinned by the paper's linear and cosine schedules (T = 1000).
Betas may be given in float32 or float64; the Schedule stores float64. Cast to float32 by ``at``,
the coefficients keep their order (rounding is monotone): alpha_bar stays non-increasing, and
strictly decreasing wherever beta_t > 2^-22 and alpha_bar_t is a normal float32 (> 2^-126).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from ddpm.beta.schedule import Schedule, at, cosine_schedule, linear_schedule

LO, HI, MAX_T = 1e-12, 1 - 1e-12, 25
RTOL = 1e-12  # the recursion below: ~T ulps of |log alpha_bar| <= 700, well under 1e-12 relative


def increasing_betas(width: int):
    # float32 bounds are float32 numbers: 2^-39 ~ 1.8e-12 and 1 - 2^-24, the largest float32 below 1
    floats = st.floats(LO, HI) if width == 64 else st.floats(2.0**-39, 1 - 2.0**-24, width=32)
    return st.lists(floats, min_size=1, max_size=MAX_T, unique=True).map(sorted)


def schedule_of(betas: list[float], dtype: torch.dtype) -> Schedule:
    return Schedule(torch.tensor(betas, dtype=dtype))


BETAS = st.one_of(
    increasing_betas(64).map(lambda b: (b, torch.float64)), increasing_betas(32).map(lambda b: (b, torch.float32))
)
EXTREMES = [
    ([LO], torch.float64),
    ([HI], torch.float64),
    ([0.5], torch.float32),
    ([LO, HI], torch.float64),
    ([1e-7, 1 - 1e-7], torch.float32),
    (list(np.linspace(0.5, HI, MAX_T)), torch.float64),
]


def extremes(test):
    for betas, dtype in EXTREMES:
        test = example((betas, dtype))(test)
    return test


@extremes
@given(BETAS)
def test_alpha_bar_strictly_decreasing_in_unit_interval(case):
    s = schedule_of(*case)
    assert s.betas.dtype == torch.float64
    ab = s.alpha_bar
    assert ab[0] == 1 and (ab[1:] > 0).all() and (ab[1:] < 1).all()
    assert (ab[1:] < ab[:-1]).all()


@extremes
@given(BETAS)
def test_one_minus_alpha_bar_recursion(case):
    s = schedule_of(*case)
    lhs = s.one_minus_alpha_bar[1:]
    rhs = s.alpha[1:] * s.one_minus_alpha_bar[:-1] + s.beta[1:]
    assert torch.allclose(lhs, rhs, rtol=RTOL, atol=0), (lhs - rhs).abs().max()


@extremes
@given(BETAS)
def test_beta_tilde_at_most_beta_and_zero_at_one(case):
    s = schedule_of(*case)
    assert s.beta_tilde[1] == 0
    assert (s.beta_tilde[1:] <= s.beta[1:]).all()


@extremes
@given(BETAS)
def test_snr_strictly_decreasing(case):
    snr = schedule_of(*case).snr
    assert math.isinf(snr[0]) and (snr[2:] < snr[1:-1]).all()


@extremes
@given(BETAS)
def test_alpha_bar_T_at_most_first_factor_to_the_T(case):
    s = schedule_of(*case)
    # compared in log space: log alpha_bar_T <= T log(1 - beta_1), up to the cumsum's rounding
    bound = s.T * math.log1p(-float(s.betas[0]))
    assert float(s.log_alpha_bar[-1]) <= bound + RTOL * abs(bound)


@extremes
@given(BETAS)
def test_float32_coefficients_keep_their_order(case):
    s = schedule_of(*case)
    t = torch.arange(s.T + 1)
    ab32 = at(s.alpha_bar, t, torch.zeros(s.T + 1, dtype=torch.float32))
    omab32 = at(s.one_minus_alpha_bar, t, torch.zeros(s.T + 1, dtype=torch.float32))
    assert ab32.dtype == torch.float32
    assert (ab32[1:] <= ab32[:-1]).all() and (omab32[1:] >= omab32[:-1]).all()
    resolvable = (s.beta[1:] > 2**-22) & (s.alpha_bar[1:] > 2**-126)
    assert (ab32[1:] < ab32[:-1])[resolvable].all()


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(1000)], ids=["linear", "cosine"])
def test_long_paper_schedules(schedule):
    ab, snr = schedule.alpha_bar, schedule.snr
    assert (ab[1:] < ab[:-1]).all() and (ab[1:] > 0).all() and (snr[2:] < snr[1:-1]).all()
    assert (schedule.beta_tilde[1:] <= schedule.beta[1:]).all() and schedule.beta_tilde[1] == 0


@example(1, 0.008)
@example(1000, 0.008)
@example(2, 0.0)
@given(st.integers(1, 2000), st.floats(0.0, 0.1))
def test_cosine_capped_and_equal_to_closed_form(T, s):
    sch = cosine_schedule(T, s)
    assert (sch.betas <= 0.999).all()
    t = np.arange(T + 1)
    f = np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
    closed = f / f[0]
    beta_closed = 1 - closed[1:] / closed[:-1]
    capped = beta_closed > 0.999
    assert np.array_equal(capped, (sch.betas == 0.999).numpy()) or np.allclose(beta_closed[capped], 0.999, atol=1e-12)
    first = int(np.argmax(capped)) if capped.any() else T  # alpha_bar follows f(t)/f(0) up to the first cap
    np.testing.assert_allclose(sch.alpha_bar[: first + 1].numpy(), closed[: first + 1], rtol=1e-10)


BAD_BETA = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(float("nan")))


@given(increasing_betas(64), BAD_BETA, st.data())
def test_bad_betas_raise_naming_the_value(betas, bad, data):
    i = data.draw(st.integers(0, len(betas)))
    betas = betas[:i] + [bad] + betas[i:]
    with pytest.raises(ValueError, match=rf"beta_{i + 1} = .* outside the open interval \(0, 1\)"):
        Schedule(torch.tensor(betas, dtype=torch.float64))


@given(st.integers(max_value=0))
def test_bad_T_raises(T):
    for make in (linear_schedule, cosine_schedule):
        with pytest.raises(ValueError, match="T must be an integer >= 1"):
            make(T)


@given(st.floats(1e-6, 0.5), st.floats(1e-6, 0.5))
def test_linear_schedule_rejects_decreasing_ends(a, b):
    if a > b:
        with pytest.raises(ValueError, match="must not exceed"):
            linear_schedule(10, a, b)
    else:
        assert (linear_schedule(10, a, b).betas[1:] >= linear_schedule(10, a, b).betas[:-1]).all()
