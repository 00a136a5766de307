"""Networks the verifier hands to a student's DDPM: they record every call and answer as told.

A probe stands where eps_theta(x_t, t) goes. It records the x it is given and the encoded t, and
returns whatever its ``respond`` function says — zero, a chosen tensor, or the exact eps* of a known
distribution — so that what the DDPM does with the answer can be read off exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["Call", "Probe", "ShapeMismatch", "as_encoding"]


class ShapeMismatch(Exception):
    """The DDPM called the network with an x that is not shaped like the data."""


@dataclass
class Call:
    """One call network(x, t): x as given (detached copy), t as float64 of shape (batch,), t's shape."""

    x: Tensor
    t: Tensor
    t_shape: tuple[int, ...]
    t_is_tensor: bool


def as_encoding(t, batch: int) -> Tensor:
    """The encoded time a DDPM passed, as float64 of shape (batch,) (a scalar is broadcast)."""
    t = torch.as_tensor(t).detach().to(torch.float64)
    if t.numel() == 1:
        return t.reshape(1).expand(batch).clone()
    if t.numel() != batch:
        raise ShapeMismatch(f"the network was given t of shape {tuple(t.shape)} for a batch of {batch}")
    return t.reshape(batch).clone()


class Probe(nn.Module):
    """A recording network; ``respond(x, t, call_index)`` gives its output (default: zeros).

    ``shape`` is the data's shape: a call with an x of another shape raises :class:`ShapeMismatch`.
    """

    def __init__(self, shape: tuple[int, ...] | None = None,
                 respond: Callable[[Tensor, Tensor, int], Tensor] | None = None):
        super().__init__()
        self.shape, self.respond = shape, respond
        self.calls: list[Call] = []

    def forward(self, x: Tensor, t) -> Tensor:
        if self.shape is not None and tuple(x.shape[1:]) != tuple(self.shape[1:]):
            raise ShapeMismatch(f"the network was given x of shape {tuple(x.shape)} for data of shape {self.shape}")
        call = Call(x.detach().clone(), as_encoding(t, x.shape[0]), tuple(torch.as_tensor(t).shape),
                    isinstance(t, Tensor))
        self.calls.append(call)
        out = torch.zeros_like(x) if self.respond is None else self.respond(x.detach(), call.t, len(self.calls) - 1)
        return out.to(dtype=x.dtype, device=x.device)
