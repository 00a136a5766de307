"""The theory of the two problem sets and of Ho et al. (2020) as executable claims.

One module per claim.

``CLAIMS`` lists them in teaching order; ``show(name)`` renders a claim's derivation for a class
(``ddpm derive NAME`` prints the same). Each module derives its result with sympy and binds it to
``ddpm`` (see docs/design.md, "How a spec binds theory to code"). A module holds the claim and its
checks; its pytest entry points, with the planted deviations the checks must reject, are
``tests/specs/test_<module>.py``.
"""

from __future__ import annotations

import importlib

__all__ = ["CLAIMS", "show"]

# short name -> (module, one-line title with its source)
CLAIMS: dict[str, tuple[str, str]] = {
    "eq04": ("eq04_marginal", "q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) by induction [Ho20 eq. 4]"),
    "ex31": (
        "ex31_prior_limit",
        "q(x_T | x_0) -> N(0, I) as T grows; the paper's T = 1000 and the sheet's T = 100 [02460 ex. 3.1]",
    ),
    "eq07": ("eq07_posterior", "q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I) by Bayes' rule [Ho20 eqs. 6-7]"),
    "ex32": ("ex32_elbo_decomposition", "Eq. 3 rewritten as eq. 5, L_T + L_{t-1} + L_0 [02460 ex. 3.2; Ho20 App. A]"),
    "ex33": ("ex33_kl_to_mse", "L_{t-1} = ||mu_tilde - mu_theta||^2 / 2 sigma_t^2 + C [02460 ex. 3.3; Ho20 eq. 8]"),
    "eq12": ("eq12_eps_weight", "The eps-parameterisation and eq. 12's weight [Ho20 eqs. 9-12]"),
    "eq13": ("eq13_decoder", "L_0, the discretised decoder, and negative_elbo against eq. 3 [Ho20 eqs. 3, 13]"),
    "sec32": ("sec32_sigma_choices", "sigma_t^2 = beta_t or beta_tilde_t, the two optima [Ho20 §3.2]"),
    "alg": ("alg1_alg2_lines", "Algorithms 1 and 2 line by line [Ho20 alg. 1, alg. 2, eq. 14]"),
    "q1a": ("q1a_mmse", "argmin_f E||f(y) - x||^2 = E[x | y] [6.S183 Q1a]"),
    "q1b": ("q1b_optimal_eps", "eps* = (x - a E[x_0 | x]) / s = -s grad log p, closed forms for mixtures [6.S183 Q1b]"),
    "q1c": ("q1c_transport", "The transport equation for v = E[sigma' eps | x_t = x] [6.S183 Q1c]"),
    "s183-vevp": (
        "s183_ve_vp",
        "x_VE = x_VP / sqrt(alpha_bar_t), sigma_t = sqrt((1 - alpha_bar_t)/alpha_bar_t); "
        "eps_theta the same function [Song21 §4.3]",
    ),
    "s183-mu": (
        "s183_mu_step",
        "The mu = 1/2 step on the sigma twin is Algorithm 2 with beta_tilde; "
        "the mu-step keeps the marginal [PY23 App. A]",
    ),
    "s183-ddim": (
        "s183_ddim_flow",
        "DDIM is the Euler step of dx/dsigma = eps*; flow matching is the same ODE [6.S183 Q1c, Q2]",
    ),
    "s183-gam": (
        "s183_gam_law_mc",
        "The gamma sampler on a Gaussian's eps* is a linear recursion with a closed-form law [PY23 App. A; 6.S183 Q3]",
    ),
}


def show(name: str) -> str:
    """The derivation of claim ``name`` (a key of ``CLAIMS``), rendered in unicode math."""
    if name not in CLAIMS:
        raise ValueError(f"unknown claim {name!r}; expected one of {', '.join(CLAIMS)}")
    return importlib.import_module(f"ddpm.specs.{CLAIMS[name][0]}").derivation().render()
