"""Closed-form oracles for Gaussian mixtures and finite data sets [6.S183 Q1a-c; Ho20 eq. 4].

For data x_0 ~ p_0 = sum_k w_k N(m_k, C_k) and a noisy observation x = a x_0 + s eps, eps ~ N(0, I),
everything a diffusion model learns has a closed form: the density p_t of x, the posterior mean
E[x_0 | x] (the MMSE denoiser, Q1a), the optimal noise prediction eps*(x) = (x - a E[x_0 | x]) / s
(Q1b), the score -eps*(x) / s (Tweedie), and, for a path x_t = x_0 + sigma(t) eps, the transport
velocity v(x, t) = sigma'(t) E[eps | x_t = x] (Q1c). DDPM's x_t is the case a = sqrt(alpha_bar_t),
s = sqrt(1 - alpha_bar_t) [Ho20 eq. 4]; VE noise x_0 + sigma eps is a = 1, s = sigma.

A finite data set is the mixture of point masses (C_k = 0, equal weights): its eps* is the ideal
denoiser that memorises the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule, at, per_sample

__all__ = [
    "GaussianMixture",
    "OptimalEps",
    "transport_velocity",
    "SigmaOptimalEps",
    "gaussian_flow",
    "gaussian_flow_at",
]


def _column(value: Tensor | float, like: Tensor) -> Tensor:
    """A scalar or per-sample value as a (batch, 1) tensor in ``like``'s dtype and device."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return per_sample(v if v.ndim else v.expand(like.shape[0]), like)


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """p_0(x) = sum_k weights[k] N(x; means[k], C_k) in D dimensions.

    ``covs`` is either (K,) — isotropic C_k = covs[k] I, 0 allowed for a point mass — or (K, D, D).
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        K, D = self.means.shape
        if self.weights.shape != (K,) or self.covs.shape not in {(K,), (K, D, D)}:
            raise ValueError(
                f"weights {tuple(self.weights.shape)} and covs {tuple(self.covs.shape)} "
                f"do not fit {K} components in {D} dimensions"
            )
        if (self.weights < 0).any() or not math.isclose(float(self.weights.sum()), 1.0, rel_tol=1e-6):
            raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights.tolist()}")

    @classmethod
    def isotropic(cls, weights, means, std) -> GaussianMixture:
        """Components N(means[k], std[k]^2 I); ``std`` a scalar or one per component."""
        means = torch.as_tensor(means, dtype=torch.float64)
        std = torch.as_tensor(std, dtype=torch.float64).expand(means.shape[0])
        return cls(torch.as_tensor(weights, dtype=torch.float64), means, std**2)

    @classmethod
    def finite(cls, points: Tensor) -> GaussianMixture:
        """The empirical distribution of a finite data set: equal point masses."""
        points = torch.as_tensor(points, dtype=torch.float64).flatten(1)
        n = points.shape[0]
        return cls(torch.full((n,), 1 / n, dtype=torch.float64), points, torch.zeros(n, dtype=torch.float64))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        return GaussianMixture(*(v.to(device=device, dtype=dtype) for v in (self.weights, self.means, self.covs)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws of x_0 ~ p_0."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype, device=self.means.device)
        if self.covs.ndim == 1:
            return self.means[k] + self.covs[k].sqrt()[:, None] * z
        chol = torch.linalg.cholesky(self.covs + 1e-300 * torch.eye(self.dim, dtype=self.covs.dtype))
        return self.means[k] + (chol[k] @ z[:, :, None])[:, :, 0]

    def _components(self, x: Tensor, a: Tensor | float, s: Tensor | float) -> tuple[Tensor, Tensor]:
        """log w_k N(x; a m_k, a^2 C_k + s^2 I) of shape (B, K) and E[x_0 | x, k] of shape (B, K, D)."""
        a, s = _column(a, x), _column(s, x)
        means = self.means.to(x)
        diff = x[:, None, :] - a[:, :, None] * means  # (B, K, D)
        log_w = torch.log(self.weights.to(x))
        if self.covs.ndim == 1:
            covs = self.covs.to(x)
            var = a**2 * covs + s**2  # (B, K)
            log_n = -0.5 * ((diff**2).sum(-1) / var + self.dim * torch.log(2 * math.pi * var))
            return log_w + log_n, means + (a * covs / var)[:, :, None] * diff
        covs = self.covs.to(x)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        sigma = a[:, :, None, None] ** 2 * covs + s[:, :, None, None] ** 2 * eye  # (B, K, D, D)
        chol = torch.linalg.cholesky(sigma)
        white = torch.linalg.solve_triangular(chol, diff[..., None], upper=False)  # L^-1 diff
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_n = -0.5 * ((white[..., 0] ** 2).sum(-1) + log_det + self.dim * math.log(2 * math.pi))
        solved = torch.cholesky_solve(diff[..., None], chol)[..., 0]  # Sigma^-1 diff
        return log_w + log_n, means + a[:, :, None] * (covs @ solved[..., None])[..., 0]

    def log_prob(self, x: Tensor, a: Tensor | float = 1.0, s: Tensor | float = 0.0) -> Tensor:
        """log p(x) of x = a x_0 + s eps, per sample; a = 1, s = 0 is p_0 itself."""
        return torch.logsumexp(self._components(x, a, s)[0], dim=1)

    def posterior_mean(self, x: Tensor, a: Tensor | float, s: Tensor | float) -> Tensor:
        """E[x_0 | a x_0 + s eps = x]: softmax-weighted per-component posterior means [6.S183 Q1a, Q1b]."""
        log_joint, component_means = self._components(x, a, s)
        return (torch.softmax(log_joint, dim=1)[:, :, None] * component_means).sum(1)

    def eps_star(self, x: Tensor, a: Tensor | float, s: Tensor | float) -> Tensor:
        """eps*(x) = E[eps | x] = (x - a E[x_0 | x]) / s, the minimiser of the denoising loss [6.S183 Q1b]."""
        return (x - _column(a, x) * self.posterior_mean(x, a, s)) / _column(s, x)

    def score(self, x: Tensor, a: Tensor | float, s: Tensor | float) -> Tensor:
        """grad_x log p(x) = -eps*(x) / s (Tweedie's formula) [6.S183 Q1b]."""
        return -self.eps_star(x, a, s) / _column(s, x)


def transport_velocity(mixture: GaussianMixture, x: Tensor, sigma: Tensor | float, dsigma: Tensor | float) -> Tensor:
    """v(x, t) = E[sigma'(t) eps | x_t = x] for x_t = x_0 + sigma(t) eps [6.S183 Q1c]."""
    return _column(dsigma, x) * mixture.eps_star(x, 1.0, sigma)


class OptimalEps:
    """eps*(x_t, t) for DDPM's x_t [Ho20 eq. 4; 6.S183 Q1b].

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

    A drop-in ``eps_model`` for data of shape (batch, D): what a perfectly trained network predicts.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        self.mixture, self.schedule = mixture, schedule

    def __call__(self, xt: Tensor, t: Tensor) -> Tensor:
        s = self.schedule
        a = at(s.alpha_bar.sqrt(), t, xt).reshape(-1)
        sd = at(s.one_minus_alpha_bar.sqrt(), t, xt).reshape(-1)
        return self.mixture.eps_star(xt, a, sd)


class SigmaOptimalEps:
    """eps*(x, sigma) = E[eps | x_0 + sigma eps = x] [6.S183 Q1b].

    For the sigma world's x_sigma = x_0 + sigma eps.

    The same function as the beta world's :class:`OptimalEps` through the bridge x_VE = x_VP / sqrt(alpha_bar_t),
    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t): eps*(x_VP; a, s) is unchanged when x_VP, a and s are
    divided by a = sqrt(alpha_bar_t), which leaves a = 1, s = sigma_t. A drop-in ``eps_model(x, sigma)``
    for data of shape (batch, D), ``sigma`` a float or a tensor (batch,). ``SigmaOptimalEps.gaussian(m, c)``
    is that of N(m, c I); ``SigmaOptimalEps.finite(points)`` the ideal denoiser of a finite data set.
    """

    def __init__(self, mixture: GaussianMixture):
        self.mixture = mixture

    @classmethod
    def gaussian(cls, mean, c: float) -> SigmaOptimalEps:
        """eps* of N(mean, c I): sigma (x - mean) / (c + sigma^2), here through the mixture code."""
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1)
        c64 = torch.tensor([float(c)], dtype=torch.float64)
        return cls(GaussianMixture(torch.ones(1, dtype=torch.float64), mean, c64))

    @classmethod
    def finite(cls, points: Tensor) -> SigmaOptimalEps:
        """The ideal denoiser of ``points`` (n, D): eps* of their empirical distribution."""
        return cls(GaussianMixture.finite(points))

    def __call__(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return self.mixture.eps_star(x, 1.0, sigma)


def gaussian_flow_at(
    x: Tensor, a_from: float, s_from: float, a_to: float, s_to: float, mean: Tensor | float = 0.0, c: float = 1.0
) -> Tensor:
    """The probability-flow ODE of N(mean, c I) solved for x = a x_0 + s eps, any (a, s) [Song21 §4.3].

    Every parameterisation (VE a = 1, VP a = 1 / sqrt(1 + sigma^2), flow matching a = 1 - s) is the VE
    one scaled: x / a = x_0 + (s / a) eps. Along the VE flow of N(mean, c I) (``gaussian_flow``) the
    standardised value (x_VE - mean) / sqrt(c + sigma^2) is constant; scaled by a it reads
    (x - a mean) / sqrt(a^2 c + s^2), which stays defined at a = 0 (flow matching's pure noise).
    """
    scale = math.sqrt(a_to**2 * c + s_to**2) / math.sqrt(a_from**2 * c + s_from**2)
    return a_to * mean + (x - a_from * mean) * scale


def gaussian_flow(x: Tensor, sigma_from: float, sigma_to: float, mean: Tensor | float = 0.0, c: float = 1.0) -> Tensor:
    """The probability-flow ODE dx/dsigma = eps*(x, sigma) of N(mean, c I), solved [Song21 §4.3].

    With x_sigma = x_0 + sigma eps, eps*(x, sigma) = sigma (x - mean) / (c + sigma^2), so
    x(sigma_to) = mean + (x(sigma_from) - mean) sqrt((c + sigma_to^2) / (c + sigma_from^2)).
    """
    return gaussian_flow_at(x, 1.0, sigma_from, 1.0, sigma_to, mean, c)
