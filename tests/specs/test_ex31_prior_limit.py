"""The pytest entry points of specs/ex31_prior_limit.py [02460 ex. 3.1].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.ex31_prior_limit import check_prior, derivation


def test_ex31_derivation():
    derivation()


def test_ex31_binds_schedule_and_prior():
    check_prior()
