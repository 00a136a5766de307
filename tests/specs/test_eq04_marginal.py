"""The pytest entry points of specs/eq04_marginal.py [Ho20 eq. 4].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.eq04_marginal import check_marginal, derivation


def test_eq04_derivation():
    derivation()


def test_eq04_binds_forward_process():
    check_marginal()
