"""The pytest entry points of specs/eq07_posterior.py [Ho20 eqs. 6-7].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.eq07_posterior import check_posterior, derivation


def test_eq07_derivation():
    derivation()


def test_eq07_binds_posterior_mean_var():
    check_posterior()
