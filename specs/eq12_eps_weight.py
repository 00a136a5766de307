"""The eps-parameterisation of mu_tilde and the weight of L_{t-1} [Ho20 eqs. 9-12].

mu_tilde = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) and
L_{t-1} - C = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) ||eps - eps_theta||^2.

Eq. 4 solved for x_0 gives x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (eq. 9);
put into eq. 7's mu_tilde it collapses to eq. 10. With mu_theta of the same form in eps_theta
(eq. 11), the mean term of eq. 8 (claim ex33) becomes eq. 12's weighted squared error.
Bindings: ``ddpm.beta.posterior.x0_from_eps`` and ``mu_from_eps`` with the schedule's ``eps_coef`` (the
sampler's step, Algorithm 2 line 4), and the weights in ``ddpm.beta.losses.vlb_terms``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.forward import q_sample
from ddpm.beta.losses import vlb_terms
from ddpm.beta.posterior import mu_from_eps, posterior_mean_var, x0_from_eps
from ddpm.beta.schedule import Schedule
from ddpm.specs._bind import FLOAT32_RTOL, assert_close, examples, reference, schedules, vectors
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._sym import Derivation, alpha, alpha_bar, alpha_bar_prev, beta, equal, x0, xt
from ddpm.specs.eq07_posterior import BETA_TILDE, MU_TILDE

eps, eps_theta = sp.symbols("epsilon epsilon_θ", real=True)
sigma2 = sp.Symbol("sigma_t^2", positive=True)

# The paper's statements [Ho20 eqs. 9, 10-11, 12].
X0_FROM_EPS = (xt - sp.sqrt(1 - alpha_bar) * eps) / sp.sqrt(alpha_bar)
MU_FROM_EPS = (xt - beta / sp.sqrt(1 - alpha_bar) * eps) / sp.sqrt(alpha)
WEIGHT = beta**2 / (2 * sigma2 * alpha * (1 - alpha_bar))


def derivation(
    x0_from_eps: sp.Expr = X0_FROM_EPS, mu_eps: sp.Expr = MU_FROM_EPS, weight: sp.Expr = WEIGHT
) -> Derivation:
    """Derive eqs. 9-12 from eqs. 4 and 7 and check them against the stated forms."""
    d = Derivation("mu_tilde in terms of eps, and L_{t-1} as a weighted eps regression [Ho20 eqs. 9-12]")
    x0_solved = sp.solve(sp.Eq(xt, sp.sqrt(alpha_bar) * x0 + sp.sqrt(1 - alpha_bar) * eps), x0)[0]
    d.step(
        "Eq. 4, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, solved for x_0 (eq. 9)",
        equal(x0_solved, x0_from_eps, "x_0 from eq. 4 vs eq. 9"),
    )
    mu = MU_TILDE.subs(x0, x0_solved)
    d.step("Into eq. 7's mu_tilde: it collapses to eq. 10", equal(mu, mu_eps, "mu_tilde(x_t, x_0(x_t, eps)) vs eq. 10"))
    mu_theta = mu_eps.subs(eps, eps_theta)
    d.step(
        "mu_theta of eq. 11: the same form with eps_theta(x_t, t) in place of eps",
        sp.Eq(sp.Symbol("mu_theta"), mu_theta, evaluate=False),
    )
    term = (mu - mu_theta) ** 2 / (2 * sigma2)
    d.step(
        "The mean term of eq. 8 (per coordinate) is eq. 12's weight times the squared eps error",
        equal(term, weight * (eps - eps_theta) ** 2, "||mu_tilde - mu_theta||^2 / 2 sigma^2 vs eq. 12"),
    )
    return d


def check_eps_param(impl_x0=x0_from_eps, impl_mu=mu_from_eps) -> None:
    """``impl_x0(schedule, xt, t, eps)`` is eq. 9, ``impl_mu(...)`` is eq. 11.

    And ``schedule.eps_coef`` is eq. 11's weight.
    """
    symbols = [beta, alpha_bar_prev, xt, eps]

    @examples(40)
    @given(schedules(), st.data(), vectors(3), vectors(3))
    def run(schedule, data, xt_, eps_):
        t = data.draw(st.integers(1, schedule.T), label="t")
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        x, e = torch.from_numpy(xt_)[None], torch.from_numpy(eps_)[None]
        coef = lambda c: reference(c, symbols, *args, 0, 0)  # noqa: E731
        # scales: |terms| of each linear form, whatever cancels between them
        assert_close(
            f"x0_from_eps at t={t}",
            impl_x0(schedule, x, t, e)[0],
            reference(X0_FROM_EPS, symbols, *args, xt_, eps_),
            coef(1 / sp.sqrt(alpha_bar)) * (np.abs(xt_) + np.abs(eps_)),
        )
        assert_close(
            f"mu_from_eps at t={t}",
            impl_mu(schedule, x, t, e)[0],
            reference(MU_FROM_EPS, symbols, *args, xt_, eps_),
            coef(1 / sp.sqrt(alpha)) * np.abs(xt_) + coef(beta / sp.sqrt((1 - alpha_bar) * alpha)) * np.abs(eps_),
        )
        assert_close(f"eps_coef at t={t}", schedule.eps_coef[t], coef(beta / sp.sqrt(1 - alpha_bar)))

    run()


def check_batched_float32(
    q_sample_=q_sample,
    posterior=posterior_mean_var,
    impl_x0=x0_from_eps,
    impl_mu=mu_from_eps,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Eqs. 4, 7, 9, 11 on a float32 batch whose rows have different t.

    The gather in ``at`` and the casts.

    Each row is held to the derivation at its own t, evaluated at 30 digits from the same (exactly
    representable) float32 inputs, within FLOAT32_RTOL of the magnitude of the formula's terms.
    """
    symbols = [beta, alpha_bar_prev, x0, xt, eps]

    def one(schedule, t, x0_, eps_, xt_):
        batch = t.numel()
        got = {
            "q_sample": q_sample_(schedule, x0_, t, eps_),
            "mu_tilde": posterior(schedule, x0_, xt_, t)[0],
            "x0_from_eps": impl_x0(schedule, xt_, t, eps_),
            "mu_from_eps": impl_mu(schedule, xt_, t, eps_),
        }
        for name, value in got.items():
            if value.dtype != dtype or value.shape != (batch, 2):
                raise AssertionError(
                    f"{name}: {value.dtype} of shape {tuple(value.shape)} for {dtype} inputs {(batch, 2)}"
                )
        forms = {
            "q_sample": sp.sqrt(alpha_bar) * x0 + sp.sqrt(1 - alpha_bar) * eps,
            "mu_tilde": MU_TILDE,
            "x0_from_eps": X0_FROM_EPS,
            "mu_from_eps": MU_FROM_EPS,
        }
        for i in range(batch):
            args = (float(schedule.betas[t[i] - 1]), alpha_bar_at(schedule, int(t[i]) - 1))
            row = [v[i].double().numpy() for v in (x0_, xt_, eps_)]
            for name, form in forms.items():
                want = reference(form, symbols, *args, *row)
                # the magnitude of the formula's terms: the same linear form with every term made positive
                terms = sum(
                    abs(float(reference(sp.diff(form, s_), symbols, *args, 0, 0, 0))) * np.abs(v)
                    for s_, v in zip((x0, xt, eps), row)
                )
                assert_close(
                    f"{name} ({dtype}) at row {i}, t = {int(t[i])} of {t.tolist()}",
                    got[name][i],
                    want,
                    terms,
                    rtol=FLOAT32_RTOL,
                )

    # a fixed case first: small betas and x_0 = 0, where float32 arithmetic on 1 - alpha_bar would show
    fixed = Schedule(torch.tensor([1e-4, 3e-4, 0.02, 0.3], dtype=torch.float64))
    x0_fixed = torch.tensor([[0.0, 0.0], [0.0, 0.25], [-1.5, 1.0], [1.0, -2.0]], dtype=dtype)
    eps_fixed = torch.tensor([[1.7, -2.3], [2.9, 1.1], [-0.4, 0.8], [1.3, -0.6]], dtype=dtype)
    one(fixed, torch.tensor([1, 2, 4, 1]), x0_fixed, eps_fixed, 0.7 * eps_fixed - 0.3)

    @examples(25)
    @given(schedules(max_T=12), st.data(), st.integers(2, 6))
    def run(schedule, data, batch):
        t = torch.tensor(data.draw(st.lists(st.integers(1, schedule.T), min_size=batch, max_size=batch), label="t"))

        def floats(b):
            return st.floats(-b, b, width=32, allow_subnormal=False)

        def draw(b):
            return torch.tensor(
                data.draw(st.lists(floats(b), min_size=batch * 2, max_size=batch * 2)),
                dtype=dtype,
            ).reshape(batch, 2)

        one(schedule, t, draw(1.0), draw(3.0), draw(3.0))

    run()


def check_bound_weights(impl=vlb_terms) -> None:
    """``impl`` (vlb_terms) at t >= 2 grows by eq. 12's weight times ||eps - eps_theta||^2.

    For both sigma_t^2.
    """

    @examples(30)
    @given(
        schedules(min_T=2),
        st.data(),
        vectors(3, 1.0),
        vectors(3),
        vectors(3, 1.0),
        st.sampled_from(["beta", "beta_tilde"]),
    )
    def run(schedule, data, x0_, eps_, delta, choice):
        t = data.draw(st.integers(2, schedule.T), label="t")
        x, e = torch.from_numpy(x0_)[None], torch.from_numpy(eps_)[None]
        steps = torch.tensor([t])
        exact = impl(lambda x_t, s: e, schedule, x, steps, e, choice)  # eps_theta = eps: only C is left
        off = impl(lambda x_t, s: e - torch.from_numpy(delta)[None], schedule, x, steps, e, choice)
        s2 = {"beta": beta, "beta_tilde": BETA_TILDE}[choice]
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        want = reference(WEIGHT.subs(sigma2, s2), [beta, alpha_bar_prev], *args) * float((delta**2).sum())
        # each coordinate's KL adds log(sigma^2 / beta_tilde), beta_tilde / sigma^2 and 1 before the mean
        # term, so rounding is relative to their size even where they cancel (sigma^2 = beta_tilde)
        ratio = float(reference(BETA_TILDE / s2, [beta, alpha_bar_prev], *args))
        assert_close(
            f"eq. 12 weight at t={t}, sigma^2 = {choice}",
            off - exact,
            want,
            3 * (abs(np.log(ratio)) + ratio + 1) + want,
        )

    run()
