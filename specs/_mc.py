"""One-sample tests of draws against a known Gaussian mixture, through ``ddpm.stats.check_mc``.

Two-sample tests (permutation p-values) cannot reach a false-alarm rate of 1e-6, their resolution
being 1 / n_permutations. Samples that should follow a *known* distribution are instead held to
exact expectations, each as a z-score:

* the means E[x_j] and second moments E[x_j x_l] (j <= l), with standard errors from the sample;
* the probabilities of fixed half-planes {u . x <= c}, with exact values
  sum_k w_k Phi((c - u . m_k) / sqrt(u^T C_k u)): each count is held to its exact binomial tail
  (``ddpm.stats.binomial_z``), no normal approximation. Half-planes that separate the components
  measure the component weights.

All of them form one ``check_mc`` call: Bonferroni over its elements keeps the stated rate. The
moments are studentized means, whose rate is not exactly the normal one at the sample sizes used
(n = 4000 to 1e5): tests/test_calibration.py simulates each statistic's skewness and kurtosis under
the null and extrapolates its rate at k by the Edgeworth expansion (``ddpm.stats.studentized_rate``),
and asserts it within twice the nominal rate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture
from ddpm.stats import MonteCarloCheck, binomial_z, check_mc

__all__ = [
    "component_covs",
    "mixture_moments",
    "moment_values",
    "sample_moments",
    "halfplane_probability",
    "separating_halfplanes",
    "check_matches_mixture",
]


def component_covs(mixture: GaussianMixture) -> Tensor:
    """The covariances C_k as a (K, D, D) float64 tensor, whichever way the mixture stores them."""
    covs = mixture.covs.to(torch.float64)
    if covs.ndim == 1:
        return covs[:, None, None] * torch.eye(mixture.dim, dtype=torch.float64)
    return covs


def _pairs(D: int) -> tuple[Tensor, Tensor]:
    rows = torch.triu_indices(D, D)
    return rows[0], rows[1]


def mixture_moments(mixture: GaussianMixture) -> Tensor:
    """E[x_j] for each j, then E[x_j x_l] for j <= l, of the mixture, exactly."""
    w, m = mixture.weights.to(torch.float64), mixture.means.to(torch.float64)
    first = w @ m
    second = torch.einsum("k,kij->ij", w, component_covs(mixture) + m[:, :, None] * m[:, None, :])
    j, k = _pairs(mixture.dim)
    return torch.cat([first, second[j, k]])


def moment_values(x: Tensor) -> Tensor:
    """Per draw: x_j, then x_j x_l (j <= l), shape (n, D + D (D + 1) / 2), float64."""
    j, k = _pairs(x.shape[1])
    return torch.cat([x, x[:, j] * x[:, k]], dim=1).to(torch.float64)


def sample_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """The sample means of x_j and x_j x_l (j <= l), and their standard errors."""
    values = moment_values(x)
    return values.mean(0), values.std(0) / math.sqrt(x.shape[0])


def halfplane_probability(mixture: GaussianMixture, u: Tensor, c: float) -> float:
    """P(u . x <= c) under the mixture, exactly: sum_k w_k Phi((c - u . m_k) / sqrt(u^T C_k u))."""
    u = torch.as_tensor(u, dtype=torch.float64)
    scale = torch.einsum("i,kij,j->k", u, component_covs(mixture), u).sqrt()
    z = (c - mixture.means.to(torch.float64) @ u) / scale.clamp_min(1e-300)
    return float(mixture.weights.to(torch.float64) @ torch.special.ndtr(z))


def separating_halfplanes(mixture: GaussianMixture) -> list[tuple[Tensor, float]]:
    """For each pair of components, the half-plane bounded by the bisector of their means."""
    m = mixture.means.to(torch.float64)
    planes = []
    for a in range(m.shape[0]):
        for b in range(a + 1, m.shape[0]):
            u = m[b] - m[a]
            planes.append((u, float(u @ (m[a] + m[b]) / 2)))
    return planes


def check_matches_mixture(
    name: str,
    x: Tensor,
    mixture: GaussianMixture,
    planes: list[tuple[Tensor, float]] | None = None,
    raise_on_fail: bool = True,
) -> MonteCarloCheck:
    """Hold draws ``x`` (n, D) to the mixture's moments and half-plane probabilities in one ``check_mc``."""
    n = x.shape[0]
    planes = separating_halfplanes(mixture) if planes is None else planes
    estimate, stderr = sample_moments(x)
    expected = mixture_moments(mixture)
    x64 = x.to(torch.float64)
    # a count in a half-plane enters as the z of its exact binomial tail, against 0 with unit "stderr"
    for u, c in planes:
        z = binomial_z(int((x64 @ u <= c).sum()), n, halfplane_probability(mixture, u, c))
        estimate = torch.cat([estimate, torch.tensor([z], dtype=torch.float64)])
        stderr = torch.cat([stderr, torch.ones(1, dtype=torch.float64)])
        expected = torch.cat([expected, torch.zeros(1, dtype=torch.float64)])
    return check_mc(name, estimate, stderr, expected, n, raise_on_fail=raise_on_fail)
