"""The forward-process posterior and its eps-parameterisation [Ho20 eqs. 6-7, 9-11].

The posterior is q(x_{t-1} | x_t, x_0) (eqs. 6-7); the eps-parameterisation is eqs. 9-11.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule, at

__all__ = [
    "posterior_mean_var",
    "x0_from_eps",
    "mu_from_eps",
    "StridedPosterior",
    "strided_posterior",
    "ddim_coefficients",
    "PREDICTIONS",
    "x0_eps_from_output",
]

PREDICTIONS = ("epsilon", "sample", "v_prediction")


def posterior_mean_var(schedule: Schedule, x0: Tensor, xt: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
    """mu_tilde_t(x_t, x_0) and beta_tilde_t of q(x_{t-1} | x_t, x_0) [Ho20 eq. 7].

    mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
             + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t.
    """
    s = schedule
    return at(s.posterior_coef_x0, t, xt) * x0 + at(s.posterior_coef_xt, t, xt) * xt, at(s.beta_tilde, t, xt)


def x0_from_eps(schedule: Schedule, xt: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), eq. 4 solved for x_0 [Ho20 eq. 9]."""
    return (xt - at(schedule.one_minus_alpha_bar.sqrt(), t, xt) * eps) / at(schedule.alpha_bar.sqrt(), t, xt)


def mu_from_eps(schedule: Schedule, xt: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) [Ho20 eqs. 10-11]."""
    return (xt - at(schedule.eps_coef, t, xt) * eps) / at(schedule.alpha.sqrt(), t, xt)


class StridedPosterior(NamedTuple):
    """The weights of x_0 and x_t in mu_tilde, beta_tilde and beta for one step t -> s [Nichol21 §4].

    Each a float64 tensor.
    """

    coef_x0: Tensor
    coef_xt: Tensor
    beta_tilde: Tensor
    beta: Tensor


def strided_posterior(alpha_bar_t: Tensor | float, alpha_bar_s: Tensor | float) -> StridedPosterior:
    """q(x_s | x_t, x_0) for any s < t: eq. 7 with beta_t := 1 - alpha_bar_t / alpha_bar_s [Nichol21 §4].

    The respaced chain of Nichol & Dhariwal keeps only the listed steps; its step t -> s is eq. 7 of Ho
    et al. with alpha_t replaced by alpha_bar_t / alpha_bar_s. alpha_bar_s = 1 is the step to x_0.
    """
    ab_t = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    ab_s = torch.as_tensor(alpha_bar_s, dtype=torch.float64)
    alpha = ab_t / ab_s
    beta = 1 - alpha
    return StridedPosterior(
        ab_s.sqrt() * beta / (1 - ab_t), alpha.sqrt() * (1 - ab_s) / (1 - ab_t), (1 - ab_s) / (1 - ab_t) * beta, beta
    )


def ddim_coefficients(
    alpha_bar_t: Tensor | float, alpha_bar_s: Tensor | float, eta: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """(weight of x_0, weight of eps, sigma) of DDIM's step t -> s [Song21 eqs. 12, 16].

    x_s = sqrt(alpha_bar_s) x_0 + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z, with
    sigma = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s).
    eta = 0 is the deterministic DDIM, eta = 1 the DDPM posterior with beta_tilde.
    """
    ab_t = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    ab_s = torch.as_tensor(alpha_bar_s, dtype=torch.float64)
    sigma = float(eta) * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).clamp_min(0).sqrt()
    return ab_s.sqrt(), (1 - ab_s - sigma**2).clamp_min(0).sqrt(), sigma


def x0_eps_from_output(
    prediction: str, alpha_bar_t: Tensor | float, xt: Tensor, output: Tensor
) -> tuple[Tensor, Tensor]:
    """(x_0, eps) that a network's output means at x_t: eps [Ho20 eq. 9], x_0, or v [Salimans22 §4].

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0,
    so x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v and eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v.
    """
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    a, b = ab.sqrt().to(xt.dtype), (1 - ab).sqrt().to(xt.dtype)
    if prediction == "epsilon":
        return (xt - b * output) / a, output
    if prediction == "sample":
        return output, (xt - a * output) / b
    if prediction == "v_prediction":
        return a * xt - b * output, b * xt + a * output
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
