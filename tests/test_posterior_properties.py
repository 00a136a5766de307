"""Properties of the forward-process posterior for every admissible schedule [Ho20 eqs. 7, 9-11].

By hypothesis.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from test_schedule_properties import BETAS, extremes, schedule_of  # tests/ is on sys.path (pytest's prepend mode)

from ddpm.beta.posterior import mu_from_eps, posterior_mean_var, x0_from_eps
from ddpm.beta.schedule import at

# float32 data: a few float32 ulps from casting the coefficients and two products; float64: a few ulps.
ULPS = 16


def tolerance(dtype: torch.dtype) -> float:
    return ULPS * torch.finfo(dtype).eps


@extremes
@given(BETAS)
def test_posterior_mean_at_noiseless_xt_is_sqrt_alpha_bar_prev_x0(case):
    s = schedule_of(*case)
    for dtype in (torch.float32, torch.float64):
        x0 = torch.linspace(-3, 3, 7, dtype=dtype).repeat_interleave(s.T)[:, None]
        t = torch.arange(1, s.T + 1).repeat(7)
        xt = at(s.alpha_bar.sqrt(), t, x0) * x0
        mean, var = posterior_mean_var(s, x0, xt, t)
        want = at(s.alpha_bar[:-1].sqrt(), t - 1, x0) * x0
        assert torch.allclose(mean, want, rtol=tolerance(dtype), atol=0), (mean - want).abs().max()
        assert (var >= 0).all() and (var <= at(s.beta, t, x0)).all()


@extremes
@given(BETAS)
def test_eps_parameterisation_is_the_posterior_mean(case):
    # mu_from_eps(x_t, eps) = mu_tilde(x0_from_eps(x_t, eps), x_t) [Ho20 eqs. 9-11], in float64
    s = schedule_of(*case)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1, s.T + 1)
    x0 = torch.randn(s.T, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(s.T, 3, generator=g, dtype=torch.float64)
    xt = at(s.alpha_bar.sqrt(), t, x0) * x0 + at(s.one_minus_alpha_bar.sqrt(), t, x0) * eps
    direct = mu_from_eps(s, xt, t, eps)
    via_x0 = posterior_mean_var(s, x0_from_eps(s, xt, t, eps), xt, t)[0]
    # both are combinations of x_t and eps with coefficients up to 1 / sqrt(alpha_bar_t): scale the error by it
    scale = (xt.abs() + eps.abs()) / at(s.alpha_bar.sqrt(), t, x0)
    assert ((direct - via_x0).abs() <= 1e-9 * scale).all()


@given(st.integers(1, 5), st.sampled_from([torch.float32, torch.float64]))
def test_posterior_follows_data_dtype(T, dtype):
    s = schedule_of([0.1 * (i + 1) / T for i in range(T)], torch.float64)
    x = torch.zeros(2, 3, dtype=dtype)
    mean, var = posterior_mean_var(s, x, x, torch.tensor([1, T]))
    assert mean.dtype == dtype and var.dtype == dtype
