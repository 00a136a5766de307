"""argmin_f E||f(y) - x||^2 = E[x | y]: the pointwise minimisation in general dimension [6.S183 Q1a].

E_{x,y} ||f(y) - x||^2 = E_y [J_y(f(y))] with J_y(f) = E[||f - x||^2 | y] = f^T f - 2 f^T m + E[||x||^2 | y],
m = E[x | y]. Each J_y is minimised on its own (the hint): its gradient 2 f - 2 m vanishes only at
f = m, and its Hessian 2 I is positive definite, so m is the unique global minimiser. The same in a
case written out in full: a discrete joint law of (x, y) with free probabilities, minimised over
the values f(y_1), f(y_2) at once, gives E[x | y_j] at each y_j.
Binding: ``ddpm.oracles.GaussianMixture.posterior_mean`` of a finite data set (the MMSE denoiser).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture
from ddpm.specs._bind import assert_close, examples, reference
from ddpm.specs._sym import Derivation, equal

n = sp.Symbol("n", integer=True, positive=True)
f, m = sp.MatrixSymbol("f", n, 1), sp.MatrixSymbol("m", n, 1)
second_moment = sp.Symbol("E[‖x‖² | y]", positive=True)


def conditional_loss(f_, m_):
    """J_y(f) = E[||f - x||^2 | y] by linearity, with m = E[x | y] [6.S183 Q1a]."""
    return f_.T * f_ - 2 * f_.T * m_ + second_moment * sp.Identity(1)


def derivation(loss=conditional_loss) -> Derivation:
    """The stationary point and Hessian in dimension n, then a discrete case minimised in full."""
    d = Derivation("argmin_f E||f(y) - x||^2 = E[x | y], pointwise, in dimension n [6.S183 Q1a]")
    J = loss(f, m)
    d.step("For fixed y, with m = E[x | y]", sp.Eq(sp.Symbol("J_y(f)"), J))
    grad = J.diff(f)
    d.step("Gradient in f", sp.Eq(sp.Symbol("∇J"), grad))
    if grad.subs(f, m).doit() != sp.ZeroMatrix(n, 1):
        raise AssertionError(f"the gradient {grad} does not vanish at f = E[x | y]")
    hessian = grad.diff(f)
    d.step(
        "It vanishes at f = m and only there (it is 2 (f - m)); the Hessian is positive definite",
        sp.Eq(sp.Symbol("∇²J"), hessian),
    )
    if hessian != 2 * sp.Identity(n):
        raise AssertionError(f"the Hessian {hessian} is not 2 I")
    # A discrete law: x in {u_1, u_2, u_3}, y in {y_1, y_2}, P(x = u_i, y = y_j) = p_ij (free, positive).
    u = sp.symbols("u_1:4", real=True)
    p = sp.Matrix(3, 2, sp.symbols("p_1:4(1:3)", positive=True))
    g = sp.symbols("f_1:3", real=True)  # f(y_1), f(y_2)
    total = sum(
        p[i, j] * loss(sp.Matrix([g[j]]), sp.Matrix([u[i]]))[0, 0].subs(second_moment, u[i] ** 2)
        for i in range(3)
        for j in range(2)
    )
    d.step(
        "A discrete law P(x = u_i, y = y_j) = p_ij: the whole objective E||f(y) - x||^2", sp.Eq(sp.Symbol("E"), total)
    )
    sol = sp.solve([sp.diff(total, gj) for gj in g], g, dict=True)[0]
    for j in range(2):
        cond_mean = sum(p[i, j] * u[i] for i in range(3)) / sum(p[i, j] for i in range(3))
        d.step(
            f"minimised over f(y_1), f(y_2) at once: f(y_{j + 1}) = E[x | y = y_{j + 1}]",
            equal(sol[g[j]], cond_mean, f"argmin at y_{j + 1} vs E[x | y_{j + 1}]"),
        )
    return d


def check_posterior_mean(impl=GaussianMixture.posterior_mean, K: int = 3, D: int = 2) -> None:
    """``impl(GaussianMixture.finite(points), x, a, s)`` is E[x_0 | a x_0 + s eps = x] of the data set."""
    a, s = sp.symbols("a s", positive=True)
    x, pts = sp.symbols(f"x_1:{D + 1}", real=True), sp.Matrix(K, D, sp.symbols(f"q_1:{K + 1}(1:{D + 1})", real=True))
    # Bayes: P(x_0 = q_i | x) is proportional to N(x; a q_i, s^2 I); the argmin is the weighted mean.
    w = [sp.exp(-sum((x[j] - a * pts[i, j]) ** 2 for j in range(D)) / (2 * s**2)) for i in range(K)]
    means = [sum(w[i] * pts[i, j] for i in range(K)) / sum(w) for j in range(D)]
    symbols = [a, s, *x, *pts]

    @examples(25)
    @given(
        st.lists(st.floats(-2, 2), min_size=K * D, max_size=K * D),
        st.lists(st.floats(-3, 3), min_size=D, max_size=D),
        st.floats(0.1, 1.0),
        st.floats(0.05, 2.0),
    )
    def run(points, x_, a_, s_):
        got = impl(
            GaussianMixture.finite(torch.tensor(points, dtype=torch.float64).reshape(K, D)),
            torch.tensor([x_], dtype=torch.float64),
            a_,
            s_,
        )[0]
        want = np.array([reference(mj, symbols, a_, s_, *x_, *points) for mj in means])
        # a convex combination of the points: its terms are bounded by max |q|, softmax rounding a few ulp
        assert_close("E[x_0 | x], finite data set", got, want, np.max(np.abs(points)) + 1e-3)

    run()
