"""Algorithm 2 is right independently of any training [Ho20 alg. 2].

Fed a known eps, it draws the known law.

1. With the exact eps* of a known 2D Gaussian mixture (``ddpm.oracles.OptimalEps``) in place of the
   network, Algorithm 2 with sigma_t^2 = beta_t or beta_tilde_t reproduces the mixture: its means,
   second moments and the probabilities of the half-planes between components (the component
   weights), held to their exact values (``ddpm.specs._mc``).
2. With a linear eps_theta(x, t) = A_t x + b_t, line 4 is an affine map plus Gaussian noise, so x_0
   is Gaussian; its mean and covariance follow in closed form through the recursion
   mean <- M_t mean + c_t, cov <- M_t cov M_t^T + sigma_t^2 I, with M_t = (I - k_t A_t) / sqrt(alpha_t),
   c_t = -k_t b_t / sqrt(alpha_t), k_t = beta_t / sqrt(1 - alpha_bar_t) (``ddpm.beta.sampler.gaussian_law``,
   written from the schedule's coefficients, not from the sampler's helpers), and the samples match them.
3. The error shrinks as T grows, shown without Monte Carlo: for Gaussian data N(m, C), eps* is linear,
   so (2) gives the exact law of the samples, and its KL to N(m, C) falls as T goes 50 -> 500 -> 5000.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.beta.losses import gaussian_kl
from ddpm.beta.sampler import gaussian_law, sample
from ddpm.beta.schedule import Schedule, linear_schedule
from ddpm.oracles import GaussianMixture, OptimalEps
from ddpm.specs._bind import log_log_slope
from ddpm.specs._mc import check_matches_mixture
from ddpm.stats import MonteCarloCheck

MIXTURE = GaussianMixture.isotropic([0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], [0.5, 0.3, 0.4])
# A short schedule with a large beta_1, so that every step of the recursion (the last one included)
# moves the law by far more than the sampling error.
SHORT = Schedule(torch.linspace(0.2, 0.5, 5, dtype=torch.float64))
N_MIXTURE = 4000  # n * T = 4e6 oracle evaluations: about 3 s a run on one core
N_LINEAR = 100000  # cheap (T = 5); the weakest planted deviation, noise at t = 1, sits at z > 25 > 3k


class LinearEps:
    """eps_theta(x, t) = A_t x + b_t, with A of shape (T + 1, D, D) and b of shape (T + 1, D).

    Indexed by t.
    """

    def __init__(self, A: Tensor, b: Tensor):
        self.A, self.b = A, b

    def __call__(self, xt: Tensor, t: Tensor) -> Tensor:
        return (self.A[t].to(xt) @ xt[:, :, None])[:, :, 0] + self.b[t].to(xt)

    @classmethod
    def arbitrary(cls, T: int, D: int = 2) -> LinearEps:
        """Fixed, unremarkable A_t and b_t: eps_theta need not be optimal for the recursion to hold."""
        g = torch.Generator().manual_seed(20200619)
        A = 0.5 * torch.eye(D, dtype=torch.float64) + 0.3 * torch.randn(T + 1, D, D, generator=g, dtype=torch.float64)
        return cls(A, 0.5 * torch.randn(T + 1, D, generator=g, dtype=torch.float64))

    @classmethod
    def optimal_for_gaussian(cls, schedule: Schedule, m: Tensor, C: Tensor) -> LinearEps:
        """The exact eps* for x_0 ~ N(m, C) [6.S183 Q1b].

        eps*(x_t) = sqrt(1 - alpha_bar) (alpha_bar C + (1 - alpha_bar) I)^-1 (x_t - sqrt(alpha_bar) m).
        """
        ab, omab = schedule.alpha_bar[:, None, None], schedule.one_minus_alpha_bar[:, None, None]
        A = omab.sqrt() * torch.linalg.inv(ab * C + omab * torch.eye(C.shape[0], dtype=torch.float64))
        return cls(A, -(A @ m) * ab[:, :, 0].sqrt())


def affine_recursion(eps_model: LinearEps, schedule: Schedule, sigma2: str) -> tuple[Tensor, Tensor]:
    """The exact mean and covariance of Algorithm 2's x_0 for a linear eps_theta.

    Computed by ``ddpm.beta.sampler.gaussian_law``.
    """
    return gaussian_law(schedule, eps_model.A, eps_model.b, sigma2)


def gaussian(mean: Tensor, cov: Tensor) -> GaussianMixture:
    """N(mean, cov) as a one-component mixture."""
    return GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], cov[None])


def check_reproduces_mixture(
    sigma2: str, n: int, generator: torch.Generator, *, eps_model=None, sampler=sample, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """Algorithm 2 with eps* of ``MIXTURE`` (linear schedule, T = 1000) draws ``MIXTURE``."""
    schedule = linear_schedule(1000)
    eps_model = OptimalEps(MIXTURE, schedule) if eps_model is None else eps_model
    x = sampler(eps_model, schedule, (n, 2), sigma2=sigma2, generator=generator, dtype=torch.float64)
    return check_matches_mixture(
        f"Algorithm 2 with eps* (sigma^2 = {sigma2}) vs the mixture", x, MIXTURE, raise_on_fail=raise_on_fail
    )


def check_linear_eps_recursion(
    sigma2: str, n: int, generator: torch.Generator, *, sampler=sample, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """Algorithm 2 with an arbitrary linear eps_theta draws N(mean, cov) of ``affine_recursion``."""
    eps_model = LinearEps.arbitrary(SHORT.T)
    x = sampler(eps_model, SHORT, (n, 2), sigma2=sigma2, generator=generator, dtype=torch.float64)
    law = gaussian(*affine_recursion(eps_model, SHORT, sigma2))
    return check_matches_mixture(
        f"Algorithm 2 with a linear eps_theta (sigma^2 = {sigma2})", x, law, planes=[], raise_on_fail=raise_on_fail
    )


def sampling_kl(T: int, sigma2: str, optimal=LinearEps.optimal_for_gaussian) -> float:
    """KL(law of Algorithm 2's x_0 || N(m, C)) with the exact eps* of N(m, C).

    The schedule is the linear one rescaled to T steps.
    """
    m = torch.tensor([1.5, -0.5], dtype=torch.float64)
    C = torch.tensor([[0.09, 0.03], [0.03, 0.25]], dtype=torch.float64)
    schedule = linear_schedule(T, 1e-4 * 1000 / T, 0.02 * 1000 / T)
    return float(gaussian_kl(*affine_recursion(optimal(schedule, m, C), schedule, sigma2), m, C))


ORDER_TS = (400, 800, 1600, 3200)
ORDER_BAND = (1.75, 2.25)  # KL ~ T^-2 (a bias O(1/T) in the law, squared); fitted: 2.01 (beta), 1.86 (beta_tilde)


def check_error_shrinks(sigma2: str, optimal=LinearEps.optimal_for_gaussian) -> float:
    """The exact KL of the samples to the data falls as T^-p, p fitted in log-log over ``ORDER_TS``.

    In ``ORDER_BAND``.

    Deterministic; as diffrax's ODE tests do, the order is fitted by least squares, so that a bug that
    halves the order (KL ~ 1/T) or stalls it fails, not only one that stops the error falling.
    """
    kls = [sampling_kl(T, sigma2, optimal) for T in ORDER_TS]
    order = -log_log_slope(ORDER_TS, kls)
    if not ORDER_BAND[0] <= order <= ORDER_BAND[1]:
        raise AssertionError(
            f"KL(samples || data) for T = {ORDER_TS} ({sigma2}): {kls}, order {order:.2f} outside {ORDER_BAND}"
        )
    return order
