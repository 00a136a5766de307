"""The expected L_simple of the exact eps* equals its closed form [Ho20 alg. 1, eq. 14].

The data are Gaussian.

For x_0 ~ N(m, diag(s_d^2)) and x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eps and x_t
are jointly Gaussian, so eps*(x_t) = E[eps | x_t] and the residual variance is, per coordinate,
1 - (1 - alpha_bar_t) / (alpha_bar_t s_d^2 + 1 - alpha_bar_t)
  = alpha_bar_t s_d^2 / (alpha_bar_t s_d^2 + 1 - alpha_bar_t).
Algorithm 1 draws t uniformly from 1..T, so
E[L_simple(eps*)] = (1/T) sum_t sum_d alpha_bar_t s_d^2 / (alpha_bar_t s_d^2 + 1 - alpha_bar_t).
Monte Carlo: ``ddpm.beta.losses.l_simple`` with ``ddpm.oracles.OptimalEps`` over Algorithm 1's draws.
"""

from __future__ import annotations

import torch

from ddpm.beta.losses import l_simple
from ddpm.beta.schedule import Schedule, linear_schedule
from ddpm.oracles import GaussianMixture, OptimalEps
from ddpm.stats import MonteCarloCheck, check_mc, mean_stderr

MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
STD = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
DATA = GaussianMixture(torch.ones(1, dtype=torch.float64), MEAN[None], torch.diag(STD**2)[None])
N = 50000


def expected_l_simple(schedule: Schedule, std: torch.Tensor = STD) -> float:
    """(1/T) sum_t sum_d alpha_bar_t s_d^2 / (alpha_bar_t s_d^2 + 1 - alpha_bar_t) [Ho20 eq. 14].

    The loss of eps*.
    """
    ab, omab = schedule.alpha_bar[1:, None], schedule.one_minus_alpha_bar[1:, None]
    return float((ab * std**2 / (ab * std**2 + omab)).sum(1).mean())


def check_expected_l_simple(
    n: int, generator: torch.Generator, *, eps_model=None, schedule: Schedule | None = None, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """Algorithm 1's loss of eps*, averaged over n draws of (x_0, t, eps), against ``expected_l_simple``."""
    schedule = linear_schedule(1000) if schedule is None else schedule
    eps_model = OptimalEps(DATA, schedule) if eps_model is None else eps_model
    x0 = DATA.sample(n, generator)  # line 2
    t = torch.randint(1, schedule.T + 1, (n,), generator=generator)  # line 3
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)  # line 4
    values = l_simple(eps_model, schedule, x0, t, eps)  # line 5
    return check_mc(
        "E[L_simple(eps*)] vs its closed form",
        *mean_stderr(values),
        expected_l_simple(schedule),
        n,
        raise_on_fail=raise_on_fail,
    )
