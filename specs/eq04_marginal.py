"""q(x_t | x_{t-1}) composed t times is q(x_t | x_0) [Ho20 eq. 4].

q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).

By induction on t, one coordinate (the noise is isotropic). x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z
with z ~ N(0, 1) independent of x_{t-1} (eq. 2), so the characteristic function of x_t is the product
E[e^{ik x_t}] = phi_{t-1}(sqrt(alpha_t) k) e^{-beta_t k^2 / 2}: a Gaussian again, whose mean and variance
follow m_t = sqrt(alpha_t) m_{t-1}, v_t = alpha_t v_{t-1} + beta_t. If m_{t-1} = sqrt(alpha_bar_{t-1}) x_0
and v_{t-1} = 1 - alpha_bar_{t-1}, then m_t = sqrt(alpha_bar_t) x_0 and v_t = 1 - alpha_bar_t; at
t = 1 (alpha_bar_0 = 1) the claim is eq. 2 itself.
Bindings: ``ddpm.beta.forward.q_step_mean_var`` and ``q_step_sample`` (eq. 2), ``q_mean_var`` and ``q_sample``
(eq. 4).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.forward import q_mean_var, q_sample, q_step_mean_var, q_step_sample
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules, vectors
from ddpm.specs._sym import Derivation, alpha, alpha_bar, alpha_bar_prev, beta, equal, x0

k = sp.Symbol("k", real=True)
eps = sp.Symbol("epsilon", real=True)

a_bar = sp.Symbol("alpha_bar", positive=True)  # alpha_bar at a generic step

# The paper's statement [Ho20 eq. 4], as functions of alpha_bar.
MEAN, VAR = sp.sqrt(a_bar) * x0, 1 - a_bar


def log_char(mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """log E[e^{ik x}] for x ~ N(mean, var)."""
    return sp.I * k * mean - k**2 * var / 2


def derivation(mean: sp.Expr = MEAN, var: sp.Expr = VAR) -> Derivation:
    """Prove eq. 4 by induction and check it against the stated ``mean`` and ``var``.

    Both are functions of ``a_bar``.
    """
    d = Derivation("q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) by induction [Ho20 eq. 4]")
    prev_mean, prev_var = mean.subs(a_bar, alpha_bar_prev), var.subs(a_bar, alpha_bar_prev)
    mean, var = mean.subs(a_bar, alpha_bar), var.subs(a_bar, alpha_bar)
    d.step(
        "Induction hypothesis: x_{t-1} | x_0 ~ N(m_{t-1}, v_{t-1}) with",
        sp.Eq(sp.Symbol("m_t-1"), prev_mean),
        sp.Eq(sp.Symbol("v_t-1"), prev_var),
    )
    step_char = log_char(prev_mean, prev_var).subs(k, sp.sqrt(alpha) * k) + log_char(0, beta)
    d.step(
        "x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z, z independent: log-characteristic functions add",
        sp.Eq(sp.Symbol("log E[exp(i k x_t)]"), step_char),
    )
    m_t, v_t = sp.sqrt(alpha) * prev_mean, alpha * prev_var + beta
    d.step(
        "which is Gaussian with m_t = sqrt(alpha_t) m_{t-1}, v_t = alpha_t v_{t-1} + beta_t",
        equal(step_char, log_char(m_t, v_t), "characteristic function of x_t vs the recurrences"),
    )
    d.step("Mean: the induction step holds", equal(m_t, mean, "mean recurrence vs eq. 4"))
    d.step("Variance: the induction step holds", equal(v_t, var, "variance recurrence vs eq. 4"))
    d.step(
        "Base case t = 1 (alpha_bar_0 = 1): eq. 2, N(sqrt(alpha_1) x_0, beta_1)",
        equal(mean.subs(alpha_bar_prev, 1), sp.sqrt(alpha) * x0, "eq. 4 at t = 1, mean"),
        equal(var.subs(alpha_bar_prev, 1), beta, "eq. 4 at t = 1, variance"),
    )
    betas = sp.symbols("beta_1:5", positive=True)
    m, v = x0, sp.Integer(0)
    for b in betas:
        m, v = sp.sqrt(1 - b) * m, (1 - b) * v + b
    product = sp.prod([1 - b for b in betas])
    d.step(
        "Unrolled for t = 4 with free beta_1..beta_4",
        equal(m, sp.sqrt(product) * x0, "unrolled mean, t = 4"),
        equal(v, 1 - product, "unrolled variance, t = 4"),
    )
    return d


def check_marginal(
    impl_step=q_step_mean_var, impl_mean_var=q_mean_var, impl_sample=q_sample, impl_step_sample=q_step_sample
) -> None:
    """ddpm's eq. 2 and eq. 4 (mean, variance and the reparameterised draw) against the derivation."""
    symbols = [beta, alpha_bar_prev, x0, eps]

    @examples(40)
    @given(schedules(), st.data(), vectors(3), vectors(3))
    def run(schedule, data, x0_, eps_):
        t = data.draw(st.integers(1, schedule.T), label="t")
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        x, e = torch.from_numpy(x0_)[None], torch.from_numpy(eps_)[None]
        ref = lambda expr, *a: reference(expr.subs(a_bar, alpha_bar), symbols, *args, *a)  # noqa: E731
        step_mean, step_var = impl_step(schedule, x, t)
        assert_close(f"eq. 2 mean at t={t}", step_mean[0], ref(sp.sqrt(alpha) * x0, x0_, 0))
        assert_close(f"eq. 2 variance at t={t}", step_var.reshape(-1)[0], args[0])
        step_draw = ref(sp.sqrt(alpha) * x0 + sp.sqrt(beta) * eps, x0_, eps_)  # x0 stands for x_{t-1} here
        scale = np.abs(x0_) + np.abs(eps_)
        assert_close(f"eq. 2 draw at t={t}", impl_step_sample(schedule, x, t, e)[0], step_draw, scale)
        mean, var = impl_mean_var(schedule, x, t)
        assert_close(f"eq. 4 mean at t={t}", mean[0], ref(MEAN, x0_, 0))
        assert_close(f"eq. 4 variance at t={t}", var.reshape(-1)[0], ref(VAR, 0, 0))
        draw = ref(MEAN + sp.sqrt(VAR) * eps, x0_, eps_)
        assert_close(f"eq. 4 draw at t={t}", impl_sample(schedule, x, t, e)[0], draw, scale)

    run()
