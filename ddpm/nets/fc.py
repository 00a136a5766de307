"""The fully connected eps_theta(x_t, t) of the 02460 template, t fed in as t / T [02460 ex. 3.4].

With the defaults it is the template's ``FcNetwork(input_dim, num_hidden)`` layer for layer:
``network = Sequential(Linear(D + 1, h), ReLU, Linear(h, h), ReLU, Linear(h, D))``, so its
``state_dict`` keys (``network.0.weight``, ...) and shapes are the template's too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FcNetwork"]

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


class FcNetwork(nn.Module):
    """eps_theta(x_t, t) = MLP([x_t, t / T]) [02460 ex. 3.4; Ho20 alg. 1].

    Args:
        input_dim: D, the data dimension; inputs of any shape (batch, ...) with D entries per sample
            are flattened in and the output has the input's shape.
        num_hidden: h, the width of every hidden layer.
        num_layers: the number of hidden layers (>= 1); the template has 2.
        T: the number of diffusion steps; the step t in 1..T enters as t / T in (0, 1].
        activation: ``"relu"`` (the template's) or ``"silu"``.
    """

    name = "fc"

    def __init__(
        self, input_dim: int, num_hidden: int = 64, num_layers: int = 2, T: int = 1000, activation: str = "relu"
    ):
        super().__init__()
        config: dict[str, Any] = dict(
            input_dim=input_dim, num_hidden=num_hidden, num_layers=num_layers, T=T, activation=activation
        )
        for key in ("input_dim", "num_hidden", "num_layers", "T"):
            if not isinstance(config[key], int) or config[key] < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {config[key]!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.config = config
        self.input_dim, self.T = input_dim, T
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Linear(input_dim + 1, num_hidden), act()]
        for _ in range(num_layers - 1):
            layers += [nn.Linear(num_hidden, num_hidden), act()]
        layers.append(nn.Linear(num_hidden, input_dim))
        self.network = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t) for x_t of shape (batch, ...) and t an int64 tensor (batch,) of steps in 1..T."""
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.input_dim:
            raise ValueError(
                f"x has {flat.shape[1]} entries per sample (shape {tuple(x.shape)}); "
                f"this network takes input_dim = {self.input_dim}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), one step per sample, got {tuple(t.shape)}")
        t_norm = (t.to(flat.dtype) / self.T)[:, None]
        return self.network(torch.cat([flat, t_norm], dim=1)).reshape(x.shape)
