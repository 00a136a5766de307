"""The 02460 template's 0-based tensors and the paper's step t = 1..T [Ho20 §2].

The one place they meet.

The template stores ``beta``, ``alpha`` and ``alpha_cumprod`` as tensors of length T whose index
``i`` holds the coefficient of the paper's step ``t = i + 1``. Every translation between the two —
for reading a student's tensors, for naming a step in a report, for building the template class
from ddpm's own functions — goes through this module and nowhere else.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule

__all__ = ["TEMPLATE_TENSORS", "step_of_index", "index_of_step", "template_tensors", "paper_tensor", "describe_step"]

# The template's attribute name for each of ddpm's schedule coefficients.
TEMPLATE_TENSORS = {"beta": "beta", "alpha": "alpha", "alpha_cumprod": "alpha_bar"}


def step_of_index(i: int | Tensor) -> int | Tensor:
    """The paper's step t of the template's index i: t = i + 1."""
    return i + 1


def index_of_step(t: int | Tensor) -> int | Tensor:
    """The template's index i of the paper's step t: i = t - 1."""
    return t - 1


def template_tensors(schedule: Schedule, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """``beta``, ``alpha``, ``alpha_cumprod`` as the template holds them.

    Length T, index i for step i + 1.
    """
    steps = torch.arange(1, schedule.T + 1)
    return {name: getattr(schedule, ours)[steps].to(dtype) for name, ours in TEMPLATE_TENSORS.items()}


def paper_tensor(values: Tensor) -> Tensor:
    """A template tensor (index i) re-indexed by the paper's t (entry 0, no step, is NaN), in float64."""
    values = torch.as_tensor(values).detach().to(torch.float64).reshape(-1)
    return torch.cat([values.new_full((1,), float("nan")), values])


def describe_step(t: int) -> str:
    """``"t = 3 (template index 2)"``: a step named both ways, for reports."""
    return f"t = {t} (template index {index_of_step(t)})"
