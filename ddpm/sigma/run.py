"""The 6.S183 run end to end [6.S183 Q2, Q3; PY23 App. A].

Sampling a sigma-world model, the Swissroll quality report.

``ddpm train --data swissroll`` and ``ddpm sample`` call these: ``sample_sigma_world`` runs a named sampler
(``ddim``, ``ddpm``, ``accel``) over ``sample_sigmas(levels, steps)``; ``swissroll_quality`` measures the mean
distance of samples to the spiral curve, beside the same measure for the ideal denoiser's samples drawn by
the same sampler from the same seed (what a network that memorised the 200 points would give).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from ddpm.data.swissroll import Swissroll
from ddpm.sigma.sampler import PRESETS, SamplerSettings, SigmaEpsModel, gam_mu_sample
from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas

__all__ = [
    "SIGMA_DATA",
    "SAMPLERS",
    "is_sigma_world",
    "sampler_settings",
    "sample_sigma_world",
    "swissroll_quality",
    "format_swissroll_report",
    "plot_swissroll",
]

SIGMA_DATA = ("swissroll",)  # the data sets trained in the sigma world
SAMPLERS = tuple(PRESETS)  # ddim, ddpm, accel
CURVE_WIDTH = 0.02  # the width of the curve drawn under the samples


def is_sigma_world(data: str) -> bool:
    """Whether the data set ``data`` is trained and sampled in the sigma world."""
    return data in SIGMA_DATA


def sampler_settings(sampler: str, gamma: float | None = None) -> SamplerSettings:
    """The (gam, mu) of a named sampler [PY23 App. A]; ``gamma`` overrides its gam."""
    if sampler not in PRESETS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    settings = PRESETS[sampler].copy()
    if gamma is not None:
        if not math.isfinite(gamma):
            raise ValueError(f"--gamma must be a finite number, got {gamma!r}")
        settings["gam"] = float(gamma)
    return settings


def sample_sigma_world(
    eps_model: SigmaEpsModel,
    levels: Tensor,
    n: int,
    *,
    sampler: str = "accel",
    steps: int = 10,
    gamma: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """n samples (n, 2) by the named sampler [6.S183 Q2, Q3; PY23 App. A].

    The levels are ``sample_sigmas(levels, steps)``.
    """
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    sigmas = sample_sigmas(levels, steps)
    return gam_mu_sample(
        eps_model, sigmas, shape=(n, 2), generator=generator, device=device, **sampler_settings(sampler, gamma)
    )


def swissroll_quality(
    samples: Tensor,
    *,
    sampler: str,
    steps: int,
    gamma: float | None = None,
    seed: int = 0,
    levels: Tensor | None = None,
    data: Swissroll | None = None,
) -> dict[str, Any]:
    """The mean distance of ``samples`` to the spiral [6.S183 Q2].

    And the ideal denoiser's by the same sampler.

    The ideal denoiser (eps* of the 200 points) draws as many samples, from the same seed, by the same
    sampler over the same levels: its number is what memorising the training points gives.
    """
    data = Swissroll() if data is None else data
    levels = log_linear_sigmas() if levels is None else levels
    samples = samples.detach().cpu().double()
    finite = torch.isfinite(samples).all(1)
    dist = data.distance(samples[finite])
    ideal = sample_sigma_world(
        data.ideal_denoiser(),
        levels,
        samples.shape[0],
        sampler=sampler,
        steps=steps,
        gamma=gamma,
        generator=torch.Generator().manual_seed(seed),
    )
    ideal_dist = data.distance(ideal.double())
    return {
        "n": samples.shape[0],
        "non_finite": int((~finite).sum()),
        "sampler": sampler,
        "steps": steps,
        "gamma": sampler_settings(sampler, gamma)["gam"],
        "mean_distance_to_curve": float(dist.mean()) if dist.numel() else math.inf,
        "median_distance_to_curve": float(dist.median()) if dist.numel() else math.inf,
        "ideal_denoiser_mean_distance": float(ideal_dist.mean()),
        "arm_gap": 0.4,
    }


def format_swissroll_report(report: dict[str, Any]) -> str:
    """The report in a few lines for the terminal."""
    lines = [
        f"Swissroll quality of {report['n']} samples ({report['sampler']}, {report['steps']} steps, "
        f"gamma = {report['gamma']:g}):",
        f"  mean distance to the spiral curve   {report['mean_distance_to_curve']:.4f}  "
        f"(median {report['median_distance_to_curve']:.4f}; "
        f"the arms are {report['arm_gap']} apart)",
        f"  the ideal denoiser's, same sampler  {report['ideal_denoiser_mean_distance']:.4f}  "
        "(it memorises the 200 points)",
    ]
    if report["non_finite"]:
        lines.append(f"  {report['non_finite']} samples were not finite and are left out")
    return "\n".join(lines)


def plot_swissroll(path: str | os.PathLike, samples: Tensor, data: Swissroll | None = None) -> None:
    """The samples as dots over the spiral curve (drawn as a band of width ~0.02) [6.S183 Q2]."""
    from ddpm.data.swissroll import spiral_curve
    from ddpm.plot import scatter_over_density

    data = Swissroll() if data is None else data
    # the picture's background needs no precision: the distance to 2000 points along the curve (< 5e-3 apart)
    curve = spiral_curve(torch.linspace(data.t_min, data.t_min + data.t_span, 2000, dtype=torch.float64), data.t_span)

    def band(x: Tensor) -> Tensor:
        d = torch.cat([torch.cdist(rows, curve).min(1).values for rows in x.double().split(4096)])
        return -((d / CURVE_WIDTH) ** 2) / 2

    scatter_over_density(path, samples, band, extent=(-1.3, 1.3, -1.3, 1.3))
