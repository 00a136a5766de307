"""The forward (noising) process: q(x_t | x_{t-1}) [Ho20 eq. 2] and q(x_t | x_0) [Ho20 eq. 4].

Randomness is passed in: the samplers take the standard normal noise ``eps`` itself, so that a
caller who holds ``eps`` can also form the regression target of eq. 14.
"""

from __future__ import annotations

from torch import Tensor

from ddpm.beta.schedule import Schedule, at

__all__ = ["q_step_mean_var", "q_step_sample", "q_mean_var", "q_sample"]


def q_step_mean_var(schedule: Schedule, x_prev: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
    """Mean sqrt(1 - beta_t) x_{t-1} and variance beta_t of q(x_t | x_{t-1}) [Ho20 eq. 2]."""
    return at(schedule.alpha.sqrt(), t, x_prev) * x_prev, at(schedule.beta, t, x_prev)


def q_step_sample(schedule: Schedule, x_prev: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, a draw of q(x_t | x_{t-1}) [Ho20 eq. 2]."""
    return at(schedule.alpha.sqrt(), t, x_prev) * x_prev + at(schedule.beta.sqrt(), t, x_prev) * eps


def q_mean_var(schedule: Schedule, x0: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
    """Mean sqrt(alpha_bar_t) x_0 and variance 1 - alpha_bar_t of q(x_t | x_0) [Ho20 eq. 4]."""
    return at(schedule.alpha_bar.sqrt(), t, x0) * x0, at(schedule.one_minus_alpha_bar, t, x0)


def q_sample(schedule: Schedule, x0: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, a draw of q(x_t | x_0) [Ho20 eq. 4]."""
    return at(schedule.alpha_bar.sqrt(), t, x0) * x0 + at(schedule.one_minus_alpha_bar.sqrt(), t, x0) * eps
