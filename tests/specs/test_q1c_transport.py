"""The pytest entry points of specs/q1c_transport.py [6.S183 Q1c].

The claim, its derivation and its checks live in the spec module; these tests call them.
"""

from __future__ import annotations

from ddpm.specs.q1c_transport import check_transport, derivation


def test_q1c_derivation():
    derivation()


def test_q1c_binds_transport_velocity():
    check_transport()
