"""A scheduler's step read as exact coefficients by probing [Ho20 alg. 2; Song21 eq. 12].

Every step the specs cover is affine in what it is given: x' = a x + b m + s z + c, with x the sample,
m the model output, z the standard normal noise the step draws from the generator it is handed, and
c = 0. ``read_step`` recovers (a, b, s, c) to round-off from a handful of calls: two calls at x = m = 0
with two seeds give s (the draws are the generator's ``torch.randn``, which the probe redraws; if they
are not, s is unreadable and the spec says undecided), one call each with a small x or m gives a and b
elementwise, and one more call at a random (x, m) confirms the step is affine there (a clipped or
thresholded x_0 is not, beyond its range; the probes stay far inside it).

``ddpm verify`` reads a student's sampler the same way (ddpm/verify/sampling.py); a library is trusted
code, so the probe calls it in this process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.conform.targets import raised

__all__ = ["H", "Coefficients", "read_step", "noise"]

H = 1e-8  # the probes' amplitude: x_0 stays within clip ranges even where 1 / sqrt(alpha_bar) is 2e4
SHAPE = (1, 1, 16)  # one sample of 16 coordinates: the coefficients must be the same in each
EPS64 = float(torch.finfo(torch.float64).eps)
SPREAD = 1e-6  # the coordinates' coefficients may differ by this much, relatively (float64 round-off of H-probes)

# step(model_output, sample, seed) -> the step's output
StepCall = Callable[[Tensor, Tensor, int], Tensor]


def noise(seed: int, shape: tuple[int, ...] = SHAPE) -> Tensor:
    """The standard normal draws of a generator seeded with ``seed``, as ``torch.randn`` makes them."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _uniform(seed: int, shape: tuple[int, ...] = SHAPE) -> Tensor:
    return 1 + torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@dataclass(frozen=True)
class Coefficients:
    """x' = a x + b m + s z + c, read off a step. ``problem`` says why a coefficient could not be read."""

    a: float = math.nan
    b: float = math.nan
    s: float | None = None  # None: the step's noise is not the generator's torch.randn draw
    c: float = math.nan
    problem: str = ""  # "non-finite" / "not affine ..." / "raised ..."
    finite: bool = True


def _const(values: Tensor, floor: float = 0.0) -> float | None:
    """The common value of ``values``; None when they differ by more than SPREAD relatively + ``floor``."""
    mean = float(values.mean())
    spread = float((values - mean).abs().max())
    return mean if spread <= SPREAD * max(abs(mean), 1e-300) + floor + 1e-300 else None


def read_step(call: StepCall, shape: tuple[int, ...] = SHAPE) -> Coefficients:
    """(a, b, s, c) of ``call``, an affine step, read exactly by five or six calls (see the module)."""
    zero = torch.zeros(shape, dtype=torch.float64)
    try:
        o1, o2 = call(zero, zero, 1), call(zero, zero, 2)
        u, w = _uniform(3, shape), _uniform(4, shape)
        ox, om = call(zero, H * u, 1), call(H * w, zero, 1)
        u2, w2 = noise(5, shape), noise(6, shape)
        o_mix = call(H * w2, H * u2, 1)
        again = call(zero, zero, 1)
    except Exception as e:  # the library's own error, named in the outcome: one line, no traceback
        return Coefficients(problem=f"step {raised(e)}".rstrip(": "))
    if not torch.equal(again, o1) and bool(torch.isfinite(o1).all()):
        return Coefficients(problem="the step keeps state between calls (a multistep solver?): not read as one step")
    outs = (o1, o2, ox, om, o_mix)
    if not all(bool(torch.isfinite(o).all()) for o in outs):
        return Coefficients(problem="the step's output is not finite (inf or nan) at x = m = 0", finite=False)
    s: float | None
    if torch.equal(o1, o2):
        s = 0.0
    else:
        s = _const((o1 - o2) / (noise(1, shape) - noise(2, shape)))
    base = o1 - (s or 0.0) * noise(1, shape)
    c = float(base.abs().max()) if s is not None else math.nan
    # the outputs carry s z: their float64 rounding, divided by H, bounds what the probes can resolve
    floor = 16 * EPS64 * float(o1.abs().max()) / H
    a, b = _const((ox - o1) / (H * u), floor), _const((om - o1) / (H * w), floor)
    if a is None or b is None:
        return Coefficients(s=s, c=c, problem="the step is not the same affine map in every coordinate")
    predicted = o1 + a * H * u2 + b * H * w2
    reach = float(u2.abs().max() + w2.abs().max())
    if float((o_mix - predicted).abs().max()) > (1e-5 * (abs(a) + abs(b)) + floor) * H * reach:
        return Coefficients(a, b, s, c, problem="the step is not affine in (sample, model output) at the probes")
    return Coefficients(a, b, s, c)
