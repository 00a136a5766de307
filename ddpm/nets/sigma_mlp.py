"""An MLP eps_theta(x, sigma) on [x, sin(log(sigma)/2), cos(log(sigma)/2)] [6.S183 Q2].

It takes the level itself.

sigma spans 0.005..10 in the notebook's schedule; log(sigma)/2 maps that to an interval of length
3.8, on which (sin, cos) is a bounded, one-to-one code of the level. The default widths are the
notebook's (16, 128, 128, 128, 128, 16) with GELU activations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["SigmaMLP", "sigma_embedding"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


def sigma_embedding(sigma: Tensor) -> Tensor:
    """[sin(log(sigma)/2), cos(log(sigma)/2)] per level, shape (batch, 2) [6.S183 Q2]."""
    half_log = torch.log(sigma) / 2
    return torch.stack([torch.sin(half_log), torch.cos(half_log)], dim=-1)


class SigmaMLP(nn.Module):
    """eps_theta(x, sigma) = MLP([x, sin(log(sigma)/2), cos(log(sigma)/2)]) [6.S183 Q2].

    x has shape (batch, D).

    Args:
        input_dim: D, the data dimension (2 for the Swissroll).
        hidden_dims: the widths of the hidden layers, each followed by the activation.
        activation: ``"gelu"`` (the notebook's), ``"relu"`` or ``"silu"``.

    ``forward(x, sigma)`` takes sigma as a float tensor of shape (batch,) (one level per sample) or a
    0-d tensor (one level for the batch), levels > 0.
    """

    name = "sigma_mlp"
    world = "sigma"  # takes sigma, not a step t: sampled by ddpm.sigma.sampler

    def __init__(
        self, input_dim: int = 2, hidden_dims: Sequence[int] = (16, 128, 128, 128, 128, 16), activation: str = "gelu"
    ):
        super().__init__()
        hidden_dims = list(hidden_dims)
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(f"input_dim must be an integer >= 1, got {input_dim!r}")
        if not hidden_dims or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
            raise ValueError(f"hidden_dims must be a non-empty list of integers >= 1, got {hidden_dims!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.config = dict(input_dim=input_dim, hidden_dims=hidden_dims, activation=activation)
        self.input_dim = input_dim
        widths = [input_dim + 2, *hidden_dims]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], input_dim))
        self.network = nn.Sequential(*layers)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """eps_theta(x, sigma) for x (batch, D) and sigma (batch,) or 0-d [6.S183 Q2]."""
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"x must have shape (batch, {self.input_dim}), got {tuple(x.shape)}")
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(
                f"sigma must have shape ({x.shape[0]},) or (), one level per sample, got {tuple(sigma.shape)}"
            )
        return self.network(torch.cat([x, sigma_embedding(sigma.to(x.dtype))], dim=1))
