"""The pytest entry points of specs/sec32_sigma_choices.py [Ho20 §3.2].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.sec32_sigma_choices import check_reverse_variance, derivation


def test_sec32_derivation():
    derivation()


def test_sec32_binds_reverse_variance():
    check_reverse_variance()
