"""q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I) by Bayes' rule [Ho20 eqs. 6-7].

This is the forward-process posterior.

q(x_{t-1} | x_t, x_0) = q(x_t | x_{t-1}) q(x_{t-1} | x_0) / q(x_t | x_0) (the Markov property gives
q(x_t | x_{t-1}, x_0) = q(x_t | x_{t-1})). Every factor is an isotropic Gaussian, so the coordinates
are independent and one coordinate carries the whole derivation. Its log is quadratic in x_{t-1};
completing the square gives

    mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t,
    beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t,

and the x_{t-1}-free remainder is exactly the normaliser of N(mu_tilde, beta_tilde): Bayes'
denominator included, the ratio is this Gaussian density and nothing else.
Binding: ``ddpm.beta.posterior.posterior_mean_var``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.posterior import posterior_mean_var
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules, vectors
from ddpm.specs._sym import (
    Derivation,
    alpha,
    alpha_bar,
    alpha_bar_prev,
    beta,
    equal,
    gaussian_integral,
    normal_logpdf,
    x0,
    x_prev,
    xt,
)

# The paper's statement [Ho20 eq. 7].
MU_TILDE = (
    sp.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar) * x0 + sp.sqrt(alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar) * xt
)
BETA_TILDE = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta


def log_bayes_ratio() -> sp.Expr:
    """log q(x_t | x_{t-1}) + log q(x_{t-1} | x_0) - log q(x_t | x_0), one coordinate [Ho20 eqs. 2, 4]."""
    return (
        normal_logpdf(xt, sp.sqrt(alpha) * x_prev, beta)
        + normal_logpdf(x_prev, sp.sqrt(alpha_bar_prev) * x0, 1 - alpha_bar_prev)
        - normal_logpdf(xt, sp.sqrt(alpha_bar) * x0, 1 - alpha_bar)
    )


def derivation(mu_tilde: sp.Expr = MU_TILDE, beta_tilde: sp.Expr = BETA_TILDE) -> Derivation:
    """Derive eq. 7 by completing the square and check it against the stated ``mu_tilde``, ``beta_tilde``."""
    d = Derivation("q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I) by Bayes' rule [Ho20 eqs. 6-7]")
    log_q = log_bayes_ratio()
    d.step("Bayes' rule, one coordinate: log q(x_{t-1} | x_t, x_0) =", log_q)
    poly = sp.Poly(sp.expand(log_q), x_prev)
    A, B = -poly.coeff_monomial(x_prev**2), poly.coeff_monomial(x_prev)
    d.step(
        "It is quadratic in x_{t-1}: -A x_{t-1}^2 + B x_{t-1} + C with",
        sp.Eq(sp.Symbol("A"), sp.factor(sp.together(A))),
        sp.Eq(sp.Symbol("B"), sp.together(B)),
    )
    var, mean = 1 / (2 * A), B / (2 * A)
    d.step(
        "Completing the square: variance 1 / 2A is eq. 7's beta_tilde",
        equal(sp.factor(sp.cancel(var)), beta_tilde, "posterior variance 1/2A vs eq. 7's beta_tilde"),
    )
    d.step("and the mean B / 2A is eq. 7's mu_tilde", equal(mean, mu_tilde, "posterior mean B/2A vs eq. 7's mu_tilde"))
    log_norm, _ = gaussian_integral(log_q, x_prev)
    equal(log_norm, 0, "log of the integral of the Bayes ratio")
    d.step(
        "The ratio integrates to 1 over x_{t-1} (C + B^2/4A + log(pi/A)/2 = 0): the denominator is right",
        sp.Eq(sp.Symbol("log ∫ q(x_{t-1} | x_t, x_0) dx_{t-1}"), 0),
    )
    equal(log_q, normal_logpdf(x_prev, mu_tilde, beta_tilde), "Bayes ratio vs log N(mu_tilde, beta_tilde)")
    d.step(
        "Hence the ratio is the density N(x_{t-1}; mu_tilde, beta_tilde) itself",
        sp.Eq(
            sp.Symbol("log q(x_{t-1} | x_t, x_0)"),
            normal_logpdf(x_prev, sp.Symbol("mu_tilde"), sp.Symbol("beta_tilde")),
        ),
    )
    return d


def check_posterior(impl=posterior_mean_var) -> None:
    """``impl(schedule, x0, xt, t)`` returns eq. 7's (mu_tilde, beta_tilde) at every t = 1..T, in float64."""
    symbols = [beta, alpha_bar_prev, x0, xt]

    @examples(40)
    @given(schedules(), st.data(), vectors(3), vectors(3))
    def run(schedule, data, x0_, xt_):
        t = data.draw(st.integers(1, schedule.T), label="t")
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        mean, var = impl(schedule, torch.from_numpy(x0_)[None], torch.from_numpy(xt_)[None], t)
        # mean = c0 x0 + ct xt with 0 <= c0, ct <= 1: |x0| + |xt| bounds the magnitude of its terms.
        assert_close(
            f"mu_tilde at t={t}", mean[0], reference(MU_TILDE, symbols, *args, x0_, xt_), np.abs(x0_) + np.abs(xt_)
        )
        assert_close(
            f"beta_tilde at t={t}",
            var.reshape(-1)[0],
            reference(BETA_TILDE, symbols, *args, 0, 0),
            float(schedule.betas[t - 1]),
        )

    run()
