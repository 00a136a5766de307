"""The pytest entry points of specs/s183_ve_vp.py [Song21 §4.3].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.s183_ve_vp import check_bridge, check_eps_same_function, derivation


def test_s183_ve_vp_derivation():
    derivation()


def test_s183_ve_vp_binds_the_bridge():
    check_bridge()


def test_s183_ve_vp_binds_eps_star():
    check_eps_same_function()
