"""The pytest entry points of specs/s183_ddim_flow.py [6.S183 Q1c, Q2; Song21 §4.3].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.s183_ddim_flow import check_ddim_is_euler, check_flow_matching, derivation


def test_s183_ddim_flow_derivation():
    derivation()


def test_s183_ddim_flow_binds_the_ddim_step():
    check_ddim_is_euler()


def test_s183_ddim_flow_binds_flow_matching():
    check_flow_matching()
