"""The pytest entry points of specs/alg1_alg2_lines.py [Ho20 alg. 1, alg. 2, eq. 14].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.alg1_alg2_lines import check_cited_code, check_l_simple, check_sampler, derivation


def test_alg_derivation():
    derivation()


def test_alg_cited_code():
    check_cited_code()


def test_alg2_binds_sampler():
    check_sampler()


def test_alg1_binds_l_simple():
    check_l_simple()
