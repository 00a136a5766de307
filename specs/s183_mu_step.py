"""The mu-step: at mu = 1/2 on the sigma twin it is Algorithm 2 with beta_tilde [PY23 App. A].

It keeps the marginal.

At mu = 1/2 on the sigma twin the step is Algorithm 2 with sigma_t^2 = beta_tilde_t, and with the true eps it
keeps the marginal [Ho20 alg. 2; Song21 §4.3].

One step from sigma to sigma' < sigma: sigma_p = (sigma' / sigma^mu)^(1/(1-mu)), eta = sqrt(sigma'^2 - sigma_p^2),
x <- x - (sigma - sigma_p) eps_bar + eta z. (1) On the sigma twin of a beta schedule
(sigma_t^2 = (1 - alpha_bar_t) / alpha_bar_t) at mu = 1/2, sigma_p = sigma_{t-1}^2 / sigma_t; mapped back by
x_VP = sqrt(alpha_bar) x_VE on both sides,
the step's coefficients of x_t, eps_theta and z are Algorithm 2's, 1 / sqrt(alpha_t),
-beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t)) and sqrt(beta_tilde_t), identically in beta_t and alpha_bar_{t-1}
(at t = 1 sigma_0 = 0 makes sigma_p = eta = 0:
Algorithm 2's z = 0). (2) With the true eps (x = x_0 + sigma eps, eps_bar = eps), the step gives
x_0 + sigma_p eps + eta z, and sigma_p eps + eta z ~ N(0, (sigma_p^2 + eta^2) I) = N(0, sigma'^2 I): x_0 + sigma' eps'
in law, for every mu in [0, 1). Bindings: ``ddpm.sigma.sampler.step_levels`` and ``gam_mu_step`` against
the derived forms and against Algorithm 2 at 30 digits; Monte Carlo: the step's output on mixture
data against the mixture convolved with N(0, sigma'^2 I), through ``ddpm.stats.check_mc``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture
from ddpm.sigma.sampler import gam_mu_step, step_levels
from ddpm.sigma.schedule import sigma_twin, ve_to_vp, vp_to_ve
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules
from ddpm.specs._mc import check_matches_mixture
from ddpm.specs._sym import Derivation, alpha_bar, alpha_bar_prev, beta, equal, xt
from ddpm.specs.alg1_alg2_lines import ALG2_STEP, z
from ddpm.specs.eq07_posterior import BETA_TILDE
from ddpm.specs.eq12_eps_weight import eps_theta, sigma2
from ddpm.stats import MonteCarloCheck

sig, sig_next = sp.symbols("sigma sigma'", positive=True)
mu = sp.Symbol("mu", positive=True)
x_ve, x0, eps = sp.symbols("x x_0 epsilon", real=True)

# The claim's statements [PY23 App. A].
SIGMA_P = (sig_next / sig**mu) ** (1 / (1 - mu))
ETA = sp.sqrt(sig_next**2 - SIGMA_P**2)


def mu_step(sigma_p: sp.Expr = SIGMA_P, eta: sp.Expr = ETA) -> sp.Expr:
    """x - (sigma - sigma_p) eps_theta + eta z, the step with eps_bar = eps_theta [PY23 App. A]."""
    return x_ve - (sig - sigma_p) * eps_theta + eta * z


def derivation(sigma_p: sp.Expr = SIGMA_P, eta: sp.Expr = ETA) -> Derivation:
    d = Derivation(
        "The mu = 1/2 step on the sigma twin is Algorithm 2 with sigma_t^2 = beta_tilde_t; with the true eps "
        "the mu-step keeps the marginal [PY23 App. A; Ho20 alg. 2]"
    )
    step = mu_step(sigma_p, eta)
    d.step(
        "The step [PY23 App. A]",
        sp.Eq(sp.Symbol("x'"), step),
        sp.Eq(sp.Symbol("sigma_p"), sigma_p),
        sp.Eq(sp.Symbol("eta"), eta),
    )
    twin = {
        sig: sp.sqrt((1 - alpha_bar) / alpha_bar),
        sig_next: sp.sqrt((1 - alpha_bar_prev) / alpha_bar_prev),
        mu: sp.Rational(1, 2),
    }
    d.step(
        "mu = 1/2: sigma_p = sigma'^2 / sigma",
        equal(sigma_p.subs(mu, sp.Rational(1, 2)), sig_next**2 / sig, "sigma_p at mu = 1/2"),
    )
    vp = sp.sqrt(alpha_bar_prev) * step.subs(twin).subs(x_ve, xt / sp.sqrt(alpha_bar))
    alg2 = ALG2_STEP.subs(sigma2, BETA_TILDE)
    d.step(
        "On the twin (sigma_t^2 = (1 - alpha_bar_t)/alpha_bar_t), from x_VE = x_t / sqrt(alpha_bar_t) "
        "to x_{t-1} = sqrt(alpha_bar_{t-1}) x'_VE:"
    )
    for name, var in (("x_t", xt), ("eps_theta", eps_theta), ("z", z)):
        d.step(
            f"the coefficient of {name} is Algorithm 2's with sigma_t^2 = beta_tilde_t",
            equal(
                sp.diff(vp, var),
                sp.diff(alg2, var),
                f"coefficient of {name}, mu-step vs alg. 2",
                where={beta: (0.01, 0.5), alpha_bar_prev: (0.05, 0.95)},
            ),
        )
    equal(vp, alg2, "mu-step vs alg. 2", where={beta: (0.01, 0.5), alpha_bar_prev: (0.05, 0.95)})
    d.step(
        "t = 1: alpha_bar_0 = 1 gives sigma' = 0, so sigma_p = 0 and eta = 0: Algorithm 2's z = 0 at t = 1",
        equal(sp.limit(sigma_p.subs(mu, sp.Rational(1, 2)), sig_next, 0), 0, "sigma_p at sigma' = 0"),
    )
    true_step = step.subs({x_ve: x0 + sig * eps, eps_theta: eps})
    d.step(
        "With the true eps (x = x_0 + sigma eps, eps_bar = eps) the step is x_0 + sigma_p eps + eta z",
        equal(true_step, x0 + sigma_p * eps + eta * z, "the step on x_0 + sigma eps"),
    )
    d.step(
        "eps, z independent N(0, 1): Var(sigma_p eps + eta z) = sigma_p^2 + eta^2 = sigma'^2, for every mu in [0, 1)",
        equal(
            sp.diff(true_step, eps) ** 2 + sp.diff(true_step, z) ** 2,
            sig_next**2,
            "the marginal variance",
            where={mu: (0.01, 0.95), sig: (1.0, 2.0), sig_next: (0.05, 0.95)},
        ),
    )
    return d


def check_step_levels(impl=step_levels) -> None:
    """``impl(sigma, sigma', mu)`` against the derived sigma_p and eta at 30 digits."""
    symbols = [sig, sig_next, mu]

    @examples(60)
    @given(st.floats(0.01, 20.0), st.floats(0.0, 1.0), st.floats(0.0, 0.95))
    def run(s, frac, m):
        sn = s * frac
        p, e = impl(s, sn, m)
        want_p = reference(SIGMA_P, symbols, s, sn, m) if sn > 0 else 0.0
        assert_close("sigma_p", p, want_p, s)
        # eta = sqrt(sigma'^2 - sigma_p^2) is ill-conditioned where sigma_p ~ sigma' (its root): compare eta^2
        assert_close("eta^2", e**2, reference(ETA**2, symbols, s, sn, m) if sn > 0 else 0.0, s**2)

    run()


def check_mu_step_is_alg2(impl=gam_mu_step) -> None:
    """``impl`` at mu = 1/2 on the sigma twin, mapped to the beta world.

    vs Algorithm 2's line 4 with beta_tilde.
    """
    symbols = [beta, alpha_bar_prev, xt, eps_theta, z]
    alg2 = ALG2_STEP.subs(sigma2, BETA_TILDE)

    @examples(40)
    @given(schedules(max_T=12), st.data())
    def run(schedule, data):
        t = data.draw(st.integers(1, schedule.T), label="t")
        g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31), label="seed"))
        x, e, zz = (torch.randn(1, 3, generator=g, dtype=torch.float64) for _ in range(3))
        twin = sigma_twin(schedule)
        out = impl(vp_to_ve(x, schedule.alpha_bar[t]), float(twin[t]), float(twin[t - 1]), e, 0.5, zz)
        got = ve_to_vp(out, schedule.alpha_bar[t - 1])[0]
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        want = reference(alg2, symbols, *args, x[0].numpy(), e[0].numpy(), zz[0].numpy())
        scale = (x.abs() + e.abs()) / np.sqrt(1 - args[0]) * (
            1 + 1 / float(schedule.one_minus_alpha_bar[t].sqrt())
        ) + zz.abs()
        assert_close(f"mu-step on the twin at t={t} vs alg. 2", got, want, scale[0].numpy())

    run()


MIXTURE = GaussianMixture.isotropic([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [0.3, 0.5])
LEVELS = [(2.0, 1.0), (0.5, 0.2), (5.0, 4.0)]
MUS = (0.0, 0.25, 0.5, 0.8)
N = 40000


def check_keeps_marginal(
    mu_: float, n: int, generator: torch.Generator, impl=gam_mu_step, *, raise_on_fail: bool = True
) -> list[MonteCarloCheck]:
    """x_0 + sigma eps through one step with eps_bar = eps is distributed as x_0 + sigma' eps'.

    One check per level pair.
    """
    checks = []
    for s, sn in LEVELS:
        x0_ = MIXTURE.sample(n, generator)
        e = torch.randn(x0_.shape, generator=generator, dtype=torch.float64)
        zz = torch.randn(x0_.shape, generator=generator, dtype=torch.float64)
        out = impl(x0_ + s * e, s, sn, e, mu_, zz)
        target = GaussianMixture(MIXTURE.weights, MIXTURE.means, MIXTURE.covs + sn**2)
        name = f"mu = {mu_}: one step {s} -> {sn} vs x_0 + sigma' eps"
        checks.append(check_matches_mixture(name, out, target, raise_on_fail=raise_on_fail))
    return checks
