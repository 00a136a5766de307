"""The pytest entry points of specs/ex33_kl_to_mse.py [02460 ex. 3.3; Ho20 eq. 8].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.ex33_kl_to_mse import check_gaussian_kl, derivation


def test_ex33_derivation():
    derivation()


def test_ex33_binds_normal_kl():
    check_gaussian_kl()
