"""The closed forms ``ddpm conform`` holds libraries to, each against an independent reference.

scaled_linear against its definition at 50 digits; zero terminal SNR by the properties that fix it
[Lin24 alg. 1]; the strided posterior against eq. 7's sympy statement (the eq07 spec's MU_TILDE and
BETA_TILDE, evaluated at 30 digits); DDIM's eq. 12 against the posterior at eta = 1 and against the
sigma world's Euler step (``gam_mu_step``, through the VE-VP bridge) at eta = 0; the three
parameterisations by round trip through q(x_t | x_0).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from ddpm.beta.posterior import PREDICTIONS, ddim_coefficients, strided_posterior, x0_eps_from_output
from ddpm.beta.schedule import cosine_schedule, linear_schedule, scaled_linear_schedule, zero_terminal_snr
from ddpm.sigma.sampler import gam_mu_step
from ddpm.specs._bind import reference
from ddpm.specs._sym import alpha_bar_prev, beta, x0, xt
from ddpm.specs.eq07_posterior import BETA_TILDE, MU_TILDE

STRIDES = [(1000, 999), (1000, 900), (500, 1), (37, 0), (999, 888), (2, 1)]


def test_scaled_linear_is_the_square_of_a_linear_root_at_50_digits():
    T, b1, bT = 1000, "0.00085", "0.012"
    with mpmath.workdps(50):
        r1, rT = mpmath.sqrt(mpmath.mpf(b1)), mpmath.sqrt(mpmath.mpf(bT))
        want = [float((r1 + (rT - r1) * i / (T - 1)) ** 2) for i in range(T)]
    got = scaled_linear_schedule(T, float(b1), float(bT)).betas
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="beta_1 = 0.5 must not exceed beta_T = 0.1"):
        scaled_linear_schedule(10, 0.5, 0.1)


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(1000), scaled_linear_schedule(50)])
def test_zero_terminal_snr_keeps_the_first_level_ends_at_zero_and_is_affine_in_sqrt_alpha_bar(schedule):
    ab = schedule.alpha_bar
    out = zero_terminal_snr(ab)
    assert out[0] == 1 and out[-1] == 0
    assert torch.isclose(out[1], ab[1], rtol=1e-14, atol=0)
    assert (out[2:] < out[1:-1]).all(), "the SNR falls strictly"
    # sqrt(out) = c sqrt(ab) + d for one (c, d): the residual of a least-squares line is round-off
    a, b = ab[1:].sqrt().numpy(), out[1:].sqrt().numpy()
    fit = np.polyfit(a, b, 1)
    assert np.abs(np.polyval(fit, a) - b).max() < 1e-12
    with pytest.raises(ValueError, match="must fall"):
        zero_terminal_snr(torch.tensor([1.0, 0.5, 0.5]))


def _eq7(expr, ab_t, ab_s):
    """eq. 7's sympy statement at 30 digits for the step t -> s (beta_t := 1 - alpha_bar_t / alpha_bar_s)."""
    return float(reference(expr, [beta, alpha_bar_prev], 1 - ab_t / ab_s, ab_s))


@pytest.mark.parametrize("t, s", STRIDES)
def test_strided_posterior_is_eq7_with_the_respaced_beta(t, s):
    ab = linear_schedule(1000).alpha_bar
    ab_t, ab_s = float(ab[t]), float(ab[s])
    p = strided_posterior(ab_t, ab_s)
    coef_x0 = sp.diff(MU_TILDE, x0)
    coef_xt = sp.diff(MU_TILDE, xt)
    assert float(p.coef_x0) == pytest.approx(_eq7(coef_x0, ab_t, ab_s), rel=1e-12)
    assert float(p.coef_xt) == pytest.approx(_eq7(coef_xt, ab_t, ab_s), rel=1e-12)
    assert float(p.beta_tilde) == pytest.approx(_eq7(BETA_TILDE, ab_t, ab_s), rel=1e-10, abs=1e-300)
    assert float(p.beta) == pytest.approx(1 - ab_t / ab_s, rel=1e-12)


@pytest.mark.parametrize("t, s", STRIDES)
def test_ddim_at_eta_1_is_the_posterior_and_at_eta_0_the_euler_step_of_the_sigma_world(t, s):
    ab = linear_schedule(1000).alpha_bar
    ab_t, ab_s = ab[t], ab[s]
    g = torch.Generator().manual_seed(t)
    x_0, e = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    x_t = ab_t.sqrt() * x_0 + (1 - ab_t).sqrt() * e
    c0, ce, sigma = ddim_coefficients(ab_t, ab_s, eta=1.0)
    p = strided_posterior(ab_t, ab_s)
    torch.testing.assert_close(c0 * x_0 + ce * e, p.coef_x0 * x_0 + p.coef_xt * x_t, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sigma**2, p.beta_tilde, rtol=1e-10, atol=1e-300)
    c0, ce, sigma = ddim_coefficients(ab_t, ab_s, eta=0.0)
    assert sigma == 0
    sig_t, sig_s = ((1 - ab_t) / ab_t).sqrt(), ((1 - ab_s) / ab_s).sqrt()
    x_ve = gam_mu_step(x_t / ab_t.sqrt(), sig_t, sig_s, e)  # DDIM is Euler in sigma [Song21 §4.3]
    torch.testing.assert_close(c0 * x_0 + ce * e, ab_s.sqrt() * x_ve, rtol=1e-12, atol=1e-12)
    _, _, half = ddim_coefficients(ab_t, ab_s, eta=0.5)
    torch.testing.assert_close(half, 0.5 * ddim_coefficients(ab_t, ab_s, eta=1.0)[2], rtol=1e-14, atol=0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_each_parameterisation_recovers_x0_and_eps(prediction):
    g = torch.Generator().manual_seed(1)
    x_0, e = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    for ab in (0.9999, 0.5, 4e-5):
        a, b = ab**0.5, (1 - ab) ** 0.5
        x_t = a * x_0 + b * e
        output = {"epsilon": e, "sample": x_0, "v_prediction": a * e - b * x_0}[prediction]
        got_x0, got_eps = x0_eps_from_output(prediction, ab, x_t, output)
        torch.testing.assert_close(got_x0, x_0, rtol=0, atol=1e-9 / a)
        torch.testing.assert_close(got_eps, e, rtol=0, atol=1e-9 / b)
    with pytest.raises(ValueError, match="prediction must be one of"):
        x0_eps_from_output("score", 0.5, x_t, e)
