"""Flow matching [6.S183 Q2 §6.3].

The loss ||v_theta((1-t) x_0 + t eps, t) - (eps - x_0)||^2 and its Euler sampler.

The path u_t = (1 - t) x_0 + t eps, t in [0, 1], is the sigma world's x_sigma = x_0 + sigma eps
divided by 1 + sigma, with t = sigma / (1 + sigma) (``ve_to_fm``, ``ts_from_sigmas``). Under that map
the flow-matching ODE du/dt = v*(u, t), v* = E[eps - x_0 | u_t = u], is the sigma world's
dx/dsigma = eps*(x, sigma), v* = (1 + sigma) eps* - x, and one Euler step of the one is one DDIM step
of the other, exactly (``specs/s183_ddim_flow.py``). ``VelocityFromEps`` turns an eps_theta(x, sigma)
into that v_theta(u, t).

``v_model(u, t)`` is any callable predicting eps - x_0 from u and the times t, a float tensor (batch,).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ddpm.sigma.sampler import SigmaEpsModel
from ddpm.sigma.schedule import batch_scale, check_sigmas

__all__ = [
    "VModel",
    "fm_interpolate",
    "fm_loss",
    "fm_euler_steps",
    "fm_euler_sample",
    "ts_from_sigmas",
    "ve_to_fm",
    "fm_to_ve",
    "VelocityFromEps",
    "shift_levels",
    "unshift_levels",
]

VModel = Callable[[Tensor, Tensor], Tensor]


def _times(t: Tensor | float, x0: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
    return t.expand(x0.shape[0]) if t.ndim == 0 else t


def fm_interpolate(x0: Tensor, t: Tensor | float, eps: Tensor) -> Tensor:
    """u_t = (1 - t) x_0 + t eps, t a scalar or one per sample [6.S183 Q2 §6.3]."""
    t = batch_scale(_times(t, x0), x0)
    return (1 - t) * x0 + t * eps


def fm_loss(v_model: VModel, x0: Tensor, t: Tensor | float, eps: Tensor) -> Tensor:
    """||v_theta((1 - t) x_0 + t eps, t) - (eps - x_0)||^2 per sample [6.S183 Q2 §6.3].

    Summed over the data.
    """
    t = _times(t, x0)
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape ({x0.shape[0]},) or (), got {tuple(t.shape)}")
    return ((v_model(fm_interpolate(x0, t, eps), t) - (eps - x0)) ** 2).flatten(1).sum(1)


@torch.no_grad()
def fm_euler_steps(
    v_model: VModel,
    ts: Tensor | Sequence[float],
    u: Tensor | None = None,
    *,
    shape: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Iterator[Tensor]:
    """Yield u after each Euler step u_{t'} = u_t + (t' - t) v_theta(u_t, t) [6.S183 Q2 §6.3].

    ``ts`` decreasing.

    Starts at u = ts[0] z, z ~ N(0, I) of ``shape`` (u_1 ~ N(0, I) when ts[0] = 1) unless ``u`` is given.
    """
    times = check_sigmas(ts, increasing=False, name="ts")
    if float(times[0]) > 1:
        raise ValueError(f"ts must lie in [0, 1], got ts[0] = {float(times[0])!r}")
    if u is None:
        if shape is None:
            raise ValueError("pass the start u or the shape (batch, ...) of the samples")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        u = float(times[0]) * torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    levels = times.tolist()
    batch_times = [torch.full((u.shape[0],), v, device=u.device, dtype=u.dtype) for v in levels[:-1]]
    for i in range(len(levels) - 1):
        u = u + (levels[i + 1] - levels[i]) * v_model(u, batch_times[i])
        yield u


def fm_euler_sample(v_model: VModel, ts, u: Tensor | None = None, **kwargs) -> Tensor:
    """The last u of :func:`fm_euler_steps` [6.S183 Q2 §6.3]."""
    out = u
    for step in fm_euler_steps(v_model, ts, u, **kwargs):
        out = step
    assert out is not None  # at least two times (check_sigmas), so at least one step
    return out


def ts_from_sigmas(sigmas: Tensor) -> Tensor:
    """t = sigma / (1 + sigma), float64: the flow-matching time of each noise level [6.S183 Q2 §6.3]."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    return s / (1 + s)


def ve_to_fm(x: Tensor, sigma: Tensor | float) -> Tensor:
    """u = x / (1 + sigma) [6.S183 Q2 §6.3].

    x_0 + sigma eps becomes (1 - t) x_0 + t eps, t = sigma / (1 + sigma).
    """
    return x / batch_scale(1 + torch.as_tensor(sigma, dtype=torch.float64), x)


def fm_to_ve(u: Tensor, t: Tensor | float) -> Tensor:
    """x = u / (1 - t) = (1 + sigma) u, the inverse of :func:`ve_to_fm` [6.S183 Q2 §6.3]."""
    return u / batch_scale(1 - torch.as_tensor(t, dtype=torch.float64), u)


class VelocityFromEps:
    """v(u, t) = (1 + sigma) eps(x, sigma) - x with sigma = t / (1 - t), x = u / (1 - t) [6.S183 Q2 §6.3].

    eps - x_0 = (1 + sigma) eps - x_VE for x_VE = x_0 + sigma eps, so E[eps - x_0 | u] is this of
    E[eps | x_VE]: the exact eps* gives the exact v*, and a trained eps_theta a v_theta. Defined for t < 1.
    """

    def __init__(self, eps_model: SigmaEpsModel):
        self.eps_model = eps_model

    def __call__(self, u: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=u.dtype, device=u.device)
        sigma = t / (1 - t)
        x = u * batch_scale(1 + sigma, u)
        return batch_scale(1 + sigma, u) * self.eps_model(x, sigma) - x


def shift_levels(t: Tensor | float, shift: float) -> Tensor:
    """shift t / (1 + (shift - 1) t): flow-matching times moved towards the noise [Esser24 §5.3.2].

    The timestep shift of rectified-flow sampling at high resolution; shift = 1 leaves t as is. float64.
    """
    shift = float(shift)
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift = {shift!r} must be a finite number > 0")
    t = torch.as_tensor(t, dtype=torch.float64)
    return shift * t / (1 + (shift - 1) * t)


def unshift_levels(s: Tensor | float, shift: float) -> Tensor:
    """t = s / (shift - (shift - 1) s), the inverse of :func:`shift_levels` [Esser24 §5.3.2]."""
    shift = float(shift)
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift = {shift!r} must be a finite number > 0")
    s = torch.as_tensor(s, dtype=torch.float64)
    return s / (shift - (shift - 1) * s)
