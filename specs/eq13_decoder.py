"""The decoder term L_0 = -log p_theta(x_0 | x_1) on the 256-level grid [Ho20 eqs. 3, 5, 13].

And the whole bound.

Data on the grid {-1, -1 + 2/255, ..., 1}; p_theta(x_0 | x_1) gives each coordinate the mass of
N(mu_theta(x_1, 1), sigma_1^2) on its bin [x - 1/255, x + 1/255], the outer edge moved to -inf at
x = -1 and to +inf at x = 1 (eq. 13). The mass of a bin is the Gaussian integral
(erf((hi - mu) / sqrt(2) sigma) - erf((lo - mu) / sqrt(2) sigma)) / 2, whose limits at the open edges
are 1 and 0, so the 256 masses telescope to 1: p_theta(x_0 | x_1) is a distribution on the grid.
The decoder's mean is eq. 11 at t = 1 (alpha_bar_0 = 1): (x_1 - sqrt(beta_1) eps_theta(x_1, 1)) / sqrt(alpha_1);
its variance sigma_1^2 is beta_tilde_2 for either choice of sigma_t^2 (beta_1 if T = 1), the
convention of the paper's released code (``ddpm.beta.schedule.reverse_variance``).

Bindings:
1. ``ddpm.beta.losses.vlb_terms`` at t = 1 against the derived mean, sigma_1^2 and each bin's Gaussian
   integral evaluated by mpmath at 40 digits from the same float64 inputs (edge bins drawn often).
2. ``ddpm.beta.losses.negative_elbo`` end to end: its total, averaged over draws, against a Monte Carlo
   estimate of eq. 3 itself, E_q[-log p(x_T) - sum_{t>1} log p_theta(x_{t-1} | x_t) / q(x_t | x_{t-1})
   - log p_theta(x_0 | x_1) / q(x_1 | x_0)], along forward trajectories, for grid data (edges included)
   and a linear eps_theta, so that every density in eq. 3 is written here from the paper. Both sides
   estimate the same number (eq. 3 = eq. 5, claim ex32); a two-sample z holds them together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import sympy as sp
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import Tensor

import ddpm.beta.losses
import ddpm.beta.schedule
from ddpm.beta.losses import negative_elbo, vlb_terms
from ddpm.beta.schedule import Schedule
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules
from ddpm.specs._sym import Derivation, alpha_bar_prev, beta, equal, x0, xt
from ddpm.specs.eq07_posterior import BETA_TILDE
from ddpm.specs.eq12_eps_weight import MU_FROM_EPS, eps, eps_theta
from ddpm.stats import MonteCarloCheck, check_mc, mean_stderr

y, mu = sp.symbols("y mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
BETA_1 = sp.Symbol("beta_1", positive=True)
HALF = sp.Rational(1, 255)  # half a bin: the grid's step is 2/255

# The decoder's mean at t = 1, eq. 11 with alpha_bar_0 = 1 [Ho20 eqs. 11, 13].
DECODER_MEAN = MU_FROM_EPS.subs({alpha_bar_prev: 1, eps: eps_theta})


def bin_mass(lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """The integral of N(y; mu, sigma^2) over [lo, hi] [Ho20 eq. 13]."""
    return sp.integrate(sp.exp(-((y - mu) ** 2) / (2 * sigma**2)) / sp.sqrt(2 * sp.pi * sigma**2), (y, lo, hi))


def derivation() -> Derivation:
    """The bin masses in closed form, the open edges, the telescoping to 1, and the decoder's mean."""
    d = Derivation("L_0 = -log of N(mu_theta(x_1, 1), sigma_1^2) integrated over x_0's bin of the grid [Ho20 eq. 13]")
    x = sp.Symbol("x", real=True)
    inner = sp.simplify(bin_mass(x - HALF, x + HALF))
    erf_form = (sp.erf((x + HALF - mu) / (sp.sqrt(2) * sigma)) - sp.erf((x - HALF - mu) / (sp.sqrt(2) * sigma))) / 2
    d.step("An inner bin [x - 1/255, x + 1/255]: the Gaussian integral", equal(inner, erf_form, "inner bin mass"))
    lower = bin_mass(-sp.oo, -1 + HALF)
    upper = bin_mass(1 - HALF, sp.oo)
    d.step(
        "The edge bins reach to -oo (x = -1) and +oo (x = 1)",
        equal(lower, (1 + sp.erf((-1 + HALF - mu) / (sp.sqrt(2) * sigma))) / 2, "lower edge bin"),
        equal(upper, (1 - sp.erf((1 - HALF - mu) / (sp.sqrt(2) * sigma))) / 2, "upper edge bin"),
    )
    k = sp.Symbol("k", integer=True)
    edges = [-1 + HALF + 2 * HALF * j for j in range(255)]
    cdf = lambda e: (1 + sp.erf((e - mu) / (sp.sqrt(2) * sigma))) / 2  # noqa: E731
    total = cdf(edges[0]) + sum(cdf(edges[j + 1]) - cdf(edges[j]) for j in range(254)) + 1 - cdf(edges[-1])
    d.step(
        "The 256 masses telescope to 1: p_theta(x_0 | x_1) is a distribution on the grid",
        equal(total, 1, "sum of the bin masses"),
        f"(bins at x = -1 + 2k/255, {k} = 0..255)",
    )
    d.step(
        "The mean: eq. 11 at t = 1, where alpha_bar_0 = 1 and 1 - alpha_bar_1 = beta_1",
        equal(DECODER_MEAN, (xt - sp.sqrt(beta) * eps_theta) / sp.sqrt(1 - beta), "decoder mean"),
    )
    d.step(
        "sigma_1^2 = beta_tilde_2 = beta_2 (1 - alpha_bar_1) / (1 - alpha_bar_2) for either choice of sigma_t^2 "
        "(the released code's convention; beta_1 when T = 1)",
        equal(
            BETA_TILDE.subs(alpha_bar_prev, 1 - BETA_1), beta * BETA_1 / (1 - (1 - BETA_1) * (1 - beta)), "beta_tilde_2"
        ),
    )
    return d


def bin_log_mass(x: float, mean: mpmath.mpf, var: mpmath.mpf) -> mpmath.mpf:
    """log of N(mean, var)'s mass on the bin of the grid point x, the edge bins open, at 40 digits."""
    with mpmath.workdps(40):
        x, s, root2 = mpmath.mpf(x), mpmath.sqrt(var), mpmath.sqrt(2)
        lo = -mpmath.inf if x < -1 + mpmath.mpf(1) / 255 else x - mpmath.mpf(1) / 255
        hi = mpmath.inf if x > 1 - mpmath.mpf(1) / 255 else x + mpmath.mpf(1) / 255
        # P(lo < Y < hi) = (erfc((lo - m) / s sqrt 2) - erfc((hi - m) / s sqrt 2)) / 2: erfc keeps its relative
        # precision in the upper tail; below the mean, the mirrored form does
        if lo - mean > 0 or (hi - mean > 0 and lo - mean > -(hi - mean)):
            mass = (mpmath.erfc((lo - mean) / (s * root2)) - mpmath.erfc((hi - mean) / (s * root2))) / 2
        else:
            mass = (mpmath.erfc((mean - hi) / (s * root2)) - mpmath.erfc((mean - lo) / (s * root2))) / 2
        return mpmath.log(mass)


def decoder_variance(schedule: Schedule) -> mpmath.mpf:
    """sigma_1^2 at 40 digits: beta_tilde_2 from the derivation, or beta_1 when T = 1."""
    if schedule.T == 1:
        return mpmath.mpf(float(schedule.betas[0]))
    bt2 = reference(BETA_TILDE, [beta, alpha_bar_prev], float(schedule.betas[1]), alpha_bar_at(schedule, 1))
    return mpmath.mpf(float(bt2))


GRID = st.one_of(st.sampled_from([0, 255, 1, 254]), st.integers(0, 255))


def check_decoder(impl=vlb_terms, dtype: torch.dtype = torch.float64) -> None:
    """``impl`` (vlb_terms) at t = 1 is -sum_j log of the derived decoder's mass on x_0's bin.

    For either sigma_t^2.
    """

    @examples(30)
    @given(
        schedules(),
        st.lists(GRID, min_size=3, max_size=3),
        st.lists(st.floats(-3, 3), min_size=3, max_size=3),
        st.floats(-2, 2),
        st.floats(-1, 1),
        st.sampled_from(["beta", "beta_tilde"]),
    )
    @example(Schedule(torch.tensor([1e-4, 1.2e-4], dtype=torch.float64)), [0, 255, 128], [0.0] * 3, 0.0, 0.0, "beta")
    def run(schedule, ks, eps_, gain, shift, choice):
        x0_ = np.array([2 * k / 255 - 1 for k in ks])
        eps_ = np.array(eps_)
        eps_model = lambda x, t: gain * x + shift  # noqa: E731
        x, e = torch.from_numpy(x0_)[None], torch.from_numpy(eps_)[None]
        got = impl(eps_model, schedule, x, torch.tensor([1]), e, choice)
        b1 = float(schedule.betas[0])
        x1 = reference(sp.sqrt(1 - beta) * x0 + sp.sqrt(beta) * xt, [beta, x0, xt], b1, x0_, eps_)  # eq. 4 at t = 1
        mean = reference(DECODER_MEAN, [beta, xt, eps_theta], b1, x1, gain * x1 + shift)
        var = decoder_variance(schedule)
        logs = np.array([float(bin_log_mass(x, mpmath.mpf(m), var)) for x, m in zip(x0_, mean)])
        # rounding of the mean (a few ulp of its terms) moves log p by |d log p / d mean| = |z| / sigma at most
        s = float(mpmath.sqrt(var))
        z = np.maximum(np.abs(x0_ - mean), 1 / 255) / s + 1
        terms = (np.abs(x1) + math.sqrt(b1) * np.abs(gain * x1 + shift)) / math.sqrt(1 - b1)
        assert_close(
            f"L_0 with sigma^2 = {choice}, T = {schedule.T}",
            got[0],
            -logs.sum(),
            float((np.abs(logs) + z * terms / s + 1).sum()),
        )

    run()


# --- eq. 3 by Monte Carlo, written from the paper --------------------------------------------------

# A short schedule whose first two betas are equal, so that beta_tilde_2 (~ beta_1 / 2) and beta_1 differ, and
# alpha_bar_T ~ 0.6 so that L_T is large against the sampling error. Planted deviations at n = 2e4 (seeds 0-2):
# sigma_1^2 = beta_1 at z ~ 27, closed edge bins z ~ 120, L_T left out z ~ 30; 3k = 14.7.
SCHEDULE = Schedule(torch.tensor([0.01, 0.01, 0.05, 0.1, 0.2], dtype=torch.float64))
GAIN = 0.4  # eps_theta(x, t) = GAIN x: linear, so every p_theta(x_{t-1} | x_t) is Gaussian
X0 = torch.tensor([[-1.0, 1.0], [-1 + 2 / 255, 2 * 153 / 255 - 1], [1.0, -1.0]], dtype=torch.float64)  # edges included
N = 20000


def _log_normal(x: Tensor, mean: Tensor, var: float) -> Tensor:
    """log N(x; mean, var I), summed over coordinates."""
    return (-0.5 * ((x - mean) ** 2 / var + math.log(2 * math.pi * var))).sum(1)


def _log_bin_mass(x0_: Tensor, mean: Tensor, var: float) -> Tensor:
    """log of N(mean, var)'s mass on x_0's bin, edges open.

    Summed over coordinates (float64, moderate tails).
    """
    normal = torch.distributions.Normal(mean, math.sqrt(var))
    hi = torch.where(x0_ > 1 - 1 / 255, torch.ones_like(x0_), normal.cdf(x0_ + 1 / 255))
    lo = torch.where(x0_ < -1 + 1 / 255, torch.zeros_like(x0_), normal.cdf(x0_ - 1 / 255))
    return torch.log(hi - lo).sum(1)


def eq3_per_trajectory(schedule: Schedule, x0_: Tensor, generator: torch.Generator, gain: float = GAIN) -> Tensor:
    """Eq. 3's integrand along a forward path per row [Ho20 eq. 3].

    -log p(x_T) - sum_t log p_theta(x_{t-1} | x_t) / q(x_t | x_{t-1}).
    """
    b, ab = schedule.beta, schedule.alpha_bar
    sigma2 = [float(v) for v in b]  # sigma_t^2 = beta_t for t >= 2
    sigma2[1] = float(b[2] * (1 - ab[1]) / (1 - ab[2]))  # sigma_1^2 = beta_tilde_2
    total, x_prev = torch.zeros(x0_.shape[0], dtype=x0_.dtype), x0_
    for t in range(1, schedule.T + 1):
        xt_ = (1 - b[t]).sqrt() * x_prev + b[t].sqrt() * torch.randn(x0_.shape, generator=generator, dtype=x0_.dtype)
        log_q = _log_normal(xt_, (1 - b[t]).sqrt() * x_prev, float(b[t]))  # eq. 2
        mean = (xt_ - b[t] / (1 - ab[t]).sqrt() * gain * xt_) / (1 - b[t]).sqrt()  # eq. 11
        log_p = _log_bin_mass(x_prev, mean, sigma2[1]) if t == 1 else _log_normal(x_prev, mean, sigma2[t])
        total -= log_p - log_q
        x_prev = xt_
    return total - _log_normal(x_prev, torch.zeros_like(x_prev), 1.0)


def check_elbo_matches_eq3(
    n: int, generator: torch.Generator, *, impl=negative_elbo, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """The mean of ``impl``'s total (sigma_t^2 = beta) against eq. 3 by Monte Carlo, n draws each.

    As a two-sample z.
    """
    x0_ = X0.repeat(n // X0.shape[0] + 1, 1)[:n]
    bound = impl(lambda x, t: GAIN * x, SCHEDULE, x0_, generator=generator, sigma2="beta").total
    direct = eq3_per_trajectory(SCHEDULE, x0_, generator)
    (m1, s1), (m2, s2) = mean_stderr(bound), mean_stderr(direct)
    return check_mc(
        "negative_elbo vs eq. 3 by Monte Carlo (difference of means)",
        m1 - m2,
        (s1**2 + s2**2).sqrt(),
        0.0,
        n,
        raise_on_fail=raise_on_fail,
    )


def _sigma1_beta1(schedule, sigma2="beta"):
    """Planted: sigma_1^2 = beta_1, the convention before the released code's."""
    var = ddpm.beta.schedule.reverse_variance(schedule, sigma2)
    var[1] = schedule.beta[1]
    return var


def _closed_edges(x0_, mean, var):
    """Planted: the edge bins closed at -1 - 1/255 and 1 + 1/255 instead of open."""
    std = torch.as_tensor(var, dtype=mean.dtype).sqrt()
    normal = torch.distributions.Normal(mean, std)
    return torch.log(normal.cdf(x0_ + 1 / 255) - normal.cdf(x0_ - 1 / 255))


def _no_prior(*args, **kwargs):
    """Planted: L_T left out of the total."""
    b = negative_elbo(*args, **kwargs)
    return ddpm.beta.losses.Bound(torch.zeros_like(b.prior), b.terms)


PLANTED_ELBO: dict[str, tuple[str | None, Callable[..., Any]]] = {
    "sigma1_beta1": ("reverse_variance", _sigma1_beta1),
    "closed_edges": ("discretized_gaussian_log_likelihood", _closed_edges),
    "no_L_T": (None, _no_prior),
}
