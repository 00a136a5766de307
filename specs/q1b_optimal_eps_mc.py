"""eps* is E[eps | x_sigma] and minimises loss (1), by the predicted margins [6.S183 Q1b].

For x_sigma = x_0 + sigma eps with x_0 from a 2D Gaussian mixture, and for a finite data set (point masses):

1. The closed form ``GaussianMixture.eps_star`` is E[eps | x_sigma = x] at fixed points x and several
   sigma. By Bayes' rule p(x_0 | x) is proportional to p_0(x_0) w(x_0) with w(x_0) =
   exp(-||x - x_0||^2 / 2 sigma^2), so with x_0 ~ p_0 and f = (x - x_0) / sigma the per-draw value
   d = w (f - eps*(x)) has mean E[w] (E[eps | x] - eps*(x)): zero exactly when eps* is the conditional
   mean. The check is the plain studentized mean of d (no importance-sampling ratio, no delta method,
   no O(1/n) bias), so its rate is calibrated like every other mean's (``tests/test_stats.py``).
2. Loss (1) at eps* equals its predicted minimum E[tr Cov(eps | x_sigma)], with
   tr Cov(eps | x) = (sum_k pi_k(x) (D c_k sigma^2 / (c_k + sigma^2) + ||mu_k(x)||^2)
                      - ||sum_k pi_k(x) mu_k(x)||^2) / sigma^2
   (the law of total variance over the components; pi_k, mu_k the component posterior weights and
   means), integrated over p_sigma on a grid (trapezoid rule, exact to ~1e-12 for these Gaussians);
   and eps* + delta h raises the loss by exactly delta^2 E||h||^2: delta^2 ||u||^2 for h = u
   constant and delta^2 (E||x_0||^2 + D sigma^2) for h(x) = x (paired differences, one sample).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture
from ddpm.stats import MonteCarloCheck, check_mc, mean_stderr

MIXTURE = GaussianMixture.isotropic([0.4, 0.6], [[-1.5, 0.5], [1.0, -0.5]], [0.4, 0.6])
DATASET = GaussianMixture.finite(torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.5], [2.0, 2.0]]))
POINTS = torch.tensor([[-1.5, 0.5], [1.0, -0.5], [0.0, 0.0], [-0.5, 1.0], [1.5, 0.5], [0.5, -1.5]], dtype=torch.float64)
SIGMAS = (0.5, 1.0, 2.0)
DELTA, U = 0.1, torch.tensor([1.0, -2.0], dtype=torch.float64)
N = 40000


def conditional_mean_values(mixture: GaussianMixture, n: int, generator: torch.Generator, eps_star=None) -> Tensor:
    """Per draw x_0 ~ p_0: w(x_0) (f - eps*(x)) at each of ``POINTS`` x ``SIGMAS``, shape (n, S * P * D).

    Its mean is E[w] (E[eps | x_sigma = x] - eps*(x)), zero for the true conditional mean.
    """
    eps_star = mixture.eps_star if eps_star is None else eps_star
    x0 = mixture.sample(n, generator)
    columns = []
    for sigma in SIGMAS:
        w = torch.exp(-((POINTS[:, None, :] - x0[None]) ** 2).sum(-1) / (2 * sigma**2))  # (P, n)
        f = (POINTS[:, None, :] - x0[None]) / sigma  # (P, n, D)
        d = w[..., None] * (f - eps_star(POINTS, 1.0, sigma)[:, None, :])
        columns.append(d.permute(1, 0, 2).reshape(n, -1))
    return torch.cat(columns, 1)


def check_eps_star_is_conditional_mean(
    mixture: GaussianMixture, n: int, generator: torch.Generator, *, eps_star=None, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """``eps_star(x, 1, sigma)`` is E[eps | x_sigma = x] at ``POINTS`` x ``SIGMAS``: E[w (f - eps*)] = 0.

    ``eps_star`` is the oracle's by default.
    """
    estimate, stderr = mean_stderr(conditional_mean_values(mixture, n, generator, eps_star))
    return check_mc(
        "E[w (f - eps*)], zero iff eps* = E[eps | x_sigma]",
        estimate,
        stderr,
        torch.zeros_like(estimate),
        n,
        raise_on_fail=raise_on_fail,
    )


def trace_posterior_cov_eps(mixture: GaussianMixture, x: Tensor, sigma: float) -> Tensor:
    """tr Cov(eps | x_0 + sigma eps = x) for isotropic components (point masses allowed)."""
    c, m, D = mixture.covs, mixture.means, mixture.dim
    var = c + sigma**2  # (K,)
    log_pi = (
        torch.log(mixture.weights) - ((x[:, None] - m) ** 2).sum(-1) / (2 * var) - D / 2 * torch.log(2 * math.pi * var)
    )
    pi = torch.softmax(log_pi, 1)  # (B, K)
    mu = m + (c / var)[:, None] * (x[:, None] - m)  # (B, K, D)
    second = (pi * (D * c * sigma**2 / var + (mu**2).sum(-1))).sum(1)
    return (second - ((pi[..., None] * mu).sum(1) ** 2).sum(-1)) / sigma**2


def expected_over_p_sigma(mixture: GaussianMixture, sigma: float, f, points: int = 401) -> float:
    """E[f(x_sigma)] by the trapezoid rule on a grid covering p_sigma to 8 standard deviations."""
    sd = math.sqrt(float(mixture.covs.max()) + sigma**2)
    lo, hi = float(mixture.means.min()) - 8 * sd, float(mixture.means.max()) + 8 * sd
    g = torch.linspace(lo, hi, points, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    weight = torch.exp(mixture.log_prob(grid, 1.0, sigma)) * (g[1] - g[0]) ** 2
    if abs(float(weight.sum()) - 1) > 1e-9:
        raise AssertionError(f"the quadrature grid misses mass: {float(weight.sum())}")
    return float((weight * f(grid)).sum())


def loss_values(mixture: GaussianMixture, sigma: float, n: int, generator: torch.Generator, eps_star=None) -> Tensor:
    """Per draw at one sigma: loss (1) at eps*, and its raise by delta u and by delta x, shape (n, 3)."""
    eps_star = mixture.eps_star if eps_star is None else eps_star
    x0 = mixture.sample(n, generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x = x0 + sigma * eps
    best = eps_star(x, 1.0, sigma)
    loss = ((best - eps) ** 2).sum(1)
    raise_const = ((best + DELTA * U - eps) ** 2).sum(1) - loss
    raise_linear = ((best + DELTA * x - eps) ** 2).sum(1) - loss
    return torch.stack([loss, raise_const, raise_linear], 1)


def check_loss_minimum(
    mixture: GaussianMixture, n: int, generator: torch.Generator, *, eps_star=None, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """Loss (1) at eps* and at eps* + delta h against the predicted minimum and margins, at each sigma."""
    eps_star = mixture.eps_star if eps_star is None else eps_star
    second_moment_x0 = float(mixture.weights @ ((mixture.means**2).sum(1) + mixture.dim * mixture.covs))
    estimates, stderrs, expected = [], [], []
    for sigma in SIGMAS:
        per_draw = loss_values(mixture, sigma, n, generator, eps_star)
        for values, value in [
            (
                per_draw[:, 0],
                expected_over_p_sigma(mixture, sigma, lambda y, s=sigma: trace_posterior_cov_eps(mixture, y, s)),
            ),
            (per_draw[:, 1], DELTA**2 * float(U @ U)),
            (per_draw[:, 2], DELTA**2 * (second_moment_x0 + mixture.dim * sigma**2)),
        ]:
            est, se = mean_stderr(values)
            estimates.append(est)
            stderrs.append(se)
            expected.append(value)
    return check_mc(
        "loss (1) at eps* and its raise by perturbations vs the predicted values",
        torch.stack(estimates),
        torch.stack(stderrs),
        torch.tensor(expected, dtype=torch.float64),
        n,
        raise_on_fail=raise_on_fail,
    )
