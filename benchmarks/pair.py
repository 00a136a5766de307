"""A benchmark's two sides (ours and the peer's) and the workload that times them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Pair", "Workload", "seeded"]


@dataclass
class Pair:
    """The two sides of a workload, ready to call; ``details()`` gives extra figures after the timing."""

    ours: Callable[[], Any]
    peer: Callable[[], Any]
    details: Callable[[], dict[str, Any]] = dict
    rtol: float = 1e-4  # how far the first results of the two sides may differ, relative to their size


@dataclass
class Workload:
    """One benchmark: its name, kind ("sample" or "train"), device, rounds and the target speedup."""

    name: str
    kind: str
    device: torch.device
    build: Callable[[], Pair] = field(repr=False)
    rounds: int
    warmup: int = 1
    target: float | None = None
    peer: str | None = None  # the peer's name where it is not the DDPMScheduler loop (the sigma workloads)


def seeded(device: torch.device, seed: int = 0) -> torch.Generator:
    """A generator on ``device`` with a fixed seed: both sides of a pair start from the same draws."""
    return torch.Generator(device).manual_seed(seed)
