"""The pytest entry points of specs/eq05_bound_mc.py [Ho20 eqs. 3, 5].

The claim and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

import pytest

from ddpm.specs.eq05_bound_mc import N, check_bound
from ddpm.stats import assert_power


def test_eq5_closed_form_equals_eq3(gen):
    check_bound(N, gen)


@pytest.mark.slow
def test_eq5_closed_form_equals_eq3_large_n(gen):
    check_bound(10 * N, gen)


# planted at n = 5e4: beta_t as the posterior variance (z ~ 160) and L_T left out (z ~ 30), > 3k = 14.7
@pytest.mark.parametrize(
    "planted", [{"posterior_var": "beta"}, {"prior": False}], ids=["beta_for_beta_tilde", "no_L_T"]
)
def test_eq5_rejects_planted(planted, gen):
    assert_power(check_bound(N, gen, raise_on_fail=False, **planted))
