"""Ancestral sampling, Algorithm 2 of Ho et al. (2020) [Ho20 alg. 2].

``sample`` is the algorithm line by line; it is the reference that faster paths are checked against.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ddpm.losses import EpsModel
from ddpm.posterior import mu_from_eps
from ddpm.schedule import Schedule, at, reverse_variance

__all__ = ["sample"]


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = "beta",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    return_trajectory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Draw x_0 of the given ``shape`` (batch first) by Algorithm 2 [Ho20 alg. 2].

    ``sigma2`` is "beta" or "beta_tilde" [Ho20 §3.2]. Noise comes from ``generator`` (on ``device``,
    which defaults to the generator's), drawn in the order x_T, then z at t = T..2. With
    ``return_trajectory`` the result is ``(x_0, xs)`` where ``xs[t]`` is x_t, t = 0..T.
    ``progress(t)`` is called after each step.
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    schedule = schedule.to(device)
    sigma = reverse_variance(schedule, sigma2).sqrt()
    randn = lambda: torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)  # noqa: E731

    x = randn()  # line 1: x_T ~ N(0, I)
    trajectory = [x]
    for t in range(schedule.T, 0, -1):  # line 2: for t = T, ..., 1
        steps = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        x = mu_from_eps(schedule, x, t, eps_model(x, steps))  # line 4: the mean, eq. 11
        if t > 1:  # line 3: z ~ N(0, I) if t > 1, else z = 0
            x = x + at(sigma, t, x) * randn()  # line 4: + sigma_t z
        if return_trajectory:
            trajectory.append(x)
        if progress is not None:
            progress(t)
    if return_trajectory:
        return x, torch.stack(trajectory[::-1])
    return x  # line 6: return x_0
