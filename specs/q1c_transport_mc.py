"""p_t and v = E[sigma'(t) eps | x_t] solve the transport equation [6.S183 Q1c].

And the flow of v carries p_1 to p_0.

1. The residual d/dt p_t(x) + div(v p_t)(x), every derivative by autograd in float64 (sigma'(t)
   included), at random (x, t) for a 2D Gaussian mixture and two choices of sigma(t): DDPM's
   sqrt((1 - alpha_bar(t)) / alpha_bar(t)), with the continuous-time limit of the linear schedule
   log alpha_bar(t) = -(b_0 t + (b_1 - b_0) t^2 / 2), b_0 = 0.1, b_1 = 20 (beta_1 = 1e-4, beta_T = 0.02,
   T = 1000), and sigma(t) = t. It vanishes to round-off relative to the size of its terms
   (|d/dt p_t| + sum_j |d/dx_j (v_j p_t)|): below 1e-10, where float64 leaves ~1e-14; a wrong v
   (without sigma'(t), or with its sign flipped) leaves a residual of order 1 in those units.
2. Integrating dx/dt = v(x, t) backwards from t = 1 to 0 (RK4, 100 steps, error ~1e-8 and fourth order, both
   checked; v at sigma = 0 is its limit 0, never evaluated; far below the
   sampling error) maps draws of p_1 to draws of p_0, held to p_0's moments and half-plane
   probabilities (``ddpm.specs._mc``). The path x_0 + sigma eps is the same for any sigma(t) up to
   reparametrisation of time, so sigma(t) = t suffices here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture, transport_velocity
from ddpm.specs._bind import log_log_slope
from ddpm.specs._mc import check_matches_mixture
from ddpm.stats import MonteCarloCheck

MIXTURE = GaussianMixture.isotropic([0.3, 0.7], [[-1.5, 1.0], [1.5, -0.5]], [0.4, 0.7])
RESIDUAL_TOL = 1e-10  # the transport residual relative to its terms; float64 leaves ~1e-14
PLANTED_RESIDUAL = 0.5  # a wrong v must leave a residual 'of order 1' (measured: 0.999 and 1.0)
N = 10000


def sigma_ddpm(t: Tensor) -> Tensor:
    """sqrt((1 - alpha_bar(t)) / alpha_bar(t)) for the continuous linear schedule [Ho20 §4]."""
    return torch.expm1(0.1 * t + (20 - 0.1) * t**2 / 2).sqrt()


def sigma_linear(t: Tensor) -> Tensor:
    """sigma(t) = t."""
    return t


def relative_residual(sigma, generator: torch.Generator, points: int = 64, velocity=transport_velocity) -> Tensor:
    """|d/dt p_t + div(v p_t)| / (|d/dt p_t| + sum_j |d/dx_j (v_j p_t)|) at random (x, t).

    By autograd in float64.
    """
    x = (3 * torch.randn(points, 2, generator=generator, dtype=torch.float64)).requires_grad_()
    t = (0.05 + 0.95 * torch.rand(points, generator=generator, dtype=torch.float64)).requires_grad_()
    s = sigma(t)
    ds = torch.autograd.grad(s.sum(), t, create_graph=True)[0]
    p = torch.exp(MIXTURE.log_prob(x, 1.0, s))
    dp_dt = torch.autograd.grad(p.sum(), t, retain_graph=True)[0]
    flux = velocity(MIXTURE, x, s, ds) * p[:, None]
    div_terms = torch.stack([torch.autograd.grad(flux[:, j].sum(), x, retain_graph=True)[0][:, j] for j in range(2)], 1)
    return ((dp_dt + div_terms.sum(1)).abs() / (dp_dt.abs() + div_terms.abs().sum(1))).detach()


def check_transport_equation(
    sigma, generator: torch.Generator, velocity=transport_velocity, raise_on_fail: bool = True
) -> float:
    """The worst transport residual relative to its terms.

    Held below ``RESIDUAL_TOL`` (deterministic given points).
    """
    worst = float(relative_residual(sigma, generator, velocity=velocity).max())
    if raise_on_fail and not worst <= RESIDUAL_TOL:
        raise AssertionError(
            f"transport residual {worst:.3g} of its terms > {RESIDUAL_TOL:g} for sigma = {sigma.__name__}"
        )
    return worst


def velocity_t(x: Tensor, t: float, velocity=transport_velocity) -> Tensor:
    """v(x, t) for sigma(t) = t, and its limit 0 at t = 0 [6.S183 Q1c].

    At sigma = 0 the formula sigma' (x - E[x_0 | x]) / sigma is 0 / 0 and, evaluated at sigma ~ 1e-17,
    cancels catastrophically. Its limit is 0 wherever p_0 has a smooth density (Tweedie:
    E[eps | x] = -sigma grad log p_sigma(x) -> 0), as for MIXTURE, whose components all have positive
    variance. Samplers skip that evaluation too: EDM's ``edm_sampler`` (NVlabs/edm, generate.py)
    applies its second-order correction only while t_next > 0, and k-diffusion's ``sample_heun``
    (crowsonkb/k-diffusion, sampling.py) takes an Euler step when ``sigmas[i + 1] == 0``.
    """
    return torch.zeros_like(x) if t == 0 else velocity(MIXTURE, x, t, 1.0)


def flow_to_data(x1: Tensor, velocity=transport_velocity, steps: int = 100) -> Tensor:
    """Integrate dx/dt = v(x, t) for sigma(t) = t from t = 1 to t = 0 by RK4.

    t_i = (steps - i) / steps exactly.
    """
    v = lambda x, t: velocity_t(x, t, velocity)  # noqa: E731
    x, h = x1, -1.0 / steps
    for i in range(steps):
        t, t_mid, t_next = (steps - i) / steps, (steps - i - 0.5) / steps, (steps - i - 1) / steps
        k1 = v(x, t)
        k2 = v(x + h / 2 * k1, t_mid)
        k3 = v(x + h / 2 * k2, t_mid)
        k4 = v(x + h * k3, t_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


ORDER_BAND = (3.7, 4.3)  # RK4 is fourth order: the fitted order lies within 0.3 of 4 (measured 3.9-4.0)
FLOW_ERROR = 3e-8  # the claimed accuracy at 100 steps ("~1e-8"; the worst of 200 points measured 3e-9 to 1.5e-8)


def check_flow_accuracy(generator: torch.Generator, n: int = 200, integrate=flow_to_data) -> tuple[float, float]:
    """The flow's error at 100 steps is below ``FLOW_ERROR`` and its order, fitted in log-log.

    Within ``ORDER_BAND``.

    Errors at 25, 50, 100 steps against 400 steps (whose own error is 256 times smaller) on n draws of p_1
    (deterministic given them).
    """
    x1 = MIXTURE.sample(n, generator) + torch.randn(n, 2, generator=generator, dtype=torch.float64)
    ref = integrate(x1, steps=400)
    steps = [25, 50, 100]
    errors = [float((integrate(x1, steps=k) - ref).abs().max()) for k in steps]
    order = -log_log_slope(steps, errors)
    if not (errors[2] <= FLOW_ERROR and ORDER_BAND[0] <= order <= ORDER_BAND[1]):
        raise AssertionError(
            f"RK4 flow: error {errors[2]:.3g} at 100 steps (claimed < {FLOW_ERROR:g}), fitted order "
            f"{order:.2f} (expected within {ORDER_BAND}); errors at {steps} steps: {errors}"
        )
    return errors[2], order


def check_flow_carries_p1_to_p0(
    n: int, generator: torch.Generator, velocity=transport_velocity, raise_on_fail: bool = True
) -> MonteCarloCheck:
    """Draws of p_1 (sigma(1) = 1) flowed back to t = 0 follow p_0 = ``MIXTURE``."""
    x1 = MIXTURE.sample(n, generator) + torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return check_matches_mixture(
        "the flow of v from p_1, at t = 0, vs p_0", flow_to_data(x1, velocity), MIXTURE, raise_on_fail=raise_on_fail
    )
