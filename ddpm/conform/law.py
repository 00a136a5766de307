"""The conform specs' data, its exact denoiser, and the law check [Ho20 alg. 2; PY23 App. A].

Driven by the exact denoiser of the data N(MEAN, C I), a sampler whose steps are affine in the sample
plus Gaussian noise outputs a Gaussian whose mean and variance follow a closed-form recursion (the
beta world's from the posterior's coefficients, the sigma world's ``gaussian_gam_law``). ``hold`` holds
LAW_DRAWS samples of each run to it: the mean and the variance of each coordinate, every number of
every run in one ``ddpm.stats.check_mc`` call at the project's false-alarm rate (Bonferroni over them).
The variance's standard error is the fourth-moment one, sqrt((m4 - var^2) / n); at 20,000 draws its
studentized statistic keeps the stated rate within the policy's 1.5 times (1.26e-6: tests/test_stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.conform.targets import TargetError
from ddpm.oracles import GaussianMixture
from ddpm.stats import FALSE_ALARM, check_mc

__all__ = [
    "MEAN",
    "C",
    "CLIPPED_MEAN",
    "CLIPPED_C",
    "LAW_COUNTS",
    "LAW_DRAWS",
    "data_law",
    "exact_output",
    "Run",
    "hold",
]

MEAN = (0.5, -1.0)  # the data N(MEAN, C I): a mean off 0 so that a bias shows
C = 0.5
# Data inside [-1, 1] to 7 standard deviations: DDPM's and DDIM's x_0 clipping (on by default) never acts
CLIPPED_MEAN, CLIPPED_C = (0.2, -0.3), 0.01
LAW_COUNTS = (10, 25)
LAW_DRAWS = 20_000


def data_law(dim: int = 2, mean: Sequence[float] = MEAN, c: float = C) -> GaussianMixture:
    """N(mean, c I) in ``dim`` coordinates (mean repeated), the data the exact denoiser is of."""
    m = torch.tensor(mean, dtype=torch.float64).repeat(dim)[:dim].reshape(1, dim)
    return GaussianMixture(torch.ones(1, dtype=torch.float64), m, torch.tensor([c], dtype=torch.float64))


def exact_output(mixture: GaussianMixture, x: Tensor, a: float, s: float, prediction: str) -> Tensor:
    """The perfect network's output for x = a x_0 + s eps, by parameterisation [Ho20 eq. 9; Esser24 §2].

    "epsilon": eps* = E[eps | x]; "sample": x_0* = E[x_0 | x]; "v_prediction": a eps* - s x_0*
    [Salimans22 §4]; "velocity" (flow matching): eps* - x_0*. Another name is a TargetError (undecided).
    """
    x0 = mixture.posterior_mean(x, a, s)
    eps = (x - a * x0) / s
    outputs = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0, "velocity": eps - x0}
    if prediction not in outputs:
        raise TargetError(f"prediction_type={prediction!r} has no exact denoiser here (one of {list(outputs)})")
    return outputs[prediction]


@dataclass
class Run:
    """One sampling run: its step count, its samples (draws, coordinates), the law's mean and variance."""

    n: int
    samples: Tensor
    mean: Tensor  # (coordinates,)
    var: float


def hold(runs: Sequence[Run]) -> tuple[bool, str]:
    """(passed, detail): every run's per-coordinate mean and variance against its law, at FALSE_ALARM."""
    ests, errs, exps, names = [], [], [], []
    for r in runs:
        x = r.samples.to(torch.float64)
        draws, dim = x.shape
        centred = x - x.mean(0)
        var = centred.pow(2).mean(0)
        m4 = centred.pow(4).mean(0)
        ests += [x.mean(0), var]
        errs += [x.std(0) / math.sqrt(draws), ((m4 - var**2).clamp_min(1e-300) / draws).sqrt()]
        exps += [r.mean.to(torch.float64), torch.full((dim,), r.var, dtype=torch.float64)]
        names += [f"the mean at n = {r.n}"] * dim + [f"the variance at n = {r.n}"] * dim
    est, err, exp = torch.cat(ests), torch.cat(errs), torch.cat(exps)
    check = check_mc("law", est, err, exp, runs[0].samples.shape[0], false_alarm=FALSE_ALARM, raise_on_fail=False)
    worst = int(((est - exp).abs() / err).argmax())
    counts = sorted({r.n for r in runs})
    detail = (
        f"n in {counts}, {runs[0].samples.shape[0]} draws: worst {names[worst]}, {float(est[worst]):.5g} against "
        f"{float(exp[worst]):.5g} (z = {check.z:.2f}, k = {check.k:.2f} at false-alarm rate {FALSE_ALARM:g})"
    )
    return check.passed, detail
