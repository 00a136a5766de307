"""Networks the verifier hands to a student's DDPM: they record every call and answer as told.

A probe stands where eps_theta(x_t, t) goes. It records the x it is given, the t (as given: its
shape and whether it is a tensor, and its values as float64), and the student's line that called it,
and returns whatever its ``respond`` function says — zero, a chosen tensor, or the exact eps* of a
known distribution — so that what the DDPM does with the answer can be read off exactly. It never
raises on a wrong shape: the shapes are recorded and the parent judges them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypedDict

import torch
from torch import Tensor, nn

from ddpm.verify.dtu.trace import site

__all__ = ["Probe", "NetCall", "as_encoding"]


def as_encoding(t, batch: int) -> Tensor | None:
    """The encoded time a DDPM passed, as float64 of shape (batch,) (a scalar is broadcast), or None."""
    try:
        t = torch.as_tensor(t).detach().to("cpu", torch.float64)
    except Exception:  # noqa: BLE001 - whatever the student passed: recorded as unreadable
        return None
    if t.numel() == 1:
        return t.reshape(1).expand(batch).clone()
    if t.numel() != batch:
        return None
    return t.reshape(batch).clone()


class NetCall(TypedDict):
    """One call of a probe, as recorded."""

    x: Tensor | None  # x as given, float32 on the CPU; None when the probe keeps shapes only
    x_shape: list[int]
    t: Tensor | None  # the encoded time (``as_encoding``), None when unreadable
    t_shape: list[int]  # t's shape as given ([] when unreadable)
    t_kind: str  # "tensor", or the type's name of a t that is not a tensor
    site: str  # the student's line that called the network ("" if outside the file)


class Probe(nn.Module):
    """A recording network; ``respond(x, t, call_index)`` gives its output (default: zeros).

    Each call appends ``{"x", "x_shape", "t", "t_shape", "t_kind", "site"}`` to ``calls``; ``keep_x``
    False records x's shape but not its values (the law run, whose x the parent does not need). Where
    ``respond`` answers None, or a tensor of another size, the output is zeros.
    """

    def __init__(
        self,
        path: str,
        respond: Callable[[Tensor, Tensor | None, int], Tensor | None] | None = None,
        keep_x: bool = True,
    ):
        super().__init__()
        self.path, self.respond, self.keep_x = path, respond, keep_x
        self.calls: list[NetCall] = []

    def forward(self, x: Tensor, t) -> Tensor:
        enc = as_encoding(t, x.shape[0] if x.dim() else 1)
        kind = "tensor" if isinstance(t, Tensor) else type(t).__name__
        self.calls.append(
            {
                "x": x.detach().to("cpu", torch.float32).clone() if self.keep_x else None,
                "x_shape": list(x.shape),
                "t": enc,
                "t_shape": list(torch.as_tensor(t).shape) if enc is not None else [],
                "t_kind": kind,
                "site": site(self.path, sys._getframe(1)) or "",
            }
        )
        out = None if self.respond is None else self.respond(x.detach(), enc, len(self.calls) - 1)
        if out is None or out.numel() != x.numel():
            out = torch.zeros_like(x)
        return out.reshape(x.shape).to(dtype=x.dtype, device=x.device)
