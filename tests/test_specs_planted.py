"""Every check of specs/ can fail: each symbolic derivation rejects a planted wrong formula, and each
binding rejects a subtly wrong implementation of the ddpm function it binds."""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import ddpm.beta.sampler
from ddpm import specs
from ddpm.beta.forward import q_step_sample
from ddpm.beta.losses import Bound, negative_elbo, normal_kl, vlb_terms
from ddpm.beta.posterior import mu_from_eps
from ddpm.beta.schedule import at
from ddpm.oracles import GaussianMixture
from ddpm.specs import (
    _bind,
    _sym,
    eq04_marginal,
    eq07_posterior,
    eq12_eps_weight,
    ex31_prior_limit,
    ex32_elbo_decomposition,
    ex33_kl_to_mse,
    q1a_mmse,
    q1b_optimal_eps,
    q1c_transport,
    sec32_sigma_choices,
)
from ddpm.specs import alg1_alg2_lines as alg
from ddpm.specs._sym import alpha, alpha_bar, beta

# --- the machinery -----------------------------------------------------------------------------


def test_zero_rejects_what_it_cannot_evaluate():
    f = sp.Function("f")(sp.Symbol("x"))
    with pytest.raises(AssertionError):
        _sym.zero(f - sp.Symbol("x"), "undefined function")


def test_zero_numeric_fallback_rejects_a_tiny_difference():
    x = sp.Symbol("x", positive=True)
    with pytest.raises(AssertionError):
        _sym.zero(sp.gamma(x + 1) - x * sp.gamma(x) - x * sp.Rational(1, 10**12), "gamma recurrence, planted")
    _sym.zero(sp.gamma(x + 1) - x * sp.gamma(x), "gamma recurrence")


def test_every_claim_renders():
    for name in specs.CLAIMS:
        assert "\n1. " in specs.show(name)
    with pytest.raises(ValueError, match="unknown claim"):
        specs.show("nope")


# --- planted wrong formulas: the symbolic layer ------------------------------------------------

PLANTED_FORMULAS = {
    "eq07: alpha_t where sqrt(alpha_t) belongs": lambda: eq07_posterior.derivation(
        mu_tilde=eq07_posterior.MU_TILDE.subs(sp.sqrt(alpha), alpha)
    ),
    "eq07: beta_tilde with the alpha_bar indices swapped": lambda: eq07_posterior.derivation(
        beta_tilde=(1 - alpha_bar) / (1 - _sym.alpha_bar_prev) * beta
    ),
    "ex33: tr(S_1 S_0^-1) for tr(S_1^-1 S_0)": lambda: ex33_kl_to_mse.derivation(
        kl=lambda m0, S0, m1, S1, D: (
            *ex33_kl_to_mse.sheet_kl(m0, S0, m1, S1, D)[:2],
            sp.trace(S1 * S0.inverse() if isinstance(S0, sp.MatrixExpr) else S1 * S0.inv()),
            -D,
        )
    ),
    "eq12: the weight without alpha_t": lambda: eq12_eps_weight.derivation(
        weight=beta**2 / (2 * eq12_eps_weight.sigma2 * (1 - alpha_bar))
    ),
    "eq04: mean alpha_bar x_0": lambda: eq04_marginal.derivation(mean=eq04_marginal.a_bar * _sym.x0),
    "ex31: eq. 29 without -D": lambda: ex31_prior_limit.derivation(kl=lambda *a: (*ex33_kl_to_mse.sheet_kl(*a)[:3], 0)),
    "ex32: Bayes' rule with the marginals swapped": lambda: ex32_elbo_decomposition.derivation(
        bayes=lambda t: (
            ex32_elbo_decomposition.log_marg[1]
            if t == 1
            else ex32_elbo_decomposition.log_post[t]
            + ex32_elbo_decomposition.log_marg[t - 1]
            - ex32_elbo_decomposition.log_marg[t]
        )
    ),
    "q1a: J_y with f^T m for 2 f^T m": lambda: q1a_mmse.derivation(
        loss=lambda f, m: f.T * f - f.T * m + q1a_mmse.second_moment * sp.Identity(1)
    ),
    "q1b: component mean without a": lambda: q1b_optimal_eps.derivation(
        component_mean=q1b_optimal_eps.m
        + q1b_optimal_eps.c
        * (q1b_optimal_eps.x - q1b_optimal_eps.a * q1b_optimal_eps.m)
        / (q1b_optimal_eps.a**2 * q1b_optimal_eps.c + q1b_optimal_eps.s**2)
    ),
    "q1c: velocity sigma' (x - E[x_0|x]) / sigma^2": lambda: q1c_transport.derivation(
        velocity=q1c_transport.VELOCITY / q1c_transport.sig
    ),
    "sec32: beta_tilde for x_0 ~ N(0, I)": lambda: sec32_sigma_choices.derivation(
        standard_normal=eq07_posterior.BETA_TILDE
    ),
    "alg: line 4 without the square root of 1 - alpha_bar_t": lambda: alg.derivation(
        alg2_step=alg.ALG2_STEP.subs(sp.sqrt(1 - alpha_bar), 1 - alpha_bar)
    ),
}


@pytest.mark.parametrize("name", PLANTED_FORMULAS)
def test_derivation_rejects_planted_formula(name):
    with pytest.raises(AssertionError):
        PLANTED_FORMULAS[name]()


# --- planted wrong implementations: the binding layer ------------------------------------------


def _posterior_alpha_not_sqrt(s, x0, xt, t):
    """mu_tilde with alpha_t where sqrt(alpha_t) belongs."""
    return at(s.posterior_coef_x0, t, xt) * x0 + at(s.posterior_coef_xt * s.alpha.sqrt(), t, xt) * xt, at(
        s.beta_tilde, t, xt
    )


def _mu_no_sqrt(s, xt, t, eps):
    """eq. 11 with beta_t / (1 - alpha_bar_t) for beta_t / sqrt(1 - alpha_bar_t)."""
    return (xt - at(s.beta / s.one_minus_alpha_bar.clamp(min=1e-300), t, xt) * eps) / at(s.alpha.sqrt(), t, xt)


def _sample_no_sqrt(s, x0, t, eps):
    return at(s.alpha_bar, t, x0) * x0 + at(s.one_minus_alpha_bar.sqrt(), t, x0) * eps


def _prior_one_step_early(s, x0):
    mean, var = at(s.alpha_bar.sqrt(), s.T - 1, x0) * x0, at(s.one_minus_alpha_bar, s.T - 1, x0)
    return normal_kl(mean, var, torch.zeros_like(mean), torch.ones_like(mean)).flatten(1).sum(1)


def _elbo_columns_shifted(*args, **kwargs):
    b = negative_elbo(*args, **kwargs)
    return Bound(b.prior, b.terms.roll(1, dims=1))


class _ScoreWithoutS(GaussianMixture):
    def score(self, x, a, s):
        return -self.eps_star(x, a, s)  # missing the division by s


def _reverse_variance_swapped(s, choice):
    omab = s.one_minus_alpha_bar
    return s.beta if choice == "beta" else s._pad(omab[1:] / omab[:-1].clamp(min=1e-300) * s.betas)


def _vlb_other_sigma(eps_model, s, x0, t, eps, sigma2="beta"):
    return vlb_terms(eps_model, s, x0, t, eps, {"beta": "beta_tilde", "beta_tilde": "beta"}[sigma2])


def _q_sample_first_t(s, x0, t, eps):
    """q_sample whose gather takes the first row's t for the whole batch."""
    t0 = t.reshape(-1)[0]
    return at(s.alpha_bar.sqrt(), t0, x0) * x0 + at(s.one_minus_alpha_bar.sqrt(), t0, x0) * eps


def _q_sample_float32_cancellation(s, x0, t, eps):
    """q_sample computing 1 - alpha_bar_t in the data's float32.

    Where it cancels (beta_1 = 1e-4: 6e-4 off).
    """
    ab = at(s.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


PLANTED_IMPLS = {
    "eq12 batched float32: q_sample gathers the first row's t": lambda: eq12_eps_weight.check_batched_float32(
        q_sample_=_q_sample_first_t
    ),
    "eq12 batched float32: 1 - alpha_bar in float32": lambda: eq12_eps_weight.check_batched_float32(
        q_sample_=_q_sample_float32_cancellation
    ),
    "eq07 posterior_mean_var: alpha for sqrt(alpha)": lambda: eq07_posterior.check_posterior(_posterior_alpha_not_sqrt),
    "ex33 normal_kl without -1": lambda: ex33_kl_to_mse.check_gaussian_kl(
        lambda m1, v1, m2, v2: normal_kl(m1, v1, m2, v2) + 0.5
    ),
    "eq12 mu_from_eps without sqrt": lambda: eq12_eps_weight.check_eps_param(impl_mu=_mu_no_sqrt),
    "eq12 vlb_terms with the other sigma^2": lambda: eq12_eps_weight.check_bound_weights(_vlb_other_sigma),
    "eq04 q_sample with alpha_bar for sqrt(alpha_bar)": lambda: eq04_marginal.check_marginal(
        impl_sample=_sample_no_sqrt
    ),
    "eq04 q_step_sample with a minus for the plus": lambda: eq04_marginal.check_marginal(
        impl_step_sample=lambda schedule, x, t, eps: q_step_sample(schedule, x, t, -eps)
    ),
    "eq04 q_step_sample with beta_t for sqrt(beta_t)": lambda: eq04_marginal.check_marginal(
        impl_step_sample=lambda schedule, x, t, eps: q_step_sample(schedule, x, t, eps * at(schedule.beta.sqrt(), t, x))
    ),
    "ex31 prior_kl at T - 1": lambda: ex31_prior_limit.check_prior(impl_prior=_prior_one_step_early),
    "ex32 negative_elbo columns off by one": lambda: ex32_elbo_decomposition.check_bound_columns(_elbo_columns_shifted),
    "q1a posterior_mean with noise s for s / a": lambda: q1a_mmse.check_posterior_mean(
        lambda mix, x, a, s: GaussianMixture.posterior_mean(mix, x / a, 1.0, s)
    ),
    "q1b score without 1/s": lambda: q1b_optimal_eps.check_oracles(_ScoreWithoutS),
    "q1c transport_velocity over sigma": lambda: q1c_transport.check_transport(
        lambda mix, x, sigma, dsigma: -dsigma * mix.score(x, 1.0, sigma)
    ),
    "sec32 beta_tilde with alpha_bar indices swapped": lambda: sec32_sigma_choices.check_reverse_variance(
        _reverse_variance_swapped
    ),
    "alg1 l_simple at x_0 for x_t": lambda: alg.check_l_simple(
        lambda m, s, x0, t, eps: ((eps - m(x0, t)) ** 2).flatten(1).sum(1)
    ),
    "alg: a citation of the wrong function": lambda: alg.check_cited_code(
        [(2, 4, "x_{t-1} = ...", "ddpm.beta.posterior:x0_from_eps", "eq12")]
    ),
}


@pytest.fixture(autouse=True)
def no_shrinking(monkeypatch):
    """A planted failure needs to be found, not shrunk to its smallest example."""
    monkeypatch.setattr(_bind, "SHRINK", False)


@pytest.mark.parametrize("name", PLANTED_IMPLS)
def test_binding_rejects_planted_implementation(name):
    with pytest.raises(AssertionError):
        PLANTED_IMPLS[name]()


def test_sampler_binding_rejects_planted_step(monkeypatch):
    """Algorithm 2 with eq. 11's eps weight missing its square root, patched into ddpm.beta.sampler."""
    monkeypatch.setattr(ddpm.beta.sampler, "mu_from_eps", _mu_no_sqrt)
    with pytest.raises(AssertionError):
        alg.check_sampler(ddpm.beta.sampler.sample)
    monkeypatch.setattr(ddpm.beta.sampler, "mu_from_eps", mu_from_eps)
    alg.check_sampler(ddpm.beta.sampler.sample)


@pytest.mark.parametrize("planted", ["sigma1_beta1", "closed_edges", "half_bin_1_256"])
def test_decoder_binding_rejects_planted(planted, monkeypatch):
    """L_0 with sigma_1^2 = beta_1, with closed edge bins, or with bins of width 2/256.

    Patched into ddpm.beta.losses.
    """
    import ddpm.beta.losses
    from ddpm.specs import eq13_decoder

    if planted == "sigma1_beta1":
        monkeypatch.setattr(ddpm.beta.losses, "reverse_variance", eq13_decoder._sigma1_beta1)
    elif planted == "closed_edges":
        monkeypatch.setattr(ddpm.beta.losses, "discretized_gaussian_log_likelihood", eq13_decoder._closed_edges)
    else:

        def narrow(x0, mean, var):
            normal = torch.distributions.Normal(mean, torch.as_tensor(var, dtype=mean.dtype).sqrt())
            hi = torch.where(x0 > 1 - 1 / 256, torch.ones_like(x0), normal.cdf(x0 + 1 / 256))
            lo = torch.where(x0 < -1 + 1 / 256, torch.zeros_like(x0), normal.cdf(x0 - 1 / 256))
            return torch.log(hi - lo)

        monkeypatch.setattr(ddpm.beta.losses, "discretized_gaussian_log_likelihood", narrow)
    with pytest.raises(AssertionError, match="L_0"):
        eq13_decoder.check_decoder()
