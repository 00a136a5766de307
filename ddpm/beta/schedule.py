"""Noise schedules [Ho20 §2, §4].

beta, alpha, alpha_bar and beta_tilde, indexed by the paper's t = 0..T.

Every coefficient is a float64 tensor of length T + 1 whose entry ``t`` belongs to step ``t``:
``schedule.beta[t]`` is beta_t for t = 1..T. Entry 0 is the convention for "no step taken":
beta_0 = 0, alpha_0 = alpha_bar_0 = 1, beta_tilde_0 = 0. Code that needs a coefficient at a batch
of steps calls :func:`at`, which gathers it and casts it to the dtype of the data it scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

__all__ = [
    "Schedule",
    "linear_schedule",
    "scaled_linear_schedule",
    "cosine_schedule",
    "zero_terminal_snr",
    "reverse_variance",
    "at",
    "per_sample",
]

SIGMA2_CHOICES = ("beta", "beta_tilde")


@dataclass(frozen=True, eq=False)
class Schedule:
    """A variance schedule beta_1..beta_T and its derived coefficients [Ho20 §2].

    ``betas`` holds beta_1..beta_T (length T, each in (0, 1)); it is stored in float64. The
    derived coefficients are float64 tensors of length T + 1, indexed by the paper's t.

    Example::

        >>> s = linear_schedule(T=1000)
        >>> float(s.alpha_bar[1000])  # about 4e-5 [Ho20 §4]
        4.03...e-05
    """

    betas: Tensor

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-D tensor of length T >= 1, got shape {tuple(betas.shape)}")
        betas = betas.to(torch.float64)
        bad = ~(torch.isfinite(betas) & (betas > 0) & (betas < 1))
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"beta_{i + 1} = {float(betas[i])!r} is outside the open interval (0, 1)")
        object.__setattr__(self, "betas", betas)

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return self.betas.numel()

    def to(self, device: torch.device | str) -> Schedule:
        """The same schedule with its coefficients (still float64) on ``device``."""
        return Schedule(self.betas.to(device))

    @cached_property
    def beta(self) -> Tensor:
        """beta_t, with beta_0 = 0."""
        return self._pad(self.betas)

    @cached_property
    def alpha(self) -> Tensor:
        """alpha_t = 1 - beta_t [Ho20 §2]."""
        return 1 - self.beta

    @cached_property
    def log_alpha_bar(self) -> Tensor:
        """log alpha_bar_t = sum_{s<=t} log(1 - beta_s), summed in log space for precision."""
        return torch.cumsum(torch.log1p(-self.beta), 0)

    @cached_property
    def alpha_bar(self) -> Tensor:
        """alpha_bar_t = prod_{s<=t} alpha_s [Ho20 §2, before eq. 4]; alpha_bar_0 = 1."""
        return torch.exp(self.log_alpha_bar)

    @cached_property
    def one_minus_alpha_bar(self) -> Tensor:
        """1 - alpha_bar_t, computed as -expm1(log alpha_bar_t), free of cancellation near t = 0."""
        return 0.0 - torch.expm1(self.log_alpha_bar)  # 0.0 - ... keeps t = 0 at +0, not -0

    @cached_property
    def beta_tilde(self) -> Tensor:
        """beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t [Ho20 eq. 7]; 0 at t = 0, 1."""
        omab = self.one_minus_alpha_bar
        return self._pad(omab[:-1] / omab[1:] * self.betas)

    @cached_property
    def posterior_coef_x0(self) -> Tensor:
        """sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t), the weight of x_0 in mu_tilde [Ho20 eq. 7].

        0 at t = 0.
        """
        return self._pad(self.alpha_bar[:-1].sqrt() * self.betas / self.one_minus_alpha_bar[1:])

    @cached_property
    def posterior_coef_xt(self) -> Tensor:
        """sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) [Ho20 eq. 7].

        The weight of x_t in mu_tilde.
        """
        omab = self.one_minus_alpha_bar
        return self._pad(self.alpha[1:].sqrt() * omab[:-1] / omab[1:])

    @cached_property
    def eps_coef(self) -> Tensor:
        """beta_t / sqrt(1 - alpha_bar_t), the weight of eps in mu_theta [Ho20 eq. 11]; 0 at t = 0."""
        return self._pad(self.betas / self.one_minus_alpha_bar[1:].sqrt())

    def _pad(self, values: Tensor) -> Tensor:
        """Values for t = 1..T, with a 0 in front for t = 0."""
        return torch.cat([values.new_zeros(1), values])

    @cached_property
    def snr(self) -> Tensor:
        """The signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t); infinite at t = 0."""
        return self.alpha_bar / self.one_minus_alpha_bar


def _check_T(T: int) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    return T


def _check_beta(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"{name} = {value!r} is outside the open interval (0, 1)")
    return value


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
    """beta_t rising linearly from beta_1 to beta_T over T steps [Ho20 §4]."""
    T = _check_T(T)
    beta_1, beta_T = _check_beta("beta_1", beta_1), _check_beta("beta_T", beta_T)
    if beta_1 > beta_T:
        raise ValueError(f"beta_1 = {beta_1!r} must not exceed beta_T = {beta_T!r}")
    return Schedule(torch.linspace(beta_1, beta_T, T, dtype=torch.float64))


def scaled_linear_schedule(T: int = 1000, beta_1: float = 0.00085, beta_T: float = 0.012) -> Schedule:
    """sqrt(beta_t) rising linearly from sqrt(beta_1) to sqrt(beta_T) over T steps [Rombach22 LDM].

    The "scaled_linear" schedule of latent diffusion (CompVis/latent-diffusion, ``make_beta_schedule``:
    ``torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n_timestep) ** 2``).
    """
    T = _check_T(T)
    beta_1, beta_T = _check_beta("beta_1", beta_1), _check_beta("beta_T", beta_T)
    if beta_1 > beta_T:
        raise ValueError(f"beta_1 = {beta_1!r} must not exceed beta_T = {beta_T!r}")
    return Schedule(torch.linspace(math.sqrt(beta_1), math.sqrt(beta_T), T, dtype=torch.float64) ** 2)


def zero_terminal_snr(alpha_bar: Tensor) -> Tensor:
    """alpha_bar_0..T rescaled so that alpha_bar_T = 0 and alpha_bar_1 is kept [Lin24 alg. 1].

    sqrt(alpha_bar_t) is mapped affinely: shifted so its last value is 0, scaled so its first (t = 1) is
    unchanged. ``alpha_bar`` is a schedule's ``alpha_bar`` (t = 0..T, entry 0 = 1, T >= 2); float64 out,
    entry 0 still 1. The result is no :class:`Schedule`: its beta_T = 1 lies outside (0, 1).
    """
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if ab.ndim != 1 or ab.numel() < 3:
        raise ValueError(f"alpha_bar must be a 1-D tensor of length T + 1 >= 3, got shape {tuple(ab.shape)}")
    root = ab[1:].sqrt()
    first, last = root[0].clone(), root[-1].clone()
    if not first > last:
        raise ValueError(
            f"alpha_bar must fall from t = 1 to t = T to be rescaled, got {float(ab[1])!r} -> {float(ab[-1])!r}"
        )
    root = (root - last) * (first / (first - last))
    return torch.cat([ab.new_ones(1), root**2])


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """alpha_bar_t = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2) [ND21 eq. 17].

    beta capped at max_beta.
    """
    T = _check_T(T)
    max_beta = _check_beta("max_beta", max_beta)
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"s = {s!r} must be a finite offset >= 0")
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # alpha_bar_t = f(t) / f(0)
    return Schedule((1 - f[1:] / f[:-1]).clamp(max=max_beta))  # beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}


def reverse_variance(schedule: Schedule, sigma2: str = "beta") -> Tensor:
    """sigma_t^2 of p_theta(x_{t-1} | x_t), "beta" or "beta_tilde" [Ho20 §3.2], indexed by t.

    For t >= 2, "beta" is beta_t and "beta_tilde" is beta_tilde_t. At t = 1 both give beta_tilde_2
    (beta_1 when T = 1), the convention of the paper's released code, which sets the first
    (log-)variance of either choice to the posterior variance of the second step "to get a better
    decoder log likelihood" (hojonathanho/diffusion, diffusion_utils_2.py, ``p_mean_variance``:
    ``np.append(self.posterior_variance[1], self.betas[1:])`` for "fixedlarge",
    ``posterior_log_variance_clipped`` for "fixedsmall"; openai/improved-diffusion,
    gaussian_diffusion.py, the same). beta_tilde_1 = 0 would make the decoder a point mass, and
    beta_1 a narrower decoder (0.41 bits/dim worse for the linear schedule with a mean exactly at x_0,
    tests/test_core.py): only this choice gives bits/dim comparable with published ones.
    The sampler adds no noise at t = 1 [Ho20 alg. 2, line 3]: sigma_1 matters only to the decoder
    term L_0 of the bound [Ho20 eq. 13].
    """
    if sigma2 not in SIGMA2_CHOICES:
        raise ValueError(f"sigma2 must be one of {SIGMA2_CHOICES}, got {sigma2!r}")
    var = (schedule.beta if sigma2 == "beta" else schedule.beta_tilde).clone()
    var[1] = schedule.beta_tilde[2] if schedule.T >= 2 else schedule.beta[1]
    return var


def per_sample(values: Tensor, x: Tensor) -> Tensor:
    """``values`` of shape (batch,) viewed as (batch, 1, ..., 1) to broadcast over a batch ``x``.

    A 0-d tensor as is.
    """
    return values.reshape(-1, *([1] * (x.ndim - 1))) if values.ndim else values


def at(coefficient: Tensor, t: Tensor | int, x: Tensor) -> Tensor:
    """``coefficient[t]`` cast to ``x``'s dtype and device, shaped to broadcast over a batch ``x``.

    ``t`` is an int (one step for the whole batch) or an integer tensor of shape (batch,).
    """
    return per_sample(coefficient.to(x.device)[t].to(x.dtype), x)
