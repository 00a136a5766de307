"""The pytest entry points of specs/ex32_elbo_decomposition.py [02460 ex. 3.2; Ho20 App. A].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.ex32_elbo_decomposition import check_bound_columns, derivation


def test_ex32_derivation():
    derivation()


def test_ex32_binds_negative_elbo():
    check_bound_columns()
