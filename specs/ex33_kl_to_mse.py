"""L_{t-1} = ||mu_tilde - mu_theta||^2 / (2 sigma_t^2) + C [02460 ex. 3.3; Ho20 eq. 8].

L_{t-1} = KL(N(mu_tilde, beta_tilde I) || N(mu_theta, sigma_t^2 I)) = ||mu_tilde - mu_theta||^2 / (2 sigma_t^2) + C.

From the sheet's general formula (its eq. 29, Rasmussen and Williams eq. A.23)

    KL(N_0 || N_1) = 1/2 (log det(S_1 S_0^-1) + (mu_0 - mu_1)^T S_1^-1 (mu_0 - mu_1) + tr(S_1^-1 S_0) - D)

with S_0 = beta_tilde I, S_1 = sigma_t^2 I in D dimensions (D a symbol), term by term: only the
quadratic form holds mu_theta, and it is ||mu_tilde - mu_theta||^2 / sigma_t^2. So

    C = D/2 (log(sigma_t^2 / beta_tilde) + beta_tilde / sigma_t^2 - 1),

free of mu_theta (of theta) when sigma_t^2 is fixed. Binding: ``ddpm.beta.losses.normal_kl`` summed over
coordinates.
"""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.losses import normal_kl
from ddpm.specs._bind import assert_close, examples, reference
from ddpm.specs._sym import Derivation, equal

D = sp.Symbol("D", integer=True, positive=True)
beta_tilde, sigma2 = sp.symbols("beta_tilde sigma_t^2", positive=True)
r2 = sp.Symbol("‖μ̃ − μθ‖²", nonnegative=True)  # ||mu_tilde - mu_theta||^2
mu_tilde, mu_theta = sp.MatrixSymbol("mu_tilde", D, 1), sp.MatrixSymbol("mu_theta", D, 1)

# The claim's statement: the constant of eq. 28 [02460 ex. 3.3].
C = D / 2 * (sp.log(sigma2 / beta_tilde) + beta_tilde / sigma2 - 1)


def sheet_kl(mu0, S0, mu1, S1, dim):
    """The terms of the sheet's eq. 29.

    (log det, quadratic form (1x1 matrix), trace, -D); KL is half their sum.
    """
    return sp.log(sp.det(S1 * S0.inv())), (mu0 - mu1).T * S1.inv() * (mu0 - mu1), sp.trace(S1.inv() * S0), -dim


def derivation(kl=sheet_kl, c: sp.Expr = C) -> Derivation:
    """Split eq. 29 into the mean term and C, show C free of mu_theta.

    And check it against the stated ``c``.
    """
    d = Derivation(
        "L_{t-1} = ||mu_tilde - mu_theta||^2 / (2 sigma_t^2) + C, C free of theta [02460 ex. 3.3; Ho20 eq. 8]"
    )
    S0, S1 = beta_tilde * sp.Identity(D), sigma2 * sp.Identity(D)
    log_det, quad, trace, minus_d = kl(mu_tilde, S0, mu_theta, S1, D)
    log_det = sp.expand_log(log_det.subs(sp.Determinant(sp.Identity(D)), 1), force=True)
    d.step("log det(S_1 S_0^-1) with S_0 = beta_tilde I, S_1 = sigma_t^2 I", sp.Eq(sp.Symbol("log det"), log_det))
    d.step("tr(S_1^-1 S_0)", sp.Eq(sp.Symbol("tr"), trace))
    diff = mu_tilde - mu_theta
    if (quad - diff.T * diff / sigma2).doit() != sp.ZeroMatrix(1, 1):
        raise AssertionError(f"the quadratic form {quad} is not ||mu_tilde - mu_theta||^2 / sigma_t^2")
    d.step("The quadratic form is the squared distance over sigma_t^2", "(μ̃ − μθ)ᵀ S₁⁻¹ (μ̃ − μθ) = ‖μ̃ − μθ‖² / σₜ²")
    rest = [log_det, trace, minus_d]
    if any(sp.sympify(term).has(mu_theta) for term in rest):
        raise AssertionError("a term of eq. 29 other than the quadratic form depends on mu_theta")
    d.step(
        "No other term holds mu_theta; the KL is therefore", sp.Eq(sp.Symbol("L_{t-1}"), (r2 / sigma2 + sum(rest)) / 2)
    )
    derived_c = sp.expand(sum(rest) / 2)
    d.step("and C = L_{t-1} - ||mu_tilde - mu_theta||^2 / (2 sigma_t^2) is", equal(derived_c, c, "C of eq. 28"))
    # The same in D = 3 written out coordinate by coordinate, without matrix symbols.
    m0, m1 = sp.Matrix(sp.symbols("m0_1:4", real=True)), sp.Matrix(sp.symbols("m1_1:4", real=True))
    terms = kl(m0, beta_tilde * sp.eye(3), m1, sigma2 * sp.eye(3), 3)
    explicit = (terms[0] + terms[1][0, 0] + terms[2] + terms[3]) / 2
    d.step(
        "Check in D = 3, coordinates written out",
        equal(explicit, (m0 - m1).dot(m0 - m1) / (2 * sigma2) + c.subs(D, 3), "eq. 28 in D = 3"),
    )
    return d


def check_gaussian_kl(impl=normal_kl) -> None:
    """``impl(mean1, var1, mean2, var2)`` summed over D coordinates equals eq. 28 in float64."""
    expr = r2 / (2 * sigma2) + C

    @examples(40)
    @given(st.data(), st.integers(1, 6), st.floats(1e-3, 2.0), st.floats(1e-3, 2.0))
    def run(data, dim, bt, s2):
        m0, m1 = (np.array(data.draw(st.lists(st.floats(-3, 3), min_size=dim, max_size=dim))) for _ in range(2))
        got = impl(
            torch.from_numpy(m0),
            torch.tensor(bt, dtype=torch.float64),
            torch.from_numpy(m1),
            torch.tensor(s2, dtype=torch.float64),
        ).sum()
        with mpmath.workdps(30):
            dist = mpmath.fsum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(m0, m1))
        want = reference(expr, [r2, D, beta_tilde, sigma2], dist, dim, bt, s2)
        # the terms' magnitudes: each is computed to a few ulp of itself, whatever cancels in the sum
        scale = dim * (abs(np.log(s2 / bt)) + bt / s2 + 1) + float(dist) / s2
        assert_close(f"KL in D={dim}", got, want, scale)

    run()
