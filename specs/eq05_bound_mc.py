"""The closed-form bound (eq. 5) equals a Monte Carlo estimate of eq. 3 [Ho20 eqs. 3, 5].

The data are Gaussian.

Data x_0 ~ N(m, diag(s_d^2)); the reverse model p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), beta_t I)
with mu_theta of eq. 11 from the exact eps* of the data (linear in x_t, ``OptimalEps``), the decoder
p_theta(x_0 | x_1) the continuous Gaussian N(mu_theta(x_1, 1), beta_1 I), and p(x_T) = N(0, I).

* Eq. 3, E_q[-log p(x_T) - sum_{t>=1} log p_theta(x_{t-1} | x_t) / q(x_t | x_{t-1})], is estimated
  by running the forward chain (``q_step_sample``) and summing Gaussian log-densities whose means
  come from ``q_step_mean_var`` and ``mu_from_eps``.
* Eq. 5, L_T + sum_{t>=2} L_{t-1} + L_0, is integrated in closed form and bound to the code:
  mu_tilde(x_0, x_t) - mu_theta(x_t) is affine in (x_0, x_t), its coefficients read off ``ddpm``'s
  ``posterior_mean_var`` and ``mu_from_eps`` at (x_0, x_t) = (0, 0), (1, 0), (0, 1); its second
  moment follows from the joint Gaussian law of (x_0, x_t); and as ``normal_kl`` is affine in the
  squared mean difference, E[L_{t-1}] = ``normal_kl``(0, beta_tilde_t, sqrt(E[(mu_tilde - mu_theta)^2]), beta_t).
  Likewise E[L_T] = ``prior_kl`` at x_0 = sqrt(E[x_0^2]), and L_0 = E[-log N(x_0; mu_theta(x_1, 1), beta_1)]
  from the same second moments. (``ddpm.beta.losses.vlb_terms`` uses the discretised image decoder at
  t = 1, which does not apply to continuous data; its t >= 2 terms are the ``normal_kl`` used here,
  and its decoder and ``negative_elbo`` as a whole are bound to eq. 3 on grid data in claim eq13.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.beta.forward import q_step_mean_var, q_step_sample
from ddpm.beta.losses import normal_kl, prior_kl
from ddpm.beta.posterior import mu_from_eps, posterior_mean_var
from ddpm.beta.schedule import Schedule
from ddpm.oracles import GaussianMixture, OptimalEps
from ddpm.stats import MonteCarloCheck, check_mc, mean_stderr

MEAN = torch.tensor([0.8, -1.5], dtype=torch.float64)
STD = torch.tensor([0.3, 1.2], dtype=torch.float64)
DATA = GaussianMixture(torch.ones(1, dtype=torch.float64), MEAN[None], torch.diag(STD**2)[None])
# A short schedule, so that every term of eq. 5 (L_T included) is large against the sampling error.
SCHEDULE = Schedule(torch.linspace(0.05, 0.5, 8, dtype=torch.float64))
N = 50000


def _log_normal(x: Tensor, mean: Tensor, var: Tensor | float) -> Tensor:
    """log N(x; mean, var I), summed over coordinates."""
    var = torch.as_tensor(var, dtype=x.dtype)
    return (-0.5 * ((x - mean) ** 2 / var + torch.log(2 * math.pi * var))).sum(1)


def eq3_per_trajectory(schedule: Schedule, x0: Tensor, generator: torch.Generator) -> Tensor:
    """Eq. 3's integrand along one forward trajectory per row [Ho20 eq. 3].

    -log p(x_T) - sum_t log p_theta(x_{t-1} | x_t) / q(x_t | x_{t-1}).
    """
    eps_model = OptimalEps(DATA, schedule)
    total, x_prev = torch.zeros(x0.shape[0], dtype=x0.dtype), x0
    for t in range(1, schedule.T + 1):
        xt = q_step_sample(schedule, x_prev, t, torch.randn(x0.shape, generator=generator, dtype=x0.dtype))
        q_mean, q_var = q_step_mean_var(schedule, x_prev, t)
        steps = torch.full((x0.shape[0],), t)
        p_mean = mu_from_eps(schedule, xt, t, eps_model(xt, steps))
        total -= _log_normal(x_prev, p_mean, schedule.beta[t]) - _log_normal(xt, q_mean, q_var)
        x_prev = xt
    return total - _log_normal(x_prev, torch.zeros_like(x_prev), 1.0)


def _affine_second_moment(f, schedule: Schedule, t: int) -> Tensor:
    """E[f(x_0, x_t)^2] per coordinate for f affine in (x_0, x_t), under x_0 ~ DATA and q(x_t | x_0)."""
    zero, one = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    c = f(zero, zero)[0]
    a, b = f(one, zero)[0] - c, f(zero, one)[0] - c
    ab, omab = schedule.alpha_bar[t], schedule.one_minus_alpha_bar[t]
    mean = a * MEAN + b * ab.sqrt() * MEAN + c
    var = a**2 * STD**2 + b**2 * (ab * STD**2 + omab) + 2 * a * b * ab.sqrt() * STD**2
    return var + mean**2


def eq5_closed_form(schedule: Schedule, *, posterior_var: str = "beta_tilde", prior: bool = True) -> float:
    """L_T + sum_{t>=2} L_{t-1} + L_0 in expectation over the data, in nats [Ho20 eq. 5].

    ``posterior_var`` and ``prior`` exist for planted deviations only.
    """
    eps_model = OptimalEps(DATA, schedule)

    def mu_theta(xt: Tensor, t: int) -> Tensor:
        return mu_from_eps(schedule, xt, t, eps_model(xt, torch.full((xt.shape[0],), t)))

    total = float(prior_kl(schedule, (MEAN**2 + STD**2).sqrt()[None])[0]) if prior else 0.0  # L_T
    for t in range(2, schedule.T + 1):  # L_{t-1}

        def gap(x0, xt, t=t):
            return posterior_mean_var(schedule, x0, xt, t)[0] - mu_theta(xt, t)

        var1 = schedule.beta_tilde[t] if posterior_var == "beta_tilde" else schedule.beta[t]
        rms = _affine_second_moment(gap, schedule, t).sqrt()
        total += float(normal_kl(torch.zeros_like(rms), var1, rms, schedule.beta[t]).sum())
    residual = _affine_second_moment(lambda x0, x1: x0 - mu_theta(x1, 1), schedule, 1)  # L_0
    total += float((0.5 * torch.log(2 * math.pi * schedule.beta[1]) + residual / (2 * schedule.beta[1])).sum())
    return total


def check_bound(n: int, generator: torch.Generator, *, raise_on_fail: bool = True, **planted) -> MonteCarloCheck:
    """The mean of eq. 3 over n forward trajectories against eq. 5 in closed form.

    ``planted``: see ``eq5_closed_form``.
    """
    x0 = DATA.sample(n, generator)
    values = eq3_per_trajectory(SCHEDULE, x0, generator)
    return check_mc(
        "eq. 3 by Monte Carlo vs eq. 5 in closed form",
        *mean_stderr(values),
        eq5_closed_form(SCHEDULE, **planted),
        n,
        raise_on_fail=raise_on_fail,
    )
