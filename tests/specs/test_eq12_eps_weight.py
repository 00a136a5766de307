"""The pytest entry points of specs/eq12_eps_weight.py [Ho20 eqs. 9-12].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.eq12_eps_weight import check_batched_float32, check_bound_weights, check_eps_param, derivation


def test_eq12_derivation():
    derivation()


def test_eq12_binds_eps_parameterisation():
    check_eps_param()


def test_eq12_binds_batched_float32():
    check_batched_float32()


def test_eq12_binds_bound_weights():
    check_bound_weights()
