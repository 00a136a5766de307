"""Noise levels sigma of x_sigma = x_0 + sigma eps [6.S183 Q2; Song21 §4.3].

And the one bridge to the beta world.

A sigma schedule is a float64 tensor of N increasing levels, stored as the 6.S183 notebook (and the
``smalldiffusion`` library it builds on) stores them; ``sample_sigmas`` picks the k + 1 decreasing
levels a sampler walks through. Every beta schedule has its sigma twin: DDPM's
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, divided by sqrt(alpha_bar_t), is
x_0 + sigma_t eps with sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) [Song21 DDIM §4.3, eq. 14].
``vp_to_ve`` and ``ve_to_vp`` are that division and its inverse, written once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule

__all__ = [
    "log_linear_sigmas",
    "karras_sigmas",
    "sigmas_from_alpha_bar",
    "sigma_twin",
    "sample_sigmas",
    "trailing_indices",
    "vp_to_ve",
    "ve_to_vp",
    "check_sigmas",
    "batch_scale",
]


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} = {value!r} must be a finite number > 0")
    return value


def log_linear_sigmas(N: int = 200, sigma_min: float = 0.005, sigma_max: float = 10.0) -> Tensor:
    """N levels log-spaced from sigma_min to sigma_max, increasing, float64 [6.S183 Q2].

    log sigma_i = log sigma_min + i / (N - 1) (log sigma_max - log sigma_min), i = 0..N-1; the two
    ends are exactly sigma_min and sigma_max. The notebook's schedule is the default.
    """
    if isinstance(N, bool) or not isinstance(N, int) or N < 2:
        raise ValueError(f"N must be an integer >= 2, got {N!r}")
    lo, hi = _positive("sigma_min", sigma_min), _positive("sigma_max", sigma_max)
    if not lo < hi:
        raise ValueError(f"sigma_min = {lo!r} must be below sigma_max = {hi!r}")
    sigmas = torch.exp(torch.linspace(math.log(lo), math.log(hi), N, dtype=torch.float64))
    sigmas[0], sigmas[-1] = lo, hi
    return sigmas


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """n levels from sigma_max down to sigma_min, evenly spaced in sigma^(1/rho) [Karras22 eq. 5].

    sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0..n-1,
    decreasing, float64; rho = 7 is the paper's choice. n = 1 gives sigma_max alone.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    lo, hi, rho = _positive("sigma_min", sigma_min), _positive("sigma_max", sigma_max), _positive("rho", rho)
    if not lo <= hi:
        raise ValueError(f"sigma_min = {lo!r} must not exceed sigma_max = {hi!r}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    return (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def sigmas_from_alpha_bar(alpha_bar: Tensor) -> Tensor:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the sigma twin of a beta schedule [Song21 §4.3].

    float64.

    Given ``schedule.alpha_bar`` (t = 0..T) it returns sigma_0 = 0, sigma_1, ..., sigma_T, increasing.
    """
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    bad = ~(torch.isfinite(ab) & (ab > 0) & (ab <= 1))
    if bad.any():
        i = int(bad.nonzero()[0][0]) if ab.ndim else 0
        raise ValueError(f"alpha_bar[{i}] = {float(ab.reshape(-1)[i])!r} is outside (0, 1]")
    return ((1 - ab) / ab).sqrt()


def sigma_twin(schedule: Schedule) -> Tensor:
    """sigma_t = sqrt(expm1(-log alpha_bar_t)) = sqrt(1 / alpha_bar_t - 1), t = 0..T [Song21 §4.3].

    No cancellation.
    """
    return torch.expm1(-schedule.log_alpha_bar).clamp_min(0).sqrt()


def check_sigmas(sigmas: Tensor | Sequence[float], *, increasing: bool = True, name: str = "sigmas") -> Tensor:
    """``sigmas`` as a 1-D float64 tensor of finite levels >= 0, monotone.

    Else a ValueError naming the entry.
    """
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2:
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 levels, got shape {tuple(s.shape)}")
    bad = ~(torch.isfinite(s) & (s >= 0))
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise ValueError(f"{name}[{i}] = {float(s[i])!r} is not a finite level >= 0")
    step = s[1:] - s[:-1] if increasing else s[:-1] - s[1:]
    if (step < 0).any():
        i = int((step < 0).nonzero()[0][0])
        order = "increasing" if increasing else "decreasing"
        raise ValueError(
            f"{name} must be {order}: {name}[{i}] = {float(s[i])!r}, {name}[{i + 1}] = {float(s[i + 1])!r}"
        )
    return s


def trailing_indices(N: int, k: int) -> list[int]:
    """round(N (1 - i/k)) - 1 for i = 0..k-1, then 0 [6.S183 Q2; Lin et al. 2024, Table 2].

    The "trailing" spacing.

    N (k - i) / k is rounded exactly, half to even, as numpy's ``round`` does on the exact value.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= N:
        raise ValueError(f"the number of steps k must be an integer in 1..{N} (the schedule's levels), got {k!r}")
    out = []
    for i in range(k):
        q, r = divmod(N * (k - i), k)
        q += 1 if 2 * r > k or (2 * r == k and q % 2) else 0
        out.append(q - 1)
    return out + [0]


def sample_sigmas(sigmas: Tensor, k: int) -> Tensor:
    """k + 1 decreasing levels of the increasing ``sigmas`` by trailing spacing [6.S183 Q2].

    Ending at sigmas[0].

    The indices are round(N (1 - i/k)) - 1 for i = 0..k-1, then 0: the walk starts at the top level
    sigma_max and ends at sigma_min, not at 0. At k = N the last two levels coincide (a step of size 0),
    as in the notebook.
    """
    s = check_sigmas(sigmas)
    return s[trailing_indices(s.numel(), k)]


def batch_scale(coefficient: Tensor | float, x: Tensor) -> Tensor:
    """A scalar, or one value per sample, as a tensor broadcasting over the batch ``x`` (in x's dtype)."""
    c = torch.as_tensor(coefficient, dtype=torch.float64, device=x.device)
    if c.ndim:
        c = c.reshape(-1, *([1] * (x.ndim - 1)))
    return c.to(x.dtype)


def vp_to_ve(x_vp: Tensor, alpha_bar_t: Tensor | float) -> Tensor:
    """x_VE = x_VP / sqrt(alpha_bar_t) [Song21 §4.3]; ``alpha_bar_t`` a scalar or one per sample."""
    return x_vp / batch_scale(torch.as_tensor(alpha_bar_t, dtype=torch.float64).sqrt(), x_vp)


def ve_to_vp(x_ve: Tensor, alpha_bar_t: Tensor | float) -> Tensor:
    """x_VP = sqrt(alpha_bar_t) x_VE, the inverse of :func:`vp_to_ve` [Song21 §4.3]."""
    return x_ve * batch_scale(torch.as_tensor(alpha_bar_t, dtype=torch.float64).sqrt(), x_ve)
