"""DDIM is the Euler step of dx/dsigma = eps* [6.S183 Q1c, Q2; Song21 §4.3].

Flow matching is the same ODE.

The ODE is Q1c's transport with sigma as time; flow matching's is it under x_FM = x_VE / (1 + sigma),
t = sigma / (1 + sigma).

(1) Q1c with the time t := sigma (sigma(t) = t, sigma'(t) = 1): the velocity E[sigma' eps | x_sigma = x] is
eps*(x, sigma), and p_sigma and eps* satisfy d/dsigma p + div(eps* p) = 0 (checked for a Gaussian p_0);
so the ODE dx/dsigma = eps*(x, sigma) transports p_sigma, and its Euler step from sigma to sigma' is
x + (sigma' - sigma) eps*(x, sigma) = x - (sigma - sigma') eps*: the DDIM step (the mu = 0, gam = 1 step
of PY23 App. A). (2) Flow matching: u = x / (1 + sigma) and t = sigma / (1 + sigma) turn x_0 + sigma eps
into (1 - t) x_0 + t eps; eps - x_0 = (1 + sigma) eps - x, so v*(u, t) = E[eps - x_0 | u] = (1 + sigma) eps* - x;
and along any solution of dx/dsigma = eps*, d/dt [x / (1 + sigma)] = (1 + sigma) eps* - x (chain rule,
dsigma/dt = (1 + sigma)^2): the same ODE. (3) More: one Euler step of du/dt = v* from t to t', mapped
back, is exactly one DDIM step from sigma to sigma'. Bindings: ``gam_mu_step`` at mu = 0 against the Euler
step; ``ddpm.sigma.flow_matching`` (``ts_from_sigmas``, ``ve_to_fm``, ``VelocityFromEps``, ``fm_euler_sample``)
against the derived forms and against ``gam_mu_sample``'s DDIM, for mixtures and finite sets.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture, SigmaOptimalEps
from ddpm.sigma.flow_matching import VelocityFromEps, fm_euler_sample, fm_to_ve, ts_from_sigmas, ve_to_fm
from ddpm.sigma.sampler import DDIM, gam_mu_sample, gam_mu_step
from ddpm.specs._bind import assert_close, examples, reference
from ddpm.specs._sym import Derivation, equal, normal_logpdf
from ddpm.specs.q1b_optimal_eps import COMPONENT_MEAN, a, c, m, s
from ddpm.specs.q1b_optimal_eps import eps_star as eps_star_of
from ddpm.specs.q1b_optimal_eps import x as x_sym
from ddpm.specs.q1c_transport import VELOCITY, dsig
from ddpm.specs.q1c_transport import sig as q1c_sigma

sigma, sigma_next = sp.symbols("sigma sigma'", positive=True)
x, x0, eps, E = sp.symbols("x x_0 epsilon E", real=True)  # E stands for eps*(x, sigma)
t_sym = sp.Symbol("t", positive=True)

# The claim's statements.
T_OF_SIGMA = sigma / (1 + sigma)
X_FM = x / (1 + sigma)
V_STAR = (1 + sigma) * E - x  # v*(u, t) in terms of x = (1 + sigma) u and E = eps*(x, sigma)
DDIM_STEP = x - (sigma - sigma_next) * E


def derivation(t_of_sigma: sp.Expr = T_OF_SIGMA, x_fm: sp.Expr = X_FM, v_star: sp.Expr = V_STAR) -> Derivation:
    d = Derivation(
        "DDIM is the Euler step of dx/dsigma = eps*(x, sigma); flow matching is the same ODE under "
        "u = x / (1 + sigma), t = sigma / (1 + sigma) [6.S183 Q1c, Q2 §6.3]"
    )
    # (1) Q1c with sigma as time
    v = VELOCITY.subs(dsig, 1)
    d.step(
        "Q1c's velocity E[sigma'(t) eps | x_t = x] with t := sigma (sigma' = 1) is eps*(x, sigma) "
        "(claim q1b, a = 1, s = sigma)",
        equal(v, eps_star_of(COMPONENT_MEAN).subs({a: 1, s: q1c_sigma}), "Q1c velocity with sigma as time"),
    )
    log_p = normal_logpdf(x_sym, m, c + q1c_sigma**2)
    residual = sp.diff(log_p, q1c_sigma) + sp.diff(v, x_sym) + v * sp.diff(log_p, x_sym)
    d.step(
        "Gaussian p_0 = N(m, c): (d/dsigma p_sigma + d/dx (eps* p_sigma)) / p_sigma = 0",
        equal(residual, 0, "transport equation in sigma"),
    )
    euler = x + (sigma_next - sigma) * E
    d.step(
        "The Euler step of dx/dsigma = eps* from sigma to sigma' is the DDIM step x - (sigma - sigma') eps*",
        equal(euler, DDIM_STEP, "Euler step vs DDIM"),
    )
    # (2) flow matching
    t_prime = t_of_sigma.subs(sigma, sigma_next)
    path = x_fm.subs(x, x0 + sigma * eps)
    d.step(
        "u = x / (1 + sigma), t = sigma / (1 + sigma) turn x_0 + sigma eps into (1 - t) x_0 + t eps",
        equal(path, (1 - t_of_sigma) * x0 + t_of_sigma * eps, "the flow-matching path"),
    )
    target = (eps - x0).subs(x0, x - sigma * eps)
    d.step(
        "The flow-matching target: eps - x_0 = (1 + sigma) eps - x, "
        "so v*(u, t) = E[eps - x_0 | u] = (1 + sigma) eps*(x, sigma) - x",
        equal(target.subs(eps, E), v_star, "v* from eps*"),
    )
    xs = sp.Function("x")(sigma)
    u_of_sigma = x_fm.subs(x, xs)
    du_dt = sp.diff(u_of_sigma, sigma) / sp.diff(t_of_sigma, sigma)
    du_dt = du_dt.subs(sp.Derivative(xs, sigma), E).subs(xs, x)
    d.step(
        "Along dx/dsigma = eps*: du/dt = (du/dsigma) / (dt/dsigma) = (1 + sigma) eps* - x = v*: the same ODE",
        equal(du_dt, v_star, "the flow-matching ODE from dx/dsigma = eps*"),
    )
    d.step(
        "and sigma = t / (1 - t) inverts the time change",
        equal(t_of_sigma.subs(sigma, t_sym / (1 - t_sym)), t_sym, "t(sigma(t))", where={t_sym: (0.05, 0.95)}),
    )
    # (3) Euler steps
    u_next = x_fm + (t_prime - t_of_sigma) * v_star
    d.step(
        "One Euler step u' = u + (t' - t) v*(u, t), mapped back x' = (1 + sigma') u', is one DDIM step exactly",
        equal((1 + sigma_next) * u_next, DDIM_STEP, "flow-matching Euler step vs DDIM step"),
    )
    return d


def check_ddim_is_euler(impl=gam_mu_step) -> None:
    """``impl`` at mu = 0 (eps_bar = eps*) against the Euler step of dx/dsigma = eps*, at 30 digits."""
    symbols = [x, sigma, sigma_next, E]

    @examples(40)
    @given(st.floats(-3, 3), st.floats(0.01, 20), st.floats(0, 1), st.floats(-3, 3))
    def run(x_, s_, frac, e_):
        sn = s_ * frac
        got = impl(torch.tensor([[x_]], dtype=torch.float64), s_, sn, torch.tensor([[e_]], dtype=torch.float64), 0.0)
        want = reference(x + (sigma_next - sigma) * E, symbols, x_, s_, sn, e_)
        assert_close("DDIM step vs Euler step", got[0, 0], want, abs(x_) + s_ * abs(e_))

    run()


def _mixture(data, finite: bool) -> GaussianMixture:
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31), label="seed"))
    if finite:
        return GaussianMixture.finite(torch.randn(7, 2, generator=g, dtype=torch.float64))
    return GaussianMixture.isotropic([0.4, 0.6], torch.randn(2, 2, generator=g, dtype=torch.float64), [0.2, 0.5])


def check_flow_matching(
    impl_v=VelocityFromEps, impl_t=ts_from_sigmas, impl_u=ve_to_fm, impl_euler=fm_euler_sample
) -> None:
    """The map and v* against the derived forms, and the Euler sampler of v* against DDIM through the map."""
    symbols = [x, sigma, E]

    @examples(25)
    @given(st.data(), st.booleans(), st.lists(st.floats(0.01, 10.0), min_size=2, max_size=8, unique=True))
    def run(data, finite, levels):
        mixture = _mixture(data, finite)
        sigmas = torch.tensor(sorted(levels, reverse=True), dtype=torch.float64)
        assert_close("t(sigma)", impl_t(sigmas), reference(T_OF_SIGMA, [sigma], sigmas.numpy()))
        g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31), label="start"))
        xs = torch.randn(16, 2, generator=g, dtype=torch.float64) * 2
        s0 = float(sigmas[0])
        u = impl_u(xs, s0)
        assert_close("u = x / (1 + sigma)", u, reference(X_FM, [x, sigma], xs.numpy(), s0))
        eps_star = SigmaOptimalEps(mixture)
        e = eps_star(xs, s0).numpy()
        v = impl_v(eps_star)(u, torch.full((16,), float(impl_t(sigmas)[0]), dtype=torch.float64))
        assert_close(
            "v*(u, t) = (1 + sigma) eps* - x",
            v,
            reference(V_STAR, symbols, xs.numpy(), s0, e),
            (1 + s0) * np.abs(e) + np.abs(xs.numpy()) + 1e-3,
        )
        ddim = gam_mu_sample(eps_star, sigmas, xs.clone(), **DDIM)
        fm = fm_to_ve(impl_euler(impl_v(eps_star), impl_t(sigmas), u), float(impl_t(sigmas)[-1]))
        scale = (xs.abs().max() + s0 * np.abs(e).max() * len(levels)).item()
        assert_close("Euler on v* mapped back vs DDIM", fm, ddim.numpy(), scale, rtol=1e-9)

    run()
