"""p_t and v(x, t) = E[sigma'(t) eps | x_t = x] satisfy the transport equation [6.S183 Q1c].

d/dt p_t + div(v p_t) = 0.

For x_t = x_0 + sigma(t) eps with sigma(t) a general function of t: (1) for Gaussian p_0 = N(m, c I),
p_t = N(m, (c + sigma^2) I) and v = sigma' (x - E[x_0 | x]) / sigma (claim q1b with a = 1, s = sigma),
and the equation, divided by p_t, reads d/dt log p_t + div v + v . grad log p_t = 0: checked in 1D,
written out in D = 2 and 3, and for general D through ||x - m||^2 and div(x - m) = D. (2) The hint's
characteristic-function argument for any p_0 in 1D: g(t, k) = E[e^{ik x_t}] = phi_0(k) e^{-sigma^2 k^2 / 2};
the Fourier transform of div(v p_t) is -ik E[e^{ik x_t} v(x_t, t)] = -ik E[e^{ik x_t} sigma' eps] (tower
property), = -ik sigma' phi_0(k) E[eps e^{ik sigma eps}]; the two transforms cancel, and equal
transforms mean equal functions.
Binding: ``ddpm.oracles.transport_velocity`` against the derived v, and the equation itself checked
by autograd on ddpm's own p_t (``GaussianMixture.log_prob``) and v for a mixture.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture, transport_velocity
from ddpm.specs._bind import assert_close, examples, reference
from ddpm.specs._sym import Derivation, equal, gaussian_integral, normal_logpdf
from ddpm.specs.q1b_optimal_eps import COMPONENT_MEAN, a, c, m, mixture_reference, s
from ddpm.specs.q1b_optimal_eps import eps_star as eps_star_of
from ddpm.specs.q1b_optimal_eps import x as x_

t, k = sp.symbols("t k", real=True)
sigma_fn = sp.Function("sigma")(t)
sig, dsig = sp.Symbol("sigma", positive=True), sp.Symbol("sigma'", real=True)

# The claim's statement: the velocity for Gaussian p_0 = N(m, c), per coordinate.
VELOCITY = dsig * eps_star_of(COMPONENT_MEAN).subs({a: 1, s: sig})


def _residual(log_p: sp.Expr, velocity: list, xs: list) -> sp.Expr:
    """(d/dt p + div(v p)) / p = d/dt log p + div v + v . grad log p, sigma(t) and sigma'(t) as symbols."""
    expr = sp.diff(log_p, t) + sum(sp.diff(vi, xi) + vi * sp.diff(log_p, xi) for vi, xi in zip(velocity, xs))
    return expr.subs(sp.Derivative(sigma_fn, t), dsig).subs(sigma_fn, sig)


def derivation(velocity: sp.Expr = VELOCITY) -> Derivation:
    """The transport equation for Gaussian p_0 (1D, D = 2, 3, general D) and by characteristic functions."""
    d = Derivation("d/dt p_t + div(v p_t) = 0 for v(x, t) = E[sigma'(t) eps | x_t = x] [6.S183 Q1c]")
    v_t = velocity.subs({sig: sigma_fn, dsig: sp.Derivative(sigma_fn, t)})
    d.step(
        "Gaussian p_0 = N(m, c): p_t = N(m, c + sigma(t)^2), and by Q1b (a = 1, s = sigma)",
        sp.Eq(sp.Symbol("v"), velocity),
    )
    for dim in (1, 2, 3):
        xs, ms = sp.symbols(f"x_1:{dim + 1}", real=True), sp.symbols(f"m_1:{dim + 1}", real=True)
        log_p = sum(normal_logpdf(xi, mi, c + sigma_fn**2) for xi, mi in zip(xs, ms))
        vs = [v_t.subs({x_: xi, m: mi}) for xi, mi in zip(xs, ms)]
        d.step(
            f"D = {dim}: (d/dt p_t + div(v p_t)) / p_t = 0",
            equal(_residual(log_p, vs, xs), 0, f"transport equation, D = {dim}"),
        )
    D, r2 = sp.Symbol("D", integer=True, positive=True), sp.Symbol("‖x − m‖²", nonnegative=True)
    lam = sp.Symbol("lambda", real=True)  # v = lam (x - m): the isotropic velocity's one scalar
    lam_expr = sp.cancel(velocity.subs(x_, m + 1) - velocity.subs(x_, m))
    if sp.cancel(velocity - lam_expr * (x_ - m)) != 0:
        raise AssertionError(f"the velocity {velocity} is not proportional to x - m")
    var = c + sig**2
    dt_log_p = (-D / 2 * sp.log(2 * sp.pi * (c + sigma_fn**2)) - r2 / (2 * (c + sigma_fn**2))).diff(t)
    general = (dt_log_p.subs(sp.Derivative(sigma_fn, t), dsig).subs(sigma_fn, sig) + lam * D + lam * (-r2 / var)).subs(
        lam, lam_expr
    )  # div(lam (x - m)) = lam D; grad log p = -(x - m)/var
    d.step(
        "General D: v = lambda (x - m), div v = lambda D, v . grad log p_t = -lambda ||x - m||^2 / (c + sigma^2)",
        equal(general, 0, "transport equation, general D"),
    )
    phi0 = sp.Function("phi_0")(k)
    g = phi0 * sp.exp(-(sigma_fn**2) * k**2 / 2)
    d.step("Any p_0, 1D: g(t, k) = E[exp(i k x_t)] = phi_0(k) E[exp(i k sigma eps)]", sp.Eq(sp.Symbol("g"), g))
    eps = sp.Symbol("epsilon", real=True)
    log_z, mean = gaussian_integral(normal_logpdf(eps, 0, 1) + sp.I * k * sig * eps, eps)
    stein = sp.exp(log_z) * mean  # E[eps e^{ik sigma eps}]
    d.step(
        "E[eps exp(i k sigma eps)] by completing the square",
        equal(stein, sp.I * k * sig * sp.exp(-(k**2) * sig**2 / 2), "Stein"),
    )
    dt_g = sp.diff(g, t).subs(sp.Derivative(sigma_fn, t), dsig).subs(sigma_fn, sig)
    d.step(
        "F[d/dt p_t] = d/dt g equals -F[div(v p_t)] = i k sigma' phi_0(k) E[eps exp(i k sigma eps)]",
        equal(dt_g, sp.I * k * dsig * phi0 * stein, "Fourier transform of the transport equation"),
    )
    return d


def check_transport(impl=transport_velocity, K: int = 2, D: int = 2) -> None:
    """``impl(mixture, x, sigma, dsigma)`` is sigma' eps*.

    With ddpm's p_t it solves the transport equation.
    """
    symbols, _, eps = mixture_reference(K, D)

    @examples(25)
    @given(
        st.lists(st.floats(0.1, 1.0), min_size=K, max_size=K),
        st.lists(st.floats(-2, 2), min_size=K * D, max_size=K * D),
        st.lists(st.floats(0.05, 1.5), min_size=K, max_size=K),
        st.lists(st.floats(-3, 3), min_size=D, max_size=D),
        st.floats(0.1, 2.0),
        st.floats(-2.0, 2.0),
    )
    def run(w, means, std, x, sigma_, dsigma_):
        w = [wk / sum(w) for wk in w]
        mixture = GaussianMixture.isotropic(w, torch.tensor(means, dtype=torch.float64).reshape(K, D), std)
        want = dsigma_ * np.array(
            [reference(e, symbols, 1.0, sigma_, *w, *(sd**2 for sd in std), *means, *x) for e in eps]
        )
        xt = torch.tensor([x], dtype=torch.float64, requires_grad=True)
        sigma_t = torch.tensor(sigma_, dtype=torch.float64, requires_grad=True)
        v = impl(mixture, xt, sigma_t, dsigma_)
        # v = sigma' (x - E[x_0 | x]) / sigma: its terms are bounded by (|x| + max |m| + |x|) |sigma'| / sigma
        scale = abs(dsigma_) * (2 * np.abs(x) + np.max(np.abs(means)) + 1) / sigma_
        assert_close("v(x, t)", v[0], want, scale)
        # d/dt log p_t + div v + v . grad log p_t = 0, every derivative by autograd in float64
        log_p = mixture.log_prob(xt, 1.0, sigma_t).sum()
        grad_x, grad_sigma = torch.autograd.grad(log_p, (xt, sigma_t), create_graph=True)
        div = sum(torch.autograd.grad(v[0, j], xt, retain_graph=True)[0][0, j] for j in range(D))
        assert isinstance(div, torch.Tensor)  # D >= 1 terms, so not sum's start 0
        terms = torch.stack([dsigma_ * grad_sigma, div, (v * grad_x).sum()]).detach()
        assert_close("transport equation residual", terms.sum(), 0.0, terms.abs().sum())

    run()
