"""The networks eps_theta(x_t, t), by name.

``build_network(net.name, **net.config)`` rebuilds ``net``.

Every network of the beta world takes x_t and t, an int64 tensor (batch,) of the paper's steps 1..T,
and returns a tensor of x_t's shape; ``sigma_mlp`` (``world = "sigma"``) takes x and the noise level
sigma instead [6.S183 Q2]. Its ``config`` is a dict of plain Python values, which checkpoints store.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ddpm.nets.fc import FcNetwork
from ddpm.nets.sigma_mlp import SigmaMLP
from ddpm.nets.unet import UNet

__all__ = ["NETWORKS", "build_network", "FcNetwork", "UNet", "SigmaMLP"]

NETWORKS: dict[str, type[nn.Module]] = {"fc": FcNetwork, "unet": UNet, "sigma_mlp": SigmaMLP}


def build_network(name: str, **config: Any) -> nn.Module:
    """The network ``name`` ("fc", "unet" or "sigma_mlp") built from its keyword arguments ``config``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; expected one of {sorted(NETWORKS)}")
    try:
        return NETWORKS[name](**config)
    except TypeError as e:  # an unknown or missing keyword
        raise ValueError(f"bad configuration for network {name!r}: {e}") from None
