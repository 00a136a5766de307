"""A minimal, fast DDPM (Ho, Jain & Abbeel 2020).

Every formula is checked against its derivation.

The public API uses the paper's time index t = 1..T throughout; see ``ddpm.beta.schedule``.
"""

from ddpm.beta.forward import q_mean_var, q_sample, q_step_mean_var, q_step_sample
from ddpm.beta.losses import (
    Bound,
    discretized_gaussian_log_likelihood,
    l_simple,
    negative_elbo,
    normal_kl,
    prior_kl,
    vlb_terms,
)
from ddpm.beta.posterior import mu_from_eps, posterior_mean_var, x0_from_eps
from ddpm.beta.sampler import sample
from ddpm.beta.schedule import Schedule, at, cosine_schedule, linear_schedule, reverse_variance
from ddpm.oracles import GaussianMixture, OptimalEps, transport_velocity

__version__ = "0.2.0"

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "reverse_variance",
    "at",
    "q_mean_var",
    "q_sample",
    "q_step_mean_var",
    "q_step_sample",
    "posterior_mean_var",
    "x0_from_eps",
    "mu_from_eps",
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "l_simple",
    "prior_kl",
    "vlb_terms",
    "Bound",
    "negative_elbo",
    "sample",
    "GaussianMixture",
    "OptimalEps",
    "transport_velocity",
]
