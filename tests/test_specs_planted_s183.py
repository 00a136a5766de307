"""Every check of the sigma world's specs (specs/s183_*.py) can fail.

Each derivation rejects a planted
wrong formula and each binding a subtly wrong implementation (the Monte Carlo checks' planted
deviations are beside their entry points, tests/specs/test_s183_*.py)."""

from __future__ import annotations

import pytest
import sympy as sp
import torch

from ddpm import specs
from ddpm.oracles import SigmaOptimalEps
from ddpm.sigma.flow_matching import VelocityFromEps, fm_euler_sample
from ddpm.sigma.sampler import gam_mu_step, step_levels
from ddpm.sigma.schedule import batch_scale, sigma_twin
from ddpm.specs import _bind, s183_ddim_flow, s183_gam_law_mc, s183_mu_step, s183_ve_vp


def test_every_s183_claim_renders():
    for name in ("s183-vevp", "s183-mu", "s183-ddim", "s183-gam"):
        assert "\n1. " in specs.show(name)


PLANTED_FORMULAS = {
    "vevp: sigma_t^2 for sigma_t": lambda: s183_ve_vp.derivation(sigma_of_alpha_bar=s183_ve_vp.SIGMA_OF_ALPHA_BAR**2),
    "vevp: x_VP sqrt(alpha_bar) for x_VP / sqrt(alpha_bar)": lambda: s183_ve_vp.derivation(
        vp_to_ve_=s183_ve_vp.x_vp * sp.sqrt(s183_ve_vp.ab)
    ),
    "mu: sigma_p with 1/mu for 1/(1 - mu)": lambda: s183_mu_step.derivation(
        sigma_p=(s183_mu_step.sig_next / s183_mu_step.sig**s183_mu_step.mu) ** (1 / s183_mu_step.mu)
    ),
    "mu: eta = sigma' - sigma_p": lambda: s183_mu_step.derivation(eta=s183_mu_step.sig_next - s183_mu_step.SIGMA_P),
    "ddim: t = sigma / (1 + sigma)^2": lambda: s183_ddim_flow.derivation(
        t_of_sigma=s183_ddim_flow.sigma / (1 + s183_ddim_flow.sigma) ** 2
    ),
    "ddim: x_FM = x / (1 + sigma^2)": lambda: s183_ddim_flow.derivation(
        x_fm=s183_ddim_flow.x / (1 + s183_ddim_flow.sigma**2)
    ),
    "ddim: v* = (1 + sigma) eps* + x": lambda: s183_ddim_flow.derivation(
        v_star=(1 + s183_ddim_flow.sigma) * s183_ddim_flow.E + s183_ddim_flow.x
    ),
}


@pytest.mark.parametrize("name", PLANTED_FORMULAS)
def test_s183_derivation_rejects_planted_formula(name):
    with pytest.raises(AssertionError):
        PLANTED_FORMULAS[name]()


class _EpsStarSigmaSquared(SigmaOptimalEps):
    def __call__(self, x, sigma):
        return self.mixture.eps_star(x, 1.0, torch.as_tensor(sigma) ** 2)


class _VelocityMinusX(VelocityFromEps):
    """v = (1 + sigma) eps - u: the u of the flow-matching side where x belongs."""

    def __call__(self, u, t):
        t = torch.as_tensor(t, dtype=u.dtype)
        sigma = t / (1 - t)
        return batch_scale(1 + sigma, u) * self.eps_model(u * batch_scale(1 + sigma, u), sigma) - u


def _ddpm_step_mu_swapped(x, sigma, sigma_next, eps_bar, mu=0.0, z=None):
    """The mu-step with a wrong exponent at mu = 1/2: sigma_p = sigma'^3 / sigma^2 for sigma'^2 / sigma."""
    p = sigma_next**3 / sigma**2
    eta = (sigma_next**2 - p**2) ** 0.5
    return x - (sigma - p) * eps_bar + eta * z


def _step_levels_no_sqrt(sigma, sigma_next, mu=0.0):
    p, eta = step_levels(sigma, sigma_next, mu)
    return p, eta**2


def _euler_half_step(v, ts, u):
    return fm_euler_sample(lambda uu, tt: 0.5 * v(uu, tt), ts, u)


PLANTED_IMPLS = {
    "vevp sigmas_from_alpha_bar without sqrt": lambda: s183_ve_vp.check_bridge(
        impl_sigmas=lambda ab: (1 - torch.as_tensor(ab, dtype=torch.float64)) / torch.as_tensor(ab, dtype=torch.float64)
    ),
    "vevp sigma_twin one step late": lambda: s183_ve_vp.check_bridge(
        impl_twin=lambda s: torch.cat([sigma_twin(s)[1:], sigma_twin(s)[-1:]])
    ),
    "vevp eps* with sigma^2": lambda: s183_ve_vp.check_eps_same_function(_EpsStarSigmaSquared),
    "mu step_levels with eta^2 for eta": lambda: s183_mu_step.check_step_levels(_step_levels_no_sqrt),
    "mu the mu-step with the wrong sigma_p": lambda: s183_mu_step.check_mu_step_is_alg2(_ddpm_step_mu_swapped),
    "ddim the DDIM step off by 1e-6 of (sigma - sigma') eps": lambda: s183_ddim_flow.check_ddim_is_euler(
        lambda x, s, sn, e, mu=0.0: gam_mu_step(x, s, sn, e, mu) - (s - sn) * e * 1e-6
    ),
    "ddim v with u for x": lambda: s183_ddim_flow.check_flow_matching(impl_v=_VelocityMinusX),
    "ddim Euler with half the velocity": lambda: s183_ddim_flow.check_flow_matching(impl_euler=_euler_half_step),
}


@pytest.fixture(autouse=True)
def no_shrinking(monkeypatch):
    monkeypatch.setattr(_bind, "SHRINK", False)


@pytest.mark.parametrize("name", PLANTED_IMPLS)
def test_s183_binding_rejects_planted_implementation(name):
    with pytest.raises(AssertionError):
        PLANTED_IMPLS[name]()


def test_s183_gam_law_planted_scales_differ():
    """The stated scales distinguish the three samplers.

    A law computed at gam = 1 fails the claim at gam = 2.
    """
    sigmas = s183_gam_law_mc.sample_sigmas(s183_gam_law_mc.log_linear_sigmas(), 10)
    law = s183_gam_law_mc.gaussian_gam_law
    assert round(float(law(0.0, 0.25, sigmas, 1.0).std) / s183_gam_law_mc.exact_flow_scale(sigmas), 2) != 1.09
