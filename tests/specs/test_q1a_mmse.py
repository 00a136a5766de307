"""The pytest entry points of specs/q1a_mmse.py [6.S183 Q1a].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.q1a_mmse import check_posterior_mean, derivation


def test_q1a_derivation():
    derivation()


def test_q1a_binds_posterior_mean():
    check_posterior_mean()
