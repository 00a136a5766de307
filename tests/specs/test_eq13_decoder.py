"""The pytest entry points of specs/eq13_decoder.py [Ho20 eqs. 3, 5, 13].

The claim, its derivation and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ddpm.beta.losses
from ddpm.beta.losses import negative_elbo
from ddpm.specs.eq13_decoder import PLANTED_ELBO, N, check_decoder, check_elbo_matches_eq3, derivation
from ddpm.stats import assert_power


def test_eq13_derivation():
    derivation()


def test_eq13_binds_decoder():
    check_decoder()


def test_eq13_negative_elbo_equals_eq3(gen):
    check_elbo_matches_eq3(N, gen)


@pytest.mark.slow
def test_eq13_negative_elbo_equals_eq3_large_n(gen):
    check_elbo_matches_eq3(10 * N, gen)


@pytest.mark.parametrize("planted", PLANTED_ELBO)
def test_eq13_negative_elbo_rejects_planted(planted, gen, monkeypatch):
    name, wrong = PLANTED_ELBO[planted]
    impl: Callable[..., Any] = negative_elbo
    if name is None:
        impl = wrong
    else:
        monkeypatch.setattr(ddpm.beta.losses, name, wrong)
    assert_power(check_elbo_matches_eq3(N, gen, impl=impl, raise_on_fail=False))
