"""Eq. 3 rewritten as eq. 5, step by step [02460 ex. 3.2; Ho20 eq. 5, App. A eqs. 17-22].

L = L_T + sum_{t>1} L_{t-1} + L_0, each step of App. A executable.

(17) L = E_q[-log p(x_T) - sum_{t>=1} log p_theta(x_{t-1} | x_t) / q(x_t | x_{t-1})]; (18) the t = 1 term
split off; (19) for t > 1 the Markov property q(x_t | x_{t-1}) = q(x_t | x_{t-1}, x_0) and Bayes' rule
q(x_t | x_{t-1}, x_0) = q(x_{t-1} | x_t, x_0) q(x_t | x_0) / q(x_{t-1} | x_0); (20) the ratios
q(x_{t-1} | x_0) / q(x_t | x_0) telescope to q(x_1 | x_0) / q(x_T | x_0); (21-22) regrouped, each log
ratio's expectation is a KL. The rewriting of the integrand is algebra on the log densities (checked
for T = 1..6, the telescoping by induction for every T); the step through expectations is checked
exactly where every term has a closed form: Gaussian data, T = 2, a Gaussian p_theta with free
parameters.
Binding: the columns of ``ddpm.beta.losses.negative_elbo`` against eq. 5's terms.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.losses import negative_elbo
from ddpm.beta.schedule import reverse_variance
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules, vectors
from ddpm.specs._sym import Derivation, alpha_bar_prev, beta, equal, normal_logpdf, x0, x_prev, xt
from ddpm.specs.eq07_posterior import BETA_TILDE, MU_TILDE
from ddpm.specs.eq12_eps_weight import MU_FROM_EPS, eps

log_p, log_step, log_post, log_marg = (sp.IndexedBase(n) for n in ("log_p_θ", "log_q_step", "log_q_post", "log_q_marg"))
log_prior = sp.Symbol("log p(x_T)")
n = sp.Symbol("n", integer=True, positive=True)


def bayes_markov(tt):
    """log q(x_t | x_{t-1}) by the Markov property and Bayes' rule [Ho20 eq. 19].

    q(x_1 | x_0) itself at t = 1.
    """
    return log_marg[1] if tt == 1 else log_post[tt] + log_marg[tt] - log_marg[tt - 1]


def eq3(T: int) -> sp.Expr:
    """The integrand of eq. 3 (= eq. 17) in terms of the log densities."""
    return -log_prior - sum(log_p[tt] - log_step[tt] for tt in range(1, T + 1))


def eq5(T: int) -> sp.Expr:
    """The integrand of eq. 5 (= eq. 21): the log ratios whose expectations are L_T, L_{t-1}, L_0."""
    return (log_marg[T] - log_prior) + sum(log_post[tt] - log_p[tt] for tt in range(2, T + 1)) - log_p[1]


def _expect(poly: sp.Expr, xs: list, cov: sp.Matrix) -> sp.Expr:
    """E[poly(x)] for x ~ N(0, cov), poly of degree <= 2 in xs (the moment rule)."""
    p = sp.Poly(sp.expand(poly), *xs)
    out = sp.Integer(0)
    for monom, coef in p.terms():
        idx = [i for i, e in enumerate(monom) for _ in range(e)]
        if len(idx) > 2:
            raise ValueError(f"degree {len(idx)} > 2")
        out += coef * (1 if not idx else 0 if len(idx) == 1 else cov[idx[0], idx[1]])
    return out


def derivation(bayes=bayes_markov) -> Derivation:
    """Eqs. 17-22 as executable steps; ``bayes`` rewrites log q(x_t | x_{t-1}) (eq. 19)."""
    d = Derivation("Eq. 3 = eq. 5: L = L_T + sum_{t>1} L_{t-1} + L_0 [02460 ex. 3.2; Ho20 App. A eqs. 17-22]")
    d.step("(17) The integrand of eq. 3, T = 3 shown", sp.Eq(sp.Symbol("L"), eq3(3)))
    d.step(
        "(19) Markov property and Bayes' rule for t > 1, checked on the Gaussians of eqs. 2, 4, 7",
        sp.Eq(log_step[sp.Symbol("t")], bayes(sp.Symbol("t"))),
    )
    equal(
        normal_logpdf(xt, sp.sqrt(1 - beta) * x_prev, beta),
        normal_logpdf(x_prev, MU_TILDE, BETA_TILDE)
        + normal_logpdf(xt, sp.sqrt(alpha_bar_prev * (1 - beta)) * x0, 1 - alpha_bar_prev * (1 - beta))
        - normal_logpdf(x_prev, sp.sqrt(alpha_bar_prev) * x0, 1 - alpha_bar_prev),
        "eq. 19's Bayes rule for Gaussians",
    )
    f = sp.IndexedBase("f")
    telescoped = lambda N: sum(f[tt - 1] - f[tt] for tt in range(2, N + 1))  # noqa: E731
    d.step(
        "(20) Telescoping: sum_{t=2}^{T} (f_{t-1} - f_t) = f_1 - f_T by induction: base T = 2, and the step",
        equal(telescoped(2), f[1] - f[2], "telescoping, T = 2"),
        equal((f[1] - f[n]) + (f[n] - f[n + 1]), f[1] - f[n + 1], "telescoping, induction step"),
    )
    shown = [
        equal(
            eq3(T).subs({log_step[tt]: bayes(tt) for tt in range(1, T + 1)}),
            eq5(T),
            f"eq. 3 = eq. 5 integrands, T = {T}",
        )
        for T in range(1, 7)
    ]
    d.step("(21-22) Regrouped, the integrands of eq. 3 and eq. 5 agree for T = 1..6, e.g. T = 3", shown[2])
    # Exact case: x_0 ~ N(0, s0^2), T = 2, beta = (9/25, 7/16) (alpha = (4/5)^2, (3/4)^2), p(x_2) = N(0, 1),
    # p_theta(x_{t-1} | x_t) = N(k_t x_t, v_t) with k_t, v_t free: both sides' expectations in closed form.
    s0, v1, v2 = sp.symbols("s_0 v_1 v_2", positive=True)
    k1, k2 = sp.symbols("k_1 k_2", real=True)
    xs = sp.symbols("x_0:3", real=True)
    betas = {1: sp.Rational(9, 25), 2: sp.Rational(7, 16)}
    M = sp.Matrix(
        [
            [s0, 0, 0],
            [sp.Rational(4, 5) * s0, sp.Rational(3, 5), 0],
            [sp.Rational(3, 5) * s0, sp.Rational(9, 20), sp.sqrt(7) / 4],
        ]
    )
    cov = M * M.T
    log_pt = {1: normal_logpdf(xs[0], k1 * xs[1], v1), 2: normal_logpdf(xs[1], k2 * xs[2], v2)}
    log_qs = {tt: normal_logpdf(xs[tt], sp.sqrt(1 - betas[tt]) * xs[tt - 1], betas[tt]) for tt in (1, 2)}
    lhs = _expect(-normal_logpdf(xs[2], 0, 1) - sum(log_pt[tt] - log_qs[tt] for tt in (1, 2)), xs, cov)
    kl = lambda m1, v1_, m2, v2_: (sp.log(v2_ / v1_) + (v1_ + (m1 - m2) ** 2) / v2_ - 1) / 2  # noqa: E731
    post = {
        s_: e.subs({beta: betas[2], alpha_bar_prev: 1 - betas[1], x0: xs[0], xt: xs[2]})
        for s_, e in (("m", MU_TILDE), ("v", BETA_TILDE))
    }
    rhs = _expect(
        kl(sp.Rational(3, 5) * xs[0], sp.Rational(16, 25), 0, 1) + kl(post["m"], post["v"], k2 * xs[2], v2) - log_pt[1],
        xs,
        cov,
    )
    d.step(
        "Exact case (Gaussian data, T = 2, p_theta = N(k_t x_t, v_t)): E of eq. 3 = L_T + L_1 + L_0 of eq. 5",
        equal(lhs, rhs, "eq. 3 vs eq. 5 in the exact Gaussian case"),
    )
    return d


def check_bound_columns(impl=negative_elbo) -> None:
    """``impl``'s L_T and its columns t >= 2 are eq. 5's KL terms at the x_t it drew.

    The total is their sum.
    """
    bt, s2, r2 = sp.symbols("beta_tilde sigma2 r2", positive=True)
    kl_expr = (2 * (sp.log(s2 / bt) + bt / s2 - 1) + r2 / s2) / 2  # D = 2 coordinates, claim ex33

    @examples(20)
    @given(
        schedules(min_T=2, max_T=6),
        vectors(2, 1.0),
        st.floats(-1, 1),
        st.sampled_from(["beta", "beta_tilde"]),
        st.integers(0, 2**31),
    )
    def run(schedule, x0_, gain, choice, seed):
        eps_model = lambda x, t: gain * x  # a linear eps_theta, so p_theta is Gaussian  # noqa: E731
        x = torch.from_numpy(x0_)[None]
        bound = impl(eps_model, schedule, x, generator=torch.Generator().manual_seed(seed), sigma2=choice)
        noise = torch.Generator().manual_seed(seed)
        for tt in range(1, schedule.T + 1):  # negative_elbo draws eps for t = 1..T in order
            e = torch.randn(x.shape, generator=noise, dtype=x.dtype)[0].numpy()
            if tt == 1:
                continue
            args = (float(schedule.betas[tt - 1]), alpha_bar_at(schedule, tt - 1))
            syms = [beta, alpha_bar_prev, x0, eps]
            xt_ = reference(
                sp.sqrt(alpha_bar_prev * (1 - beta)) * x0 + sp.sqrt(1 - alpha_bar_prev * (1 - beta)) * eps,
                syms,
                *args,
                x0_,
                e,
            )
            mu_t = reference(MU_TILDE, [beta, alpha_bar_prev, x0, xt], *args, x0_, xt_)
            mu_th = reference(MU_FROM_EPS, [beta, alpha_bar_prev, xt, eps], *args, xt_, gain * xt_)
            var = float(reverse_variance(schedule, choice)[tt])
            want = reference(
                kl_expr,
                [bt, s2, r2],
                reference(BETA_TILDE, [beta, alpha_bar_prev], *args),
                var,
                float(((mu_t - mu_th) ** 2).sum()),
            )
            # the KL's terms (log ratio, variance ratio, mean term) bound its magnitude
            assert_close(
                f"L_{tt - 1} column", bound.terms[0, tt - 1], want, abs(float(want)) + 2 * abs(np.log(var)) + 4
            )
        assert_close(
            "total = L_T + sum of columns",
            bound.total[0],
            float(bound.prior[0] + bound.terms[0].sum()),
            float(bound.prior[0].abs() + bound.terms[0].abs().sum()),
        )

    run()
