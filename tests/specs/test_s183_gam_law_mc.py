"""The pytest entry points of specs/s183_gam_law_mc.py [PY23 App. A].

The claim, its derivation and its checks live in the spec module; these tests call them,
and hold the checks to the planted deviations they must reject.
"""

from __future__ import annotations

import pytest
import torch

from ddpm.data import Swissroll
from ddpm.sigma.sampler import gam_mu_sample, gaussian_gam_law
from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas
from ddpm.specs.s183_gam_law_mc import (
    GAMS,
    C,
    M,
    check_ideal_denoiser_lands_on_points,
    check_sampler_law,
    derivation,
    exact_flow_scale,
)
from ddpm.stats import assert_power


def _ignores_gam(eps_model, sigmas, x=None, *, gam=1.0, **kwargs):
    """Planted: the accelerated sampler that always takes gam = 1 (DDIM)."""
    return gam_mu_sample(eps_model, sigmas, x, gam=1.0, **kwargs)


def _exact_flow_law(m, c, sigmas, gam, x_scale=None):
    """Planted: the exact flow's law (no discretisation error), mean m (1 - ratio), std sigma_max ratio."""
    ratio = exact_flow_scale(sigmas, c) / float(sigmas[0])
    return torch.as_tensor(m, dtype=torch.float64) * (1 - ratio), torch.tensor(
        float(sigmas[0]) * ratio, dtype=torch.float64
    )


def test_s183_gam_law_derivation():
    derivation()


def test_s183_gam_law_scales_differ_as_stated():
    sigmas = sample_sigmas(log_linear_sigmas(), 10)
    ratios = [float(gaussian_gam_law(M, C, sigmas, g).std) / exact_flow_scale(sigmas) for g in GAMS]
    assert [round(r, 2) for r in ratios] == [0.83, 0.97, 1.09]


def test_s183_gam_sampler_matches_its_law(gen):
    check_sampler_law(gen)


def test_s183_ddpm_sampler_matches_its_law(gen):
    check_sampler_law(gen, mu=0.5, gams=(1.0,))


def test_s183_gam_law_rejects_a_sampler_ignoring_gam(gen):
    # z ~ 37 > 3k = 15.5 (measured); the exact flow's law in place of the discrete one: z ~ 22
    assert_power(check_sampler_law(gen, gams=(1.5,), steps=(10,), sampler=_ignores_gam, raise_on_fail=False))


def test_s183_gam_law_rejects_the_exact_flows_law(gen):
    assert_power(check_sampler_law(gen, gams=(1.0,), steps=(20,), law=_exact_flow_law, raise_on_fail=False))


def test_s183_ideal_denoiser_ddim_converges_to_training_points(gen):
    check_ideal_denoiser_lands_on_points(gen, n=500)


@pytest.mark.slow
def test_s183_ideal_denoiser_ddim_converges_to_training_points_more_draws(gen):
    check_ideal_denoiser_lands_on_points(gen, n=4000, steps=(50, 200))


def test_s183_ideal_denoiser_rejects_planted_sigma_squared(gen):
    ideal = Swissroll().ideal_denoiser()
    planted = lambda x, sigma: ideal.mixture.eps_star(x, 1.0, sigma**2)  # noqa: E731
    # every sample off its point: z ~ 52 > 3k = 14.7 (measured)
    assert_power(check_ideal_denoiser_lands_on_points(gen, n=200, eps_model=planted, raise_on_fail=False))
