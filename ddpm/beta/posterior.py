"""The forward-process posterior and its eps-parameterisation [Ho20 eqs. 6-7, 9-11].

The posterior is q(x_{t-1} | x_t, x_0) (eqs. 6-7); the eps-parameterisation is eqs. 9-11.
"""

from __future__ import annotations

from torch import Tensor

from ddpm.beta.schedule import Schedule, at

__all__ = ["posterior_mean_var", "x0_from_eps", "mu_from_eps"]


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
