"""The pytest entry points of specs/q1b_optimal_eps.py [6.S183 Q1b].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.q1b_optimal_eps import check_oracles, derivation


def test_q1b_derivation():
    derivation()


def test_q1b_binds_oracles():
    check_oracles()
