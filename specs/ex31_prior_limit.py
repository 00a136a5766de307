"""q(x_T | x_0) tends to N(0, I) as T grows [02460 ex. 3.1].

For any schedule 0 < beta_1 < ... < beta_T < 1.

Every alpha_s = 1 - beta_s <= 1 - beta_1, so 0 < alpha_bar_T <= (1 - beta_1)^T, which tends to 0;
KL(q(x_T | x_0) || N(0, I)) is, per coordinate, (alpha_bar x_0^2 - alpha_bar - log(1 - alpha_bar)) / 2
(the sheet's eq. 29 in one dimension, claim ex33), continuous in alpha_bar with limit 0 at
alpha_bar = 0: by the squeeze, the KL tends to 0. The paper's figures follow [Ho20 §4]: the linear
schedule 1e-4..0.02 with T = 1000 has L_T about 1e-5 bits/dim for data in [-1, 1] (the paper's words) and
alpha_bar_T about 4e-5 (computed here; the paper does not print it); the sheet's default T = 100 leaves
alpha_bar_T about 0.36 (computed here), far from N(0, I).
Bindings: ``ddpm.beta.schedule.linear_schedule`` and ``ddpm.beta.losses.prior_kl``.
"""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.losses import prior_kl
from ddpm.beta.schedule import Schedule, linear_schedule
from ddpm.specs._bind import alpha_bar, assert_close, examples, linear_betas, reference, vectors
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._sym import Derivation, equal, x0
from ddpm.specs.ex33_kl_to_mse import sheet_kl

T = sp.Symbol("T", integer=True, positive=True)
beta_1, c = sp.symbols("beta_1 c", positive=True)
a_bar = sp.Symbol("alpha_bar_T", positive=True)


def linear_alpha_bar(steps: int, first: str = "1e-4", last: str = "0.02") -> mpmath.mpf:
    """alpha_bar_T of the linear schedule [Ho20 §4], at 50 digits from the exact decimal endpoints."""
    return alpha_bar(linear_betas(steps, first, last), steps, dps=50)


def derivation(kl=sheet_kl) -> Derivation:
    """alpha_bar_T -> 0 and L_T -> 0 as limits in sympy, then the paper's and the sheet's figures."""
    d = Derivation("q(x_T | x_0) -> N(0, I) as T -> oo for any 0 < beta_1 < ... < beta_T < 1 [02460 ex. 3.1]")
    d.step(
        "beta_s >= beta_1 gives alpha_s <= 1 - beta_1, hence", "0 < alpha_bar_T = prod_s (1 - beta_s) <= (1 - beta_1)^T"
    )
    ratio = 1 / (1 + c)
    d.step(
        "Write 1 - beta_1 = 1 / (1 + c) with c = beta_1 / (1 - beta_1) > 0",
        equal(ratio.subs(c, beta_1 / (1 - beta_1)), 1 - beta_1, "1 - beta_1 = 1/(1 + c)"),
    )
    bound_limit = sp.limit(ratio**T, T, sp.oo)
    d.step(
        "The bound vanishes, so alpha_bar_T -> 0 by the squeeze",
        equal(sp.Limit(ratio**T, T, sp.oo), bound_limit, "limit"),
    )
    if bound_limit != 0:
        raise AssertionError(f"(1 - beta_1)^T tends to {bound_limit}, not 0")
    terms = kl(sp.Matrix([sp.sqrt(a_bar) * x0]), sp.Matrix([[1 - a_bar]]), sp.Matrix([0]), sp.Matrix([[1]]), 1)
    per_coord = sp.expand((terms[0] + terms[1][0, 0] + terms[2] + terms[3]) / 2)
    d.step(
        "L_T per coordinate, eq. 29 with N(sqrt(alpha_bar_T) x_0, 1 - alpha_bar_T) and N(0, 1)",
        sp.Eq(sp.Symbol("L_T"), per_coord),
    )
    kl_limit = sp.limit(per_coord, a_bar, 0, "+")
    d.step(
        "It is continuous in alpha_bar_T with limit 0, so L_T -> 0 (each of D coordinates)",
        equal(sp.Limit(per_coord, a_bar, 0, "+"), kl_limit, "limit"),
    )
    if kl_limit != 0:
        raise AssertionError(f"L_T tends to {kl_limit} as alpha_bar_T -> 0, not 0")
    uniform = sp.integrate(per_coord, (x0, -1, 1)) / 2 / sp.log(2)
    worst = per_coord.subs(x0, 1) / sp.log(2)
    d.step(
        "In bits/dim: averaged over x_0 ~ U[-1, 1], and at the worst case x_0 = +-1",
        sp.Eq(sp.Symbol("E L_T"), uniform),
        sp.Eq(sp.Symbol("max L_T"), worst),
    )
    paper, sheet = linear_alpha_bar(1000), linear_alpha_bar(100)
    figures = {
        name: float(expr.subs(a_bar, sp.Float(str(ab), 30)))
        for name, expr, ab in [
            ("paper_mean", uniform, paper),
            ("paper_worst", worst, paper),
            ("sheet_worst", worst, sheet),
        ]
    }
    d.step(
        "Ho et al.'s linear schedule, T = 1000 [Ho20 §4]: alpha_bar_T about 4e-5, L_T about 1e-5 bits/dim",
        f"alpha_bar_1000 = {float(paper):.4e}, E L_T = {figures['paper_mean']:.2e}, "
        f"max L_T = {figures['paper_worst']:.2e} bits/dim",
    )
    d.step(
        "The trap of the sheet's default T = 100: x_T keeps sqrt(alpha_bar_T) = 0.6 of x_0",
        f"alpha_bar_100 = {float(sheet):.4f}, max L_T = {figures['sheet_worst']:.3f} bits/dim",
    )
    if not (3.5e-5 < paper < 4.5e-5 and 5e-6 < figures["paper_mean"] < 2e-5 and figures["paper_worst"] < 5e-5):
        raise AssertionError(
            f"T = 1000: alpha_bar_T = {float(paper):.3g}, L_T = {figures} bits/dim, not the paper's figures"
        )
    if not (0.35 < sheet < 0.37 and figures["sheet_worst"] > 0.1):
        raise AssertionError(f"T = 100: alpha_bar_T = {float(sheet):.3g}, L_T = {figures['sheet_worst']:.3g}: no trap")
    return d


def check_prior(impl_schedule=linear_schedule, impl_prior=prior_kl) -> None:
    """ddpm's linear alpha_bar_T (T = 100, 1000), its L_T.

    And alpha_bar_T <= (1 - beta_1)^T on drawn schedules.
    """
    for steps in (100, 1000):
        # float64 betas from linspace differ from the decimals by an ulp; T of them keep ~T ulp (< 1e-10)
        assert_close(f"linear alpha_bar_{steps}", impl_schedule(steps).alpha_bar[steps], float(linear_alpha_bar(steps)))
    per_coord = (a_bar * x0**2 - a_bar - sp.log(1 - a_bar)) / 2

    @examples(40)
    @given(st.lists(st.floats(1e-4, 0.5), min_size=1, max_size=30).map(sorted), vectors(4, 1.0))
    def run(betas, x0_):
        schedule = Schedule(torch.tensor(betas, dtype=torch.float64))
        ab = alpha_bar_at(schedule, schedule.T)
        got = impl_prior(schedule, torch.from_numpy(x0_)[None])[0]
        want = reference(per_coord, [a_bar, x0], ab, x0_)
        assert_close(
            f"L_T with T={schedule.T}",
            got,
            want.sum(),
            np.abs(reference(sp.log(1 - a_bar), [a_bar], ab)) * 4 + want.sum(),
        )
        assert float(schedule.alpha_bar[-1]) <= (1 - betas[0]) ** schedule.T * (1 + 1e-12), (
            "alpha_bar_T > (1 - beta_1)^T"
        )

    run()
