"""The 6.S183 Swissroll [6.S183 Q2].

200 points on the spiral (t cos t, t sin t) / (5 pi), and the distance to it.

The notebook's ``Swissroll(pi/2, 5 pi, 200)`` takes t = pi/2 + linspace(0, 1, 200) 5 pi and the points
(t cos t, t sin t) / (5 pi): a spiral of two and a half turns inside [-1.1, 1.1]^2 whose arms are about
0.4 apart. A model trained on the 200 points should put its samples *on the curve* (it generalises)
rather than on the points (it memorises, as the ideal denoiser does). ``distance_to_spiral`` measures
the first: the Euclidean distance from each sample to the continuous curve, t in [pi/2, pi/2 + 5 pi],
computed by a dense search over t followed by golden-section refinement of the best bracket, to
~1e-12. Its mean over samples is the quality number ``ddpm`` reports, beside that of the ideal
denoiser's samples under the same sampler.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture, SigmaOptimalEps

__all__ = ["Swissroll", "spiral_curve", "distance_to_spiral", "T_MIN", "T_SPAN"]

T_MIN, T_SPAN = math.pi / 2, 5 * math.pi
GRID = 4097  # dense search: adjacent grid points are < 4.3e-3 apart along the curve
INV_PHI = (math.sqrt(5) - 1) / 2


def spiral_curve(t: Tensor, t_span: float = T_SPAN) -> Tensor:
    """(t cos t, t sin t) / t_span [6.S183 Q2].

    The Swissroll's curve at t (any shape; a trailing axis of 2 added).
    """
    return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1) / t_span


def _squared_distance(t: Tensor, x: Tensor, t_span: float) -> Tensor:
    return ((spiral_curve(t, t_span) - x[:, None, :]) ** 2).sum(-1)


def distance_to_spiral(x: Tensor, t_min: float = T_MIN, t_span: float = T_SPAN, chunk: int = 512) -> Tensor:
    """min over t in [t_min, t_min + t_span] of ||x - (t cos t, t sin t) / t_span|| [6.S183 Q2].

    per row of x (n, 2).

    A grid of 4097 parameters finds the nearest stretch of the curve; golden-section search on the
    two grid intervals around it (a bracket of at most 8.6e-3 in arc length, where the squared
    distance is unimodal) then locates the minimum to round-off. The result is never above the
    grid's best value.
    """
    x = torch.as_tensor(x).to(torch.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x holds non-finite values: no distance to the spiral")
    grid = torch.linspace(t_min, t_min + t_span, GRID, dtype=torch.float64, device=x.device)
    out = []
    for rows in x.split(chunk):
        d2 = _squared_distance(grid[None, :], rows, t_span)  # (b, GRID)
        best, j = d2.min(1)
        lo, hi = grid[(j - 1).clamp(min=0)], grid[(j + 1).clamp(max=GRID - 1)]
        a, b = lo + (1 - INV_PHI) * (hi - lo), lo + INV_PHI * (hi - lo)
        fa, fb = (_squared_distance(v[:, None], rows, t_span)[:, 0] for v in (a, b))
        for _ in range(80):  # the bracket shrinks by 0.618 a step: 80 steps take 8.6e-3 below 1e-18
            left = fa < fb
            hi, lo = torch.where(left, b, hi), torch.where(left, lo, a)
            a, b = lo + (1 - INV_PHI) * (hi - lo), lo + INV_PHI * (hi - lo)
            fa, fb = (_squared_distance(v[:, None], rows, t_span)[:, 0] for v in (a, b))
        out.append(torch.minimum(best, torch.minimum(fa, fb)).clamp_min(0).sqrt())
    return torch.cat(out) if out else x.new_zeros(0)


class Swissroll:
    """The notebook's 200 points t = pi/2 + linspace(0, 1, n) 5 pi [6.S183 Q2].

    x = (t cos t, t sin t) / (5 pi).

    ``points`` holds them in float64; ``sample(n)`` draws n of them uniformly with replacement (the
    training distribution: the finite set); ``mixture`` is that set as point masses, so that
    ``ideal_denoiser()`` (``SigmaOptimalEps.finite``) is its exact eps*. ``distance(x)`` is the
    distance of each sample to the continuous curve.
    """

    name = "swissroll"

    def __init__(self, n: int = 200, t_min: float = T_MIN, t_span: float = T_SPAN):
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an integer >= 2 (points on the spiral), got {n!r}")
        self.n, self.t_min, self.t_span = n, float(t_min), float(t_span)
        t = self.t_min + torch.linspace(0, 1, n, dtype=torch.float64) * self.t_span
        self.points = spiral_curve(t, self.t_span)
        self.mixture = GaussianMixture.finite(self.points)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n of the points drawn uniformly with replacement, float32 (n, 2) on the generator's device."""
        device = generator.device if generator is not None else None
        i = torch.randint(self.n, (n,), generator=generator, device=device)
        return self.points.to(device)[i].float()

    def ideal_denoiser(self) -> SigmaOptimalEps:
        """eps*(x, sigma) of the 200 points [6.S183 Q1b].

        What a network trained to the optimum of the loss predicts.
        """
        return SigmaOptimalEps(self.mixture)

    def distance(self, x: Tensor) -> Tensor:
        """The distance of each row of x (n, 2) to the continuous curve, float64 [6.S183 Q2]."""
        return distance_to_spiral(x, self.t_min, self.t_span)
