"""The exact minimiser of the denoising loss [6.S183 Q1b].

eps*(x) = (x - a E[x_0 | x]) / s = -s grad log p(x).

For x = a x_0 + s eps (the sheet's x_sigma = x_0 + sigma eps is a = 1, s = sigma; DDPM's x_t is
a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)), Q1a with target eps gives eps* = E[eps | x], and
eps = (x - a x_0) / s makes it (x - a E[x_0 | x]) / s. Bayes' rule with the density N(x; a x_0, s^2 I):
E[x_0 | x] = int x_0 mu(x_0) N(x; a x_0, s^2 I) dx_0 / int mu(x_0) N(x; a x_0, s^2 I) dx_0. For a Gaussian
mixture mu = sum_k w_k N(m_k, c_k I) both integrals are Gaussian (completing the square): component k
contributes w_k N(x; a m_k, (a^2 c_k + s^2) I) and the posterior mean m_k + a c_k (x - a m_k) / (a^2 c_k + s^2),
so E[x_0 | x] is their softmax-weighted average; c_k = 0 is a finite data set, whose eps* memorises
it. Tweedie: eps* = -s grad log p, symbolically for two components in 1D, by autograd in D dimensions.
Binding: ``ddpm.oracles.GaussianMixture`` (``posterior_mean``, ``eps_star``, ``score``, ``log_prob``).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture
from ddpm.specs._bind import assert_close, examples, reference
from ddpm.specs._sym import Derivation, equal, gaussian_integral, normal_logpdf

a, s, c = sp.symbols("a s c", positive=True)
x, x0, m = sp.symbols("x x_0 m", real=True)

# The claim's statements, per coordinate: component evidence, component posterior mean, eps*.
COMPONENT_LOG_EVIDENCE = normal_logpdf(x, a * m, a**2 * c + s**2)
COMPONENT_MEAN = m + a * c * (x - a * m) / (a**2 * c + s**2)


def eps_star(post_mean: sp.Expr) -> sp.Expr:
    """(x - a E[x_0 | x]) / s, the optimal noise prediction given the posterior mean [6.S183 Q1b]."""
    return (x - a * post_mean) / s


def derivation(log_evidence: sp.Expr = COMPONENT_LOG_EVIDENCE, component_mean: sp.Expr = COMPONENT_MEAN) -> Derivation:
    """Bayes' rule per Gaussian component, the mixture's softmax, the finite set, and Tweedie in 1D."""
    d = Derivation("eps*(x) = (x - a E[x_0 | x]) / s = -s grad log p(x), in closed form for mixtures [6.S183 Q1b]")
    d.step(
        "By Q1a with target eps, eps* = E[eps | x]; eps = (x - a x_0)/s is linear in x_0, so",
        equal(((x - a * x0) / s).subs(x0, sp.Symbol("E[x_0 | x]")), eps_star(sp.Symbol("E[x_0 | x]")), "E[eps | x]"),
    )
    joint = normal_logpdf(x0, m, c) + normal_logpdf(x, a * x0, s**2)
    d.step("Bayes: mu(x_0) N(x; a x_0, s^2) for one Gaussian component mu = N(m, c), one coordinate", joint)
    log_z, mean = gaussian_integral(joint, x0)
    d.step(
        "Its integral over x_0 (completing the square) is the component's evidence",
        equal(log_z, log_evidence, "log int mu(x_0) N(x; a x_0, s^2) dx_0"),
    )
    d.step("and the posterior mean of x_0 under the component", equal(mean, component_mean, "component posterior mean"))
    d.step(
        "Mixture: E[x_0 | x] = sum_k softmax_k(log w_k + log N(x; a m_k, (a^2 c_k + s^2) I)) "
        "(m_k + a c_k (x - a m_k) / (a^2 c_k + s^2))",
        "the component responsibilities are Bayes' rule over k with the evidences above",
    )
    d.step(
        "Finite data set (c_k = 0): each component's mean is its data point, the ideal denoiser memorises",
        equal(component_mean.subs(c, 0), m, "c = 0"),
    )
    w, ms, cs = sp.symbols("w", positive=True), sp.symbols("m_1:3", real=True), sp.symbols("c_1:3", positive=True)
    ev = [sp.exp(log_evidence.subs({m: mk, c: ck})) for mk, ck in zip(ms, cs)]
    weights = [w, 1 - w]
    p = sum(wk * e for wk, e in zip(weights, ev))
    post = sum(wk * e * component_mean.subs({m: mk, c: ck}) for wk, e, mk, ck in zip(weights, ev, ms, cs)) / p
    d.step(
        "Tweedie, two components in 1D: p(x) = w N(x; a m_1, a^2 c_1 + s^2) + (1 - w) N(x; a m_2, a^2 c_2 + s^2)",
        sp.Eq(sp.Symbol("p(x)"), p),
    )
    equal(-s * sp.diff(sp.log(p), x), eps_star(post), "Tweedie in 1D", where={w: (0.05, 0.95)})
    d.step(
        "and differentiating its log: -s d/dx log p(x) = (x - a E[x_0 | x]) / s = eps*(x), identically in x",
        sp.Eq(-s * sp.Derivative(sp.log(sp.Function("p")(x)), x), eps_star(sp.Symbol("E[x_0 | x]"))),
    )
    return d


def mixture_reference(K: int, D: int):
    """Symbols and the derived E[x_0 | x], eps*, score of a K-component isotropic mixture in D dimensions."""
    ws, cs = sp.symbols(f"w_1:{K + 1}", positive=True), sp.symbols(f"c_1:{K + 1}", positive=True)
    ms, xs = sp.Matrix(K, D, sp.symbols(f"m_1:{K + 1}(1:{D + 1})", real=True)), sp.symbols(f"x_1:{D + 1}", real=True)
    log_joint = [
        sp.log(ws[k]) + sum(COMPONENT_LOG_EVIDENCE.subs({x: xs[j], m: ms[k, j], c: cs[k]}) for j in range(D))
        for k in range(K)
    ]
    resp = [sp.exp(lj) for lj in log_joint]
    post = [
        sum(r * COMPONENT_MEAN.subs({x: xs[j], m: ms[k, j], c: cs[k]}) for k, r in enumerate(resp)) / sum(resp)
        for j in range(D)
    ]
    eps = [eps_star(pj).subs(x, xs[j]) for j, pj in enumerate(post)]
    return [a, s, *ws, *cs, *ms, *xs], post, eps


def check_oracles(impl=GaussianMixture, K: int = 2, D: int = 2) -> None:
    """``impl``'s posterior_mean, eps_star and score against the derivation.

    Tweedie by autograd of log_prob.
    """
    symbols, post, eps = mixture_reference(K, D)

    @examples(25)
    @given(
        st.lists(st.floats(0.1, 1.0), min_size=K, max_size=K),
        st.lists(st.floats(-2, 2), min_size=K * D, max_size=K * D),
        st.lists(st.floats(0.05, 1.5), min_size=K, max_size=K),
        st.lists(st.floats(-3, 3), min_size=D, max_size=D),
        st.floats(0.1, 1.0),
        st.floats(0.1, 2.0),
    )
    def run(w, means, std, x_, a_, s_):
        w = [wk / sum(w) for wk in w]
        mixture = impl.isotropic(w, torch.tensor(means, dtype=torch.float64).reshape(K, D), std)
        xt = torch.tensor([x_], dtype=torch.float64, requires_grad=True)
        args = (a_, s_, *w, *(sd**2 for sd in std), *means, *x_)
        want_post = np.array([reference(e, symbols, *args) for e in post])
        want_eps = np.array([reference(e, symbols, *args) for e in eps])
        # the terms of (x - a E[x_0 | x]) / s bound its magnitude; softmax and solves keep a few ulp of them
        scale = (np.abs(x_) + a_ * np.abs(want_post)) / s_ + 1e-3
        assert_close(
            "E[x_0 | x]",
            mixture.posterior_mean(xt, a_, s_)[0],
            want_post,
            np.abs(want_post) + np.max(np.abs(means)) + 1e-3,
        )
        assert_close("eps*(x)", mixture.eps_star(xt, a_, s_)[0], want_eps, scale)
        assert_close("score(x)", mixture.score(xt, a_, s_)[0], -want_eps / s_, scale / s_)
        (grad,) = torch.autograd.grad(mixture.log_prob(xt, a_, s_).sum(), xt)
        assert_close("-s grad log p (autograd) vs eps*", -s_ * grad[0], want_eps, scale)

    run()
