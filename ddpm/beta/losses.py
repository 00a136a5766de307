"""The training loss L_simple and the full variational bound [Ho20 eqs. 5, 14].

L_simple is eq. 14; the bound is L = L_T + sum L_{t-1} + L_0 (eq. 5).

``eps_model(x_t, t)`` is any callable predicting eps from x_t and integer steps t of shape (batch,),
t in 1..T. Per-sample values are summed over every dimension but the first (the batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.beta.forward import q_mean_var, q_sample
from ddpm.beta.posterior import mu_from_eps, posterior_mean_var
from ddpm.beta.schedule import Schedule, at, per_sample, reverse_variance

__all__ = [
    "EpsModel",
    "sum_per_sample",
    "normal_kl",
    "gaussian_kl",
    "discretized_gaussian_log_likelihood",
    "l_simple",
    "prior_kl",
    "vlb_terms",
    "Bound",
    "negative_elbo",
]

EpsModel = Callable[[Tensor, Tensor], Tensor]


def sum_per_sample(x: Tensor) -> Tensor:
    """Sum over every dimension but the first (the batch)."""
    return x.flatten(1).sum(1)


def normal_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) per coordinate, for diagonal Gaussians [02460 eq. 29].

    0.5 (log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1), in nats, broadcast over inputs.
    """
    var1, var2 = torch.as_tensor(var1, dtype=mean1.dtype), torch.as_tensor(var2, dtype=mean1.dtype)
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


def gaussian_kl(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """KL(N(mean1, cov1) || N(mean2, cov2)) for full D x D covariances, in nats [02460 eq. 29].

    0.5 (tr(cov2^-1 cov1) + (mean2 - mean1)^T cov2^-1 (mean2 - mean1) - D + log det cov2 - log det cov1).
    """
    d = (mean2 - mean1)[..., None]
    solved = torch.linalg.solve(cov2, torch.cat([cov1, d], -1))
    trace = torch.diagonal(solved[..., :-1], dim1=-2, dim2=-1).sum(-1)
    quad = (d[..., 0] * solved[..., -1]).sum(-1)
    return 0.5 * (trace + quad - mean1.shape[-1] + torch.logdet(cov2) - torch.logdet(cov1))


def discretized_gaussian_log_likelihood(x0: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """log of N(mean, var)'s mass on each x_0's bin of the 256-level grid [Ho20 eq. 13].

    The bins lie on the 256-level grid in [-1, 1].

    The bin of x is [x - 1/255, x + 1/255], its outer edge at -inf for x = -1 and at +inf for x = 1.
    Per coordinate, in nats; the difference of normal CDFs is taken in the lower tail, in log space,
    so that it keeps its precision far from the mean.
    """
    std = torch.as_tensor(var, dtype=mean.dtype).sqrt()
    half = 1 / 255
    lo = torch.where(x0 < -1 + half, -math.inf, (x0 - half - mean) / std)
    hi = torch.where(x0 > 1 - half, math.inf, (x0 + half - mean) / std)
    # Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi): take whichever pair lies in the lower tail.
    upper_tail = lo > 0
    a, b = torch.where(upper_tail, -hi, lo), torch.where(upper_tail, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    return log_b + torch.log(-torch.expm1(torch.special.log_ndtr(a) - log_b))


def l_simple(eps_model: EpsModel, schedule: Schedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """L_simple per sample [Ho20 eq. 14, alg. 1].

    ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2.
    """
    return sum_per_sample((eps - eps_model(q_sample(schedule, x0, t, eps), t)) ** 2)


def prior_kl(schedule: Schedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per sample, in nats [Ho20 eq. 5]."""
    mean, var = q_mean_var(schedule, x0, schedule.T)
    return sum_per_sample(normal_kl(mean, var, torch.zeros_like(mean), torch.ones_like(mean)))


def vlb_terms(
    eps_model: EpsModel, schedule: Schedule, x0: Tensor, t: Tensor, eps: Tensor, sigma2: str = "beta"
) -> Tensor:
    """L_{t-1} per sample at x_t = q_sample(x_0, t, eps), in nats [Ho20 eqs. 5, 12, 13].

    For t >= 2, KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) between Gaussians; for t = 1,
    L_0 = -log p_theta(x_0 | x_1), the discretised decoder (x_0 on the 256-level grid in [-1, 1]).
    p_theta has mean mu_theta of eq. 11 and variance sigma_t^2 (``sigma2``: "beta" or "beta_tilde").
    """
    xt = q_sample(schedule, x0, t, eps)
    mean = mu_from_eps(schedule, xt, t, eps_model(xt, t))
    var = at(reverse_variance(schedule, sigma2), t, x0)
    mu_tilde, beta_tilde = posterior_mean_var(schedule, x0, xt, t)
    # beta_tilde_1 = 0: the KL at t = 1 is not used, so keep its variance positive to stay finite.
    kl = normal_kl(mu_tilde, torch.where(beta_tilde > 0, beta_tilde, var), mean, var)
    decoder_nll = -discretized_gaussian_log_likelihood(x0, mean, var)
    first = per_sample(t == 1, x0)
    return sum_per_sample(torch.where(first, decoder_nll, kl))


@dataclass(frozen=True)
class Bound:
    """The terms of the negative ELBO [Ho20 eq. 5] per sample, in nats.

    ``terms[:, t - 1]`` is L_{t-1} for t = 1..T (column 0 is the decoder term L_0); ``prior`` is L_T.
    """

    prior: Tensor
    terms: Tensor

    @property
    def total(self) -> Tensor:
        """L_T + sum_t L_{t-1}: the negative ELBO per sample, in nats."""
        return self.prior + self.terms.sum(1)

    def bits_per_dim(self, dims: int) -> Tensor:
        """The negative ELBO per sample in bits per dimension of data with ``dims`` coordinates."""
        return self.total / (dims * math.log(2))


@torch.no_grad()
def negative_elbo(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    sigma2: str = "beta",
    progress: Callable[[int], None] | None = None,
) -> Bound:
    """Every term of the bound [Ho20 eq. 5] for a batch x_0.

    Each L_{t-1} estimated at one fresh draw of x_t.

    ``progress(t)`` is called after each step, for a progress bar.
    """
    terms = x0.new_empty(x0.shape[0], schedule.T)
    for t in range(1, schedule.T + 1):
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        steps = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
        terms[:, t - 1] = vlb_terms(eps_model, schedule, x0, steps, eps, sigma2)
        if progress is not None:
            progress(t)
    return Bound(prior=prior_kl(schedule, x0), terms=terms)
