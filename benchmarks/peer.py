"""The peer: the same network driven by diffusers' ``DDPMScheduler`` as its documentation shows.

diffusers counts timesteps 0..T-1 where the paper (and ddpm) counts t = 1..T, so the peer calls the
network through :class:`ShiftedTimesteps`, which passes t = timestep + 1. The scheduler is configured
to be Algorithm 2 exactly: our betas (``trained_betas``), ``clip_sample=False`` (diffusers clips the
predicted x_0 to [-1, 1] by default, which Algorithm 2 does not), ``prediction_type="epsilon"`` and
``variance_type`` "fixed_large" for sigma_t^2 = beta_t or "fixed_small" for sigma_t^2 = beta_tilde_t.
diffusers is a benchmark extra (``pip install -e .[bench]``), never a dependency of ``ddpm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpm.beta.schedule import Schedule

__all__ = ["ShiftedTimesteps", "peer_scheduler", "peer_sample", "peer_train_step"]

VARIANCE_TYPE = {"beta": "fixed_large", "beta_tilde": "fixed_small"}


class ShiftedTimesteps(nn.Module):
    """The network called as diffusers does, ``model(x, timestep)``, timestep 0..T-1: t = timestep + 1."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, timestep: Tensor) -> Tensor:
        return self.net(x, (timestep + 1).expand(x.shape[0]))


def peer_scheduler(schedule: Schedule, sigma2: str = "beta"):
    """diffusers' ``DDPMScheduler`` as Algorithm 2: ``schedule``, sigma_t^2 = ``sigma2`` [Ho20 alg. 2]."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=schedule.T,
        trained_betas=schedule.betas.numpy(),
        variance_type=VARIANCE_TYPE[sigma2],
        clip_sample=False,
        prediction_type="epsilon",
    )


@torch.no_grad()
def peer_sample(
    model: nn.Module,
    scheduler,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The denoising loop of diffusers' documentation: ``set_timesteps``, then ``step`` at each timestep.

    ``model`` is called as ``model(x, timestep)`` (wrap ddpm's networks in :class:`ShiftedTimesteps`).
    Noise is drawn from ``generator`` in ddpm's order (x_T, then one draw per step), so the same seed
    gives the same samples as ``ddpm.beta.sampler.sample``.
    """
    scheduler.set_timesteps(scheduler.config.num_train_timesteps, device=device)
    x = torch.randn(tuple(shape), generator=generator, device=device)
    for timestep in scheduler.timesteps:
        noise_pred = model(x, timestep)
        x = scheduler.step(noise_pred, timestep, x, generator=generator).prev_sample
    return x


def peer_train_step(
    model: nn.Module, scheduler, optimizer: torch.optim.Optimizer, x0: Tensor, timesteps: Tensor, noise: Tensor
) -> Tensor:
    """The training step a diffusers user writes: ``add_noise``, network, MSE, backward, optimizer step.

    ``timesteps`` are diffusers' 0..T-1 (ddpm's t - 1).
    """
    noisy = scheduler.add_noise(x0, noise, timesteps)
    loss = F.mse_loss(model(noisy, timesteps), noise)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss
