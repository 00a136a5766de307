"""How close a model's samples are to the truth: energy distance, its permutation test, a report.

For samples x_1..x_n ~ P and y_1..y_m ~ Q the two-sample energy statistic of Szekely & Rizzo [SR13]
is the V-statistic (every pair, i = j included)

    E_{n,m} = 2/(n m) sum_ij |x_i - y_j| - 1/n^2 sum_ij |x_i - x_j| - 1/m^2 sum_ij |y_i - y_j|,

the energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between the two empirical distributions. It
is >= 0, and 0 only for equal samples; its population value is 0 only for P = Q. As an estimate it
is biased upwards: E[E_{n,m}] = D^2(P, Q) + E|X - X'| / n + E|Y - Y'| / m. Under P = Q every split
of the pooled sample is equally likely, which gives the permutation test's p-value [SR04].

[SR13] G. J. Szekely, M. L. Rizzo, "Energy statistics: A class of statistics based on distances",
       J. Statist. Plann. Inference 143 (2013) 1249-1272.
[SR04] G. J. Szekely, M. L. Rizzo, "Testing for equal distributions in high dimension", InterStat 5 (2004).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["energy_distance", "permutation_test", "quality_report", "format_report"]

CHUNK = 1 << 22  # entries of a distance block held at once (32 MiB in float64)


class Dataset(Protocol):
    """What ``quality_report`` needs of a distribution: draws and the exact log-density."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...


def _rows(name: str, x: Tensor) -> Tensor:
    """``x`` as a float64 (n, D) tensor of finite values, n >= 1: one sample a row, images flattened."""
    x = torch.as_tensor(x).detach()
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    x = x.flatten(1).double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds non-finite values; expected finite samples")
    return x


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Two samples as float64 rows of one dimension."""
    x, y = _rows("x", x), _rows("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def _distances(a: Tensor, b: Tensor) -> Tensor:
    """|a_i - b_j| for all pairs, directly (not via |a|^2 + |b|^2 - 2 a.b, which loses digits near 0)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _mean_distance(a: Tensor, b: Tensor) -> Tensor:
    """The mean of |a_i - b_j| over all pairs, in blocks of rows so memory stays bounded."""
    step = max(1, CHUNK // b.shape[0])
    total = torch.zeros((), dtype=a.dtype, device=a.device)
    for i in range(0, a.shape[0], step):
        total = total + _distances(a[i : i + step], b).sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: Tensor, y: Tensor) -> float:
    """The two-sample energy statistic E_{n,m} (V-statistic form) of x (n, ...) and y (m, ...) [SR13].

    Computed in float64 whatever the input dtype; rows of more than two dimensions (images) are
    flattened.
    """
    x, y = _pair(x, y)
    return float(2 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))


def _split_indicators(perms: Tensor, n: int) -> Tensor:
    """One row per permutation: 1 where the pooled index falls in the first sample (its first n places)."""
    a = torch.zeros(perms.shape, dtype=torch.float64)
    return a.scatter_(1, perms[:, :n], 1.0)


def _pooled_energy(d: Tensor, a: Tensor, n: int) -> Tensor:
    """E_{n,m} of each split a (P, N) of the pooled sample, from its distance matrix d (N, N).

    With S_xx = a^T d a, the row sums r = d 1 and S = 1^T d 1: S_xy = a^T r - S_xx and
    S_yy = S - S_xx - 2 S_xy, so each split costs one matrix-vector product.
    """
    m = d.shape[0] - n
    s_xx = ((a @ d) * a).sum(1)
    s_xy = a @ d.sum(1) - s_xx
    s_yy = d.sum() - s_xx - 2 * s_xy
    return 2 * s_xy / (n * m) - s_xx / n**2 - s_yy / m**2


def permutation_test(
    x: Tensor,
    y: Tensor,
    statistic: Callable[[Tensor, Tensor], float] = energy_distance,
    n_permutations: int = 200,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """``statistic(x, y)`` and its permutation p-value (1 + #{permuted >= observed}) / (1 + P) [SR04].

    Each permutation splits the pooled rows at random into n and m; large values speak against
    equal distributions. The p-value is valid at any sample size: under equal distributions
    P(p <= alpha) <= alpha. For ``energy_distance`` the pooled distance matrix ((n + m)^2 float64
    numbers: 128 MB at n = m = 2000) is computed once and every split is read off it; any other
    statistic is recomputed on each split.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    fast = statistic is energy_distance
    if fast:
        x, y = _pair(x, y)
    n = len(x)
    pooled = torch.cat([torch.as_tensor(x), torch.as_tensor(y)])
    device = generator.device if generator is not None else "cpu"
    perms = torch.stack(
        [torch.randperm(len(pooled), generator=generator, device=device) for _ in range(n_permutations)]
    ).cpu()
    if fast:
        d = _distances(pooled, pooled)
        observed = float(_pooled_energy(d, _split_indicators(torch.arange(len(pooled))[None], n).to(d), n))
        batches = perms.split(max(1, CHUNK // d.shape[0]))
        permuted = torch.cat([_pooled_energy(d, _split_indicators(b, n).to(d), n) for b in batches])
    else:
        observed = float(statistic(x, y))
        permuted = torch.tensor([float(statistic(pooled[p[:n]], pooled[p[n:]])) for p in perms])
    return observed, (1 + int((permuted >= observed).sum())) / (1 + n_permutations)


def _log_density(dataset: Dataset, x: Tensor) -> tuple[float, float, Tensor]:
    """The fraction of x inside the support (log p > -inf), the mean log p(x) over those, and those log p."""
    logp = torch.as_tensor(dataset.log_prob(x)).double()
    inside = torch.isfinite(logp)
    mean = float(logp[inside].mean()) if inside.any() else math.nan
    return float(inside.double().mean()), mean, logp[inside]


@torch.no_grad()
def quality_report(
    samples: Tensor,
    dataset: Dataset,
    n: int = 2000,
    n_permutations: int = 200,
    generator: torch.Generator | None = None,
) -> dict[str, float | int | bool]:
    """How far model ``samples`` are from ``dataset``, beside how far two true samples are apart.

    The first min(n, len(samples)) model samples are compared with a fresh true sample of that size
    (energy distance and its permutation p-value), and so is a second, independent true sample
    (the baseline: what a perfect model scores). The exact mean log-density of both is computed
    over the points inside the support, whose fraction is reported beside it; ``uniform`` says that
    log p took one value at every point inside (a density uniform on its support, such as the
    Chequerboard's), where the two means are equal by construction and only the fractions tell model
    from truth. ``dataset`` needs ``sample(n, generator)`` and ``log_prob(x)`` (-inf off the support).
    The counts ``n`` and ``n_permutations`` are ints, ``uniform`` a bool, every other value a float.
    """
    samples = torch.as_tensor(samples).detach().cpu()
    n = min(n, len(samples))
    model = samples[:n].double()
    reference = dataset.sample(n, generator=generator).detach().cpu().double()
    baseline = dataset.sample(n, generator=generator).detach().cpu().double()
    distance, p_value = permutation_test(model, reference, n_permutations=n_permutations, generator=generator)
    base_distance, base_p_value = permutation_test(
        baseline, reference, n_permutations=n_permutations, generator=generator
    )
    support, log_prob, inside = _log_density(dataset, model)
    base_support, base_log_prob, base_inside = _log_density(dataset, baseline)
    values = torch.cat([inside, base_inside])
    return {
        "n": int(n),
        "n_permutations": int(n_permutations),
        "energy_distance": distance,
        "p_value": p_value,
        "baseline_energy_distance": base_distance,
        "baseline_p_value": base_p_value,
        "log_prob": log_prob,
        "support": support,
        "baseline_log_prob": base_log_prob,
        "baseline_support": base_support,
        "uniform": bool(len(values) > 0 and bool((values == values[0]).all())),
    }


def format_report(report: dict[str, float | int | bool]) -> str:
    """One readable line per item of a ``quality_report``; for a uniform density, the support alone."""
    r = report
    if r.get("uniform"):
        return "\n".join(
            [
                f"samples compared:                 {int(r['n'])} model, {int(r['n'])} true "
                f"({int(r['n_permutations'])} permutations)",
                f"energy distance model vs true:    {r['energy_distance']:.3e}  (permutation p = {r['p_value']:.3f})",
                f"energy distance true vs true:     {r['baseline_energy_distance']:.3e}  "
                f"(permutation p = {r['baseline_p_value']:.3f}; the baseline)",
                f"model samples inside the support: {100 * r['support']:.1f}%  (the density is uniform there, "
                f"log p(x) = {r['baseline_log_prob']:.4f}, so the share inside is what tells model from truth)",
                f"true samples inside the support:  {100 * r['baseline_support']:.1f}%",
            ]
        )
    return "\n".join(
        [
            f"samples compared:                 {int(r['n'])} model, {int(r['n'])} true "
            f"({int(r['n_permutations'])} permutations)",
            f"energy distance model vs true:    {r['energy_distance']:.3e}  (permutation p = {r['p_value']:.3f})",
            f"energy distance true vs true:     {r['baseline_energy_distance']:.3e}  "
            f"(permutation p = {r['baseline_p_value']:.3f}; the baseline)",
            f"mean log p(x) of model samples:   {r['log_prob']:.4f}  ({100 * r['support']:.1f}% inside the support)",
            f"mean log p(x) of true samples:    {r['baseline_log_prob']:.4f}  "
            f"({100 * r['baseline_support']:.1f}% inside the support)",
        ]
    )
