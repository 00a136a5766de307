"""The optimal sigma_t^2: beta_t for x_0 ~ N(0, I), beta_tilde_t for a point mass [Ho20 §3.2].

sigma_t^2 = beta_t is the optimal reverse variance for x_0 ~ N(0, I), sigma_t^2 = beta_tilde_t for x_0
a point mass.

For a fixed x_t, the Gaussian p(x_{t-1} | x_t) = N(mu, sigma^2) minimising the expected L_{t-1} = E_{x_0 | x_t}
KL(N(mu_tilde, beta_tilde) || N(mu, sigma^2)) (one coordinate) has mu = E[mu_tilde | x_t] and
sigma^2 = beta_tilde + Var(mu_tilde | x_t): the stationary point of the expected KL, a minimum as its
second derivative there is positive. mu_tilde = c_0 x_0 + c_t x_t (eq. 7), so Var(mu_tilde | x_t) =
c_0^2 Var(x_0 | x_t): 0 for a point mass, giving beta_tilde_t; and 1 - alpha_bar_t for x_0 ~ N(0, 1)
(then x_t ~ N(0, 1) and Cov(x_0, x_t) = sqrt(alpha_bar_t)), giving beta_t.
Binding: ``ddpm.beta.schedule.reverse_variance``.
"""

from __future__ import annotations

import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.schedule import reverse_variance
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules
from ddpm.specs._sym import Derivation, alpha_bar, alpha_bar_prev, beta, equal, x0, xt
from ddpm.specs.eq07_posterior import BETA_TILDE, MU_TILDE

s2, v = sp.symbols("sigma^2 V", positive=True)  # V = Var(mu_tilde | x_t)

# The paper's statements [Ho20 §3.2]: the optimum for x_0 ~ N(0, I) and for a point mass.
FOR_STANDARD_NORMAL, FOR_POINT_MASS = beta, BETA_TILDE


def derivation(standard_normal: sp.Expr = FOR_STANDARD_NORMAL, point_mass: sp.Expr = FOR_POINT_MASS) -> Derivation:
    """Derive the optimal sigma^2 and its two extremes, checked against the stated ones."""
    d = Derivation("The optimal sigma_t^2: beta_t for x_0 ~ N(0, I), beta_tilde_t for a point mass [Ho20 §3.2]")
    bt = sp.Symbol("beta_tilde", positive=True)
    # E KL = 1/2 (log(sigma^2 / beta_tilde) + (beta_tilde + E(mu_tilde - mu)^2) / sigma^2 - 1),
    # at mu = E[mu_tilde | x_t]
    expected_kl = (sp.log(s2 / bt) + (bt + v) / s2 - 1) / 2
    d.step(
        "Expected KL at the best mean mu = E[mu_tilde | x_t], with V = Var(mu_tilde | x_t)",
        sp.Eq(sp.Symbol("E L_{t-1}"), expected_kl),
    )
    optimum = sp.solve(sp.diff(expected_kl, s2), s2)
    if len(optimum) != 1:
        raise AssertionError(f"expected one stationary point, got {optimum}")
    best = optimum[0]
    d.step("Its one stationary point in sigma^2", equal(best, bt + v, "stationary sigma^2"))
    curvature = sp.factor(sp.diff(expected_kl, s2, 2).subs(s2, best))
    d.step("a minimum: the second derivative there is positive", sp.Eq(sp.Symbol("d²/dσ⁴ E L"), curvature))
    if not curvature.is_positive:
        raise AssertionError(f"the second derivative {curvature} is not positive")
    c0 = sp.diff(MU_TILDE, x0)
    best = best.subs(bt, BETA_TILDE)
    d.step("Point mass x_0: V = 0", equal(best.subs(v, 0), point_mass, "optimal sigma^2 for a point mass"))
    # x_0 ~ N(0, 1): (x_0, x_t) jointly Gaussian, Var x_t = 1, Cov = sqrt(alpha_bar_t): Var(x_0 | x_t) = 1 - alpha_bar_t
    var_x0 = 1 - sp.sqrt(alpha_bar) ** 2 / 1
    d.step(
        "x_0 ~ N(0, 1): Var(x_0 | x_t) = 1 - Cov(x_0, x_t)^2 / Var x_t, and V = c_0^2 Var(x_0 | x_t)",
        sp.Eq(sp.Symbol("V"), c0**2 * var_x0),
    )
    d.step(
        "so the optimum is beta_t", equal(best.subs(v, c0**2 * var_x0), standard_normal, "optimal sigma^2 for N(0, 1)")
    )
    if xt in best.free_symbols:
        raise AssertionError("the optimal variance depends on x_t")
    return d


def check_reverse_variance(impl=reverse_variance) -> None:
    """``impl(schedule, "beta" | "beta_tilde")[t]`` is the derived optimum for t >= 2."""

    @examples(40)
    @given(schedules(min_T=2), st.data())
    def run(schedule, data):
        t = data.draw(st.integers(2, schedule.T), label="t")
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        for choice, expr in (("beta", FOR_STANDARD_NORMAL), ("beta_tilde", FOR_POINT_MASS)):
            assert_close(
                f"sigma_t^2 = {choice} at t={t}",
                impl(schedule, choice)[t],
                reference(expr, [beta, alpha_bar_prev], *args),
            )

    run()
