"""The 02460 toy sets TwoGaussians and Chequerboard, moved to [-1, 1]^2: x = 2 u - 1 [02460 ex. 3.4].

The course's ``ToyData.py`` defines both on [0, 1]^2; DDPM trains on data in [-1, 1] [Ho20 §4], so
here a draw u of the course's set becomes x = 2 u - 1, and the density picks up the Jacobian of the
map: log p_x(x) = log p_u((x + 1) / 2) - 2 log 2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture

__all__ = ["TwoGaussians", "Chequerboard"]


class TwoGaussians:
    """1/5 N((.75, .75), .1^2 I) + 4/5 N((.25, .25), .1^2 I) on [0, 1]^2, in [-1, 1]^2 [02460 ex. 3.4].

    In [-1, 1]^2 that is 1/5 N((0.5, 0.5), 0.2^2 I) + 4/5 N((-0.5, -0.5), 0.2^2 I), held as the
    ``GaussianMixture`` ``mixture``, so that ``OptimalEps(dataset.mixture, schedule)`` is its exact eps*.
    """

    name = "tg"

    def __init__(self) -> None:
        self.mixture = GaussianMixture.isotropic(weights=[1 / 5, 4 / 5], means=[[0.5, 0.5], [-0.5, -0.5]], std=0.2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws, float32 of shape (n, 2), on the generator's device."""
        device = generator.device if generator is not None else None
        return self.mixture.to(device).sample(n, generator=generator).float()

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) of each row of x (n, 2), in x's dtype."""
        return self.mixture.log_prob(x)


class Chequerboard:
    """Uniform on the squares (i, j), i + j even, of a 3 x 3 board, moved to [-1, 1]^2 [02460 ex. 3.4].

    The 5 squares (0, 0), (0, 2), (1, 1), (2, 0), (2, 2) have side 2/3 in [-1, 1]^2, probability 1/5
    each, so the density on them is (1/5) / (2/3)^2 = 9/20 and 0 elsewhere. Square (i, j) is the
    closed set [-1 + 2i/3, -1 + 2(i+1)/3] x [-1 + 2j/3, -1 + 2(j+1)/3], as in the course's
    ``ExtendedUniform``; its edges are rounded to the dtype of the points tested, so every draw of
    ``sample`` lies in the support in float32 as in float64.
    """

    name = "cb"
    squares = ((0, 0), (0, 2), (1, 1), (2, 0), (2, 2))
    side = 2 / 3
    log_density = math.log(9 / 20)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws, float32 of shape (n, 2) on the generator's device: a square uniformly, then a point in it."""
        device = generator.device if generator is not None else None
        corners = torch.tensor(self.squares, dtype=torch.float64, device=device)
        corners = corners[torch.randint(5, (n,), generator=generator, device=device)]
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64, device=device)
        return (-1 + self.side * (corners + u)).float()

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) of each row of x (n, 2), in x's dtype: log(9/20) on the support, -inf off it."""
        corners = torch.tensor(self.squares, dtype=torch.float64, device=x.device)
        lo, hi = (-1 + self.side * corners).to(x.dtype), (-1 + self.side * (corners + 1)).to(x.dtype)  # (5, 2)
        inside = ((x[:, None, :] >= lo) & (x[:, None, :] <= hi)).all(dim=-1).any(dim=-1)
        return torch.where(inside, x.new_tensor(self.log_density), -math.inf)
