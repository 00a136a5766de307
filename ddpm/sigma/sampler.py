"""The gamma / mu sampler family of the sigma world [PY23 App. A; 6.S183 Q2, Q3].

DDIM, DDPM-like and accelerated steps.

One step from level sigma to the next level sigma' < sigma (Permenter and Yuan 2023, arXiv 2306.04848, App. A):

    sigma_p = (sigma' / sigma^mu)^(1 / (1 - mu)),   eta = sqrt(sigma'^2 - sigma_p^2),
    x <- x - (sigma - sigma_p) eps_bar + eta z,     z ~ N(0, I),

with eps_bar = gam eps_theta(x_t, sigma_t) + (1 - gam) eps_theta(x_{t+1}, sigma_{t+1}), the model's
prediction at this step mixed with the one of the step before (eps_bar = eps at the first step).
mu = 0 gives sigma_p = sigma', eta = 0: the deterministic step; mu = 1/2 gives sigma_p = sigma'^2 / sigma,
which on the sigma twin of a beta schedule is Algorithm 2 with sigma_t^2 = beta_tilde_t
(``specs/s183_mu_step.py``). The presets: ``DDIM`` (gam = 1, mu = 0), ``DDPM`` (gam = 1, mu = 1/2)
and ``ACCEL`` (gam = 2, mu = 0), the notebook's accelerated sampler.

``eps_model(x, sigma)`` is any callable predicting eps from x and the levels sigma, a float tensor of
shape (batch,) in x's dtype (see ``ddpm.nets.SigmaMLP`` and ``ddpm.oracles.SigmaOptimalEps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, TypedDict

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule
from ddpm.sigma.schedule import batch_scale, check_sigmas, sigma_twin

__all__ = [
    "SigmaEpsModel",
    "VPEpsAsSigma",
    "DDIM",
    "DDPM",
    "ACCEL",
    "PRESETS",
    "step_levels",
    "gam_mu_step",
    "eps_bar",
    "gam_mu_steps",
    "gam_mu_sample",
    "GaussianLaw",
    "gaussian_gam_recursion",
    "gaussian_gam_law",
]

SigmaEpsModel = Callable[[Tensor, Tensor], Tensor]


class SamplerSettings(TypedDict):
    """The keyword arguments (gam, mu) that name a sampler of the family, e.g. ``**DDIM``."""

    gam: float
    mu: float


DDIM: SamplerSettings = dict(gam=1.0, mu=0.0)
DDPM: SamplerSettings = dict(gam=1.0, mu=0.5)
ACCEL: SamplerSettings = dict(gam=2.0, mu=0.0)
PRESETS: dict[str, SamplerSettings] = {"ddim": DDIM, "ddpm": DDPM, "accel": ACCEL}


class VPEpsAsSigma:
    """A beta-world eps_theta(x_t, t) as a sigma-world eps(x, sigma_t) [Song21 §4.3].

    eps(x, sigma_t) = eps_theta(sqrt(alpha_bar_t) x, t).

    x_VE = x_VP / sqrt(alpha_bar_t) and sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) (the bridge of
    ``ddpm.sigma.schedule``); the noise eps is the same in both worlds, so the prediction is passed on
    as is. ``sigma`` must hold levels of the schedule's sigma twin (t = 1..T), as the walks of
    ``sample_sigmas(sigma_twin(schedule)[1:], k)`` do; each is matched to its t within 1e-4 relative.
    """

    def __init__(self, eps_model: Callable[[Tensor, Tensor], Tensor], schedule: Schedule):
        self.eps_model, self.schedule = eps_model, schedule
        self.twin = sigma_twin(schedule)
        self.log_twin = self.twin[1:].log()

    def t_of(self, sigma: Tensor) -> Tensor:
        """The steps t in 1..T whose sigma_t are the given levels (nearest in log sigma)."""
        log_s = torch.as_tensor(sigma, dtype=torch.float64).log().to(self.log_twin.device)
        i = (
            torch.searchsorted(self.log_twin, log_s).clamp(1, self.schedule.T - 1)
            if self.schedule.T > 1
            else torch.zeros_like(log_s, dtype=torch.long)
        )
        if self.schedule.T > 1:
            i = torch.where((log_s - self.log_twin[i - 1]).abs() < (log_s - self.log_twin[i]).abs(), i - 1, i)
        if not ((log_s - self.log_twin[i]).abs() <= 1e-4).all():
            raise ValueError(
                f"sigma = {torch.as_tensor(sigma).flatten()[:4].tolist()} holds levels that are not "
                "levels of the schedule's sigma twin"
            )
        return i + 1

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        t = self.t_of(sigma).to(x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        return self.eps_model(x * batch_scale(self.schedule.alpha_bar.to(x.device)[t].sqrt(), x), t)


def _check_mu(mu: float) -> float:
    mu = float(mu)
    if not (math.isfinite(mu) and 0 <= mu < 1):
        raise ValueError(f"mu = {mu!r} must lie in [0, 1): 0 is deterministic, 1/2 DDPM-like")
    return mu


def _check_gam(gam: float) -> float:
    gam = float(gam)
    if not math.isfinite(gam):
        raise ValueError(f"gam = {gam!r} must be a finite number (1 is DDIM, 2 the accelerated sampler)")
    return gam


def step_levels(sigma, sigma_next, mu: float = 0.0):
    """(sigma_p, eta) [PY23 App. A].

    sigma_p = (sigma' / sigma^mu)^(1/(1-mu)), eta = sqrt(sigma'^2 - sigma_p^2).

    Computed as sigma' (sigma' / sigma)^(mu / (1 - mu)), the same number with fewer roundings (sigma'^2 / sigma
    at mu = 1/2). Floats give floats (computed in float64), tensors give float64 tensors. sigma_p <= sigma' whenever
    sigma' <= sigma, and sigma_p^2 + eta^2 = sigma'^2: the step keeps the marginal noise level.
    """
    mu = _check_mu(mu)
    if isinstance(sigma, Tensor) or isinstance(sigma_next, Tensor):
        s_t, sn_t = (torch.as_tensor(v, dtype=torch.float64) for v in (sigma, sigma_next))
        p_t = sn_t * (sn_t / s_t) ** (mu / (1 - mu))
        return p_t, (sn_t**2 - p_t**2).clamp_min(0).sqrt()
    s, sn = float(sigma), float(sigma_next)
    p = sn * (sn / s) ** (mu / (1 - mu))  # = (sigma' / sigma^mu)^(1/(1-mu)), one rounding fewer
    return p, math.sqrt(max(sn * sn - p * p, 0.0))


def _per_sample(value, x: Tensor) -> Tensor | float:
    """A float as is.

    A tensor (a scalar or one per sample) shaped to broadcast over the batch x, in x's dtype.
    """
    if not isinstance(value, Tensor):
        return value
    v = value.to(device=x.device, dtype=x.dtype)
    return v.reshape(-1, *([1] * (x.ndim - 1))) if v.ndim else v


def gam_mu_step(x: Tensor, sigma, sigma_next, eps_bar: Tensor, mu: float = 0.0, z: Tensor | None = None) -> Tensor:
    """x - (sigma - sigma_p) eps_bar + eta z, one step of the gamma / mu family [PY23 App. A; 6.S183 Q2].

    ``sigma`` and ``sigma_next`` are floats or tensors (one per sample); the coefficients are computed
    in float64. ``z`` is the noise, required when mu > 0 (eta > 0); mu = 0 is the deterministic step
    x - (sigma - sigma') eps_bar, DDIM's at gam = 1.
    """
    p, eta = step_levels(sigma, sigma_next, mu)
    d = sigma - p if not isinstance(p, Tensor) else torch.as_tensor(sigma, dtype=torch.float64) - p
    out = x - _per_sample(d, x) * eps_bar
    if float(mu) > 0:
        if z is None:
            raise ValueError(f"mu = {mu!r} > 0 adds noise eta z: pass the noise z (a tensor shaped like x)")
        out = out + _per_sample(eta, x) * z
    return out


def eps_bar(eps: Tensor, eps_prev: Tensor | None, gam: float) -> Tensor:
    """gam eps + (1 - gam) eps_prev; eps when there is no step before [6.S183 Q3; PY23 App. A]."""
    if eps_prev is None:
        return eps
    return gam * eps + (1 - gam) * eps_prev


def _walk(sigmas) -> Tensor:
    s = check_sigmas(sigmas, increasing=False)
    if not (s[:-1] > 0).all():
        raise ValueError(
            f"every level but the last must be > 0 (eps_theta is undefined at sigma = 0), got {s.tolist()}"
        )
    return s


@torch.no_grad()
def gam_mu_steps(
    eps_model: SigmaEpsModel,
    sigmas: Tensor | Sequence[float],
    x: Tensor | None = None,
    *,
    shape: Sequence[int] | None = None,
    gam: float = 1.0,
    mu: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Iterator[Tensor]:
    """Yield x after each step of the gamma / mu sampler [PY23 App. A; 6.S183 Q2, Q3].

    The steps run over the decreasing ``sigmas``.

    Starts at x = sigmas[0] z, z ~ N(0, I) of ``shape`` (unless ``x`` is given) and takes
    len(sigmas) - 1 steps, the i-th from sigmas[i] to sigmas[i + 1]. Noise comes from ``generator``
    in this order: the start z (when ``x`` is not given), then, when mu > 0, one z per step.
    Each step is :func:`gam_mu_step`, its coefficients in float64; nothing in the loop reads a tensor on the host.
    """
    s = _walk(sigmas)
    gam, mu = _check_gam(gam), _check_mu(mu)
    if x is None:
        if shape is None:
            raise ValueError("pass the start x or the shape (batch, ...) of the samples")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        x = float(s[0]) * torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    levels = s.tolist()
    batch_sigmas = [torch.full((x.shape[0],), v, device=x.device, dtype=x.dtype) for v in levels[:-1]]
    eps_prev = None
    for i in range(len(levels) - 1):
        eps = eps_model(x, batch_sigmas[i])
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if mu > 0 else None
        x = gam_mu_step(x, levels[i], levels[i + 1], eps_bar(eps, eps_prev, gam), mu, z)
        eps_prev = eps
        yield x


def gam_mu_sample(
    eps_model: SigmaEpsModel,
    sigmas: Tensor | Sequence[float],
    x: Tensor | None = None,
    *,
    shape: Sequence[int] | None = None,
    gam: float = 1.0,
    mu: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The last x of :func:`gam_mu_steps`: samples at level sigmas[-1] [PY23 App. A; 6.S183 Q2, Q3].

    ``gam_mu_sample(model, sample_sigmas(sigmas, 10), shape=(2000, 2), **ACCEL, generator=g)`` is the
    notebook's 10-step accelerated sampler.
    """
    out = x
    for step in gam_mu_steps(
        eps_model, sigmas, x, shape=shape, gam=gam, mu=mu, generator=generator, device=device, dtype=dtype
    ):
        out = step
    assert out is not None  # at least two levels (check_sigmas), so at least one step
    return out


class GaussianLaw(NamedTuple):
    """The law of the sampler's output, per coordinate: N(mean, std^2), the coordinates independent."""

    mean: Tensor
    std: Tensor


def gaussian_gam_recursion(
    c: float, sigmas, gam: float, x_scale: float | None = None, mu: float = 0.0
) -> tuple[float, float]:
    """(gain, var) of the sampler's output on N(m, c I) [PY23 App. A; 6.S183 Q1b].

    The output x - m is N(gain E[y_0], var).

    eps*(x, sigma) = sigma (x - m) / (c + sigma^2), so y = x - m follows the scalar linear recursion
    y_{i+1} = (1 - d_i gam a_i) y_i - d_i (1 - gam) a_{i-1} y_{i-1} + eta_i z_i, a_i = sigma_i / (c + sigma_i^2),
    d_i = sigma_i - sigma_p,i, the first step's gam taken as 1 (eps_bar = eps there). Started at
    x = x_scale z (x_scale defaults to sigmas[0]), the mean and the 2 x 2 covariance of (y_i, y_{i-1})
    propagate exactly, in float64.
    """
    s = _walk(sigmas).tolist()
    gam, mu = _check_gam(gam), _check_mu(mu)
    c = float(c)
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"c = {c!r} must be a variance >= 0")
    x_scale = s[0] if x_scale is None else float(x_scale)
    g, g_prev = 1.0, 0.0  # E[y_i] / E[y_0] and E[y_{i-1}] / E[y_0]
    v, w, u = x_scale**2, 0.0, 0.0  # the covariance [[v, w], [w, u]] of (y_i, y_{i-1})
    a_prev = 0.0
    for i in range(len(s) - 1):
        p, eta = step_levels(s[i], s[i + 1], mu)
        d, a = s[i] - p, s[i] / (c + s[i] ** 2)
        gi = 1.0 if i == 0 else gam
        A, B = 1 - d * gi * a, -d * (1 - gi) * a_prev
        g, g_prev = A * g + B * g_prev, g
        v, w, u = A * A * v + 2 * A * B * w + B * B * u + eta * eta, A * v + B * w, v
        a_prev = a
    return g, v


def gaussian_gam_law(m, c: float, sigmas, gam: float, x_scale: float | None = None, mu: float = 0.0) -> GaussianLaw:
    """The exact output law of the gamma / mu sampler on N(m, c I) [PY23 App. A; 6.S183 Q1b].

    The sampler is driven by the exact eps* of N(m, c I).

    Started at x = x_scale z (x_scale defaults to sigmas[0]), y_0 = x - m ~ N(-m, x_scale^2) and the
    scalar linear recursion of :func:`gaussian_gam_recursion` gives the output N(m (1 - gain), var)
    in each coordinate. Returns float64 ``(mean, std)``, ``mean`` shaped like ``m``. mu = 0 (the
    deterministic samplers, DDIM and the accelerated one) is the case the notebook runs; mu > 0 adds
    the noise's variance.
    """
    gain, var = gaussian_gam_recursion(c, sigmas, gam, x_scale, mu)
    m64 = torch.as_tensor(m, dtype=torch.float64)
    return GaussianLaw(mean=m64 * (1 - gain), std=torch.tensor(math.sqrt(var), dtype=torch.float64))
