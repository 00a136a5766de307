"""The VE-VP bridge x_VE = x_VP / sqrt(alpha_bar_t) [Song21 §4.3].

And eps_theta the same function under it.

sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t); the claim of eps* uses [6.S183 Q1b].

DDPM's x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps [Ho20 eq. 4], divided by sqrt(alpha_bar_t),
is x_0 + sigma_t eps: the same x_0 and the same eps, so every function of (x_0, eps) — the noise
itself above all — has the same conditional law given x_VP or x_VE (the map is a bijection for each
t). Hence E[eps | x_VP] = E[eps | x_VE]: the optimal eps_theta of the beta world at (x_VP, t) is the
sigma world's at (x_VP / sqrt(alpha_bar_t), sigma_t), and the loss ||eps_theta - eps||^2 is the
same number in both worlds, so trained networks move between them by this change of variables.
Symbolically: the map, its inverse alpha_bar = 1 / (1 + sigma^2), and the closed-form eps* of a
Gaussian component (claim q1b) in both coordinates. Bindings: ``ddpm.sigma.schedule.sigmas_from_alpha_bar``,
``sigma_twin``, ``vp_to_ve``, ``ve_to_vp`` against the derived forms, and ``ddpm.oracles.SigmaOptimalEps``
against ``OptimalEps`` through the map for mixtures and finite sets.
"""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.oracles import GaussianMixture, OptimalEps, SigmaOptimalEps
from ddpm.sigma.schedule import sigma_twin, sigmas_from_alpha_bar, ve_to_vp, vp_to_ve
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules, vectors
from ddpm.specs._sym import Derivation, equal
from ddpm.specs.q1b_optimal_eps import COMPONENT_MEAN, a, s
from ddpm.specs.q1b_optimal_eps import eps_star as eps_star_of
from ddpm.specs.q1b_optimal_eps import x as x_sym

ab = sp.Symbol("alpha_bar_t", positive=True)
x0, eps, x_vp = sp.symbols("x_0 epsilon x_VP", real=True)
sigma = sp.Symbol("sigma", positive=True)

# The claim's statements [Song21 §4.3].
SIGMA_OF_ALPHA_BAR = sp.sqrt((1 - ab) / ab)
VP_TO_VE = x_vp / sp.sqrt(ab)


def derivation(sigma_of_alpha_bar: sp.Expr = SIGMA_OF_ALPHA_BAR, vp_to_ve_: sp.Expr = VP_TO_VE) -> Derivation:
    """The map from Ho et al.'s x_t to x_0 + sigma eps, its inverse, and eps* unchanged by it."""
    d = Derivation(
        "x_VE = x_VP / sqrt(alpha_bar_t), sigma_t = sqrt((1 - alpha_bar_t)/alpha_bar_t); eps_theta is the same "
        "function under the map [Song21 §4.3; 6.S183 Q1b]"
    )
    vp = sp.sqrt(ab) * x0 + sp.sqrt(1 - ab) * eps
    d.step("DDPM's x_t [Ho20 eq. 4]", sp.Eq(x_vp, vp))
    ve = vp_to_ve_.subs(x_vp, vp)
    d.step(
        "divided by sqrt(alpha_bar_t) it is x_0 + sigma_t eps with sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)",
        equal(ve, x0 + sigma_of_alpha_bar * eps, "x_VP / sqrt(alpha_bar) vs x_0 + sigma eps"),
    )
    d.step(
        "and back: alpha_bar_t = 1 / (1 + sigma_t^2), x_VP = x_VE / sqrt(1 + sigma_t^2)",
        equal(1 / (1 + sigma_of_alpha_bar**2), ab, "alpha_bar from sigma"),
    )
    vp_eps = eps_star_of(COMPONENT_MEAN).subs({a: sp.sqrt(ab), s: sp.sqrt(1 - ab)})  # eps*(x_VP) of N(m, c), claim q1b
    ve_eps = eps_star_of(COMPONENT_MEAN).subs({a: 1, s: sigma_of_alpha_bar})
    d.step(
        "eps* of a Gaussian component N(m, c) in the beta world, at x_VP "
        "(claim q1b, a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar))",
        sp.Eq(sp.Symbol("eps*_VP"), vp_eps.subs(x_sym, x_vp)),
    )
    d.step(
        "is the sigma world's eps*(x_VE, sigma_t) at x_VE = x_VP / sqrt(alpha_bar_t): the same function",
        equal(vp_eps.subs(x_sym, x_vp), ve_eps.subs(x_sym, vp_to_ve_), "eps*_VP vs eps*_VE through the map"),
    )
    d.step(
        "For any p_0: the map is a bijection for each t, so E[eps | x_VP] = E[eps | x_VE] (the same event), "
        "and a mixture's eps* is its components' softmax average with the same responsibilities",
        "checked numerically for mixtures and finite sets by the binding",
    )
    return d


def check_bridge(
    impl_sigmas=sigmas_from_alpha_bar, impl_twin=sigma_twin, impl_to_ve=vp_to_ve, impl_to_vp=ve_to_vp
) -> None:
    """The sigma twin of random schedules and the map of random points against the derived forms.

    at 30 digits.
    """

    @examples(40)
    @given(schedules(max_T=12), vectors(3))
    def run(schedule, x):
        T = schedule.T
        abar = [alpha_bar_at(schedule, t) for t in range(T + 1)]
        want = np.array([float(mpmath.sqrt((1 - v) / v)) if v != 1 else 0.0 for v in abar])
        assert_close("sigmas_from_alpha_bar", impl_sigmas(schedule.alpha_bar), want, np.maximum(want, 1e-8), rtol=1e-10)
        assert_close("sigma_twin", impl_twin(schedule), want, np.maximum(want, 1e-8), rtol=1e-10)
        t = T
        xv = torch.from_numpy(x)[None]
        ve = impl_to_ve(xv, schedule.alpha_bar[t])
        assert_close(
            "vp_to_ve", ve[0], reference(VP_TO_VE, [x_vp, ab], x, abar[t]), np.abs(x) / float(mpmath.sqrt(abar[t]))
        )
        assert_close("ve_to_vp(vp_to_ve(x))", impl_to_vp(ve, schedule.alpha_bar[t])[0], x, np.abs(x) + 1e-300)

    run()


def check_eps_same_function(impl=SigmaOptimalEps) -> None:
    """``impl(mixture)`` on the VE point equals ``OptimalEps(mixture, schedule)`` on the VP point.

    ``impl(mixture)(x_VP / sqrt(alpha_bar_t), sigma_t)`` equals ``OptimalEps(mixture, schedule)(x_VP, t)``.
    """

    @examples(30)
    @given(schedules(max_T=12), st.data(), st.booleans())
    def run(schedule, data, finite):
        g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31), label="seed"))
        if finite:
            mixture = GaussianMixture.finite(torch.randn(6, 2, generator=g, dtype=torch.float64))
        else:
            mixture = GaussianMixture.isotropic(
                [0.3, 0.7], torch.randn(2, 2, generator=g, dtype=torch.float64), [0.3, 0.6]
            )
        t = torch.randint(1, schedule.T + 1, (8,), generator=g)
        x = torch.randn(8, 2, generator=g, dtype=torch.float64) * 1.5
        vp = OptimalEps(mixture, schedule)(x, t)
        twin = sigma_twin(schedule)
        ve = impl(mixture)(vp_to_ve(x, schedule.alpha_bar[t]), twin[t])
        # both sides divide (x - a E[x_0 | x]) by s: a few ulps of (|x| + |E|) / s each
        scale = ((x.abs() + mixture.means.abs().max()) / schedule.one_minus_alpha_bar[t].sqrt()[:, None]).numpy()
        assert_close("eps*_VE through the map vs eps*_VP", ve, vp.numpy(), scale, rtol=1e-10)

    run()
