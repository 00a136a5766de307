"""The sigma world's workloads.

The DDIM and accelerated samplers (10 and 50 steps) and the sigma training step,
each beside diffusers' DDIMScheduler loop (and the training step a diffusers user writes) with the same network.

The network is the 6.S183 MLP, ``SigmaMLP`` (eps_theta(x, sigma)). diffusers counts in the beta world, so the
levels are the sigma twin of the linear schedule (T = 1000, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)) and
the peer calls the same network through the bridge (:class:`SigmaNetAsVP`: x_VE = x_VP / sqrt(alpha_bar_t), sigma_t
of timestep t - 1). The peer's sampler is diffusers' documented loop with ``DDIMScheduler`` (eta = 0, trailing
spacing, ``clip_sample=False``, ``set_alpha_to_one=False``, so its last level is sigma_1 as ``sample_sigmas``'s is);
for the accelerated sampler (gam = 2) its model wrapper returns gam eps + (1 - gam) eps_prev, what a diffusers user
would write, so that the two sides compute the same samples. Both start from the same z (ours at x_VE = z /
sqrt(alpha_bar) of the first level) and their first results are compared before timing.
"""

from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.pair import Pair, Workload, seeded
from ddpm.beta.schedule import linear_schedule
from ddpm.nets import SigmaMLP
from ddpm.sigma.sampler import ACCEL, DDIM, SamplerSettings, gam_mu_sample
from ddpm.sigma.schedule import sample_sigmas, sigma_twin, ve_to_vp, vp_to_ve
from ddpm.sigma.train import adamw, sigma_train_step

__all__ = ["SigmaNetAsVP", "sigma_workloads"]

T = 1000
LR = 1e-3


class SigmaNetAsVP(nn.Module):
    """eps_theta(x_VP, timestep) = net(x_VP / sqrt(alpha_bar_t), sigma_t), t = timestep + 1.

    A sigma-world net called
    as diffusers calls a model. ``gam`` != 1 mixes in the previous call's prediction: gam eps + (1 - gam) eps_prev."""

    def __init__(self, net: nn.Module, schedule, gam: float = 1.0):
        super().__init__()
        self.net, self.gam, self.prev = net, gam, None
        self.inv_sqrt_ab = (1 / schedule.alpha_bar.sqrt()).float()
        self.sigma = sigma_twin(schedule).float()

    def reset(self) -> None:
        self.prev = None

    def forward(self, x: Tensor, timestep: Tensor) -> Tensor:
        t = (timestep + 1).expand(x.shape[0]) if timestep.ndim == 0 else timestep + 1
        eps = self.net(x * self.inv_sqrt_ab[t][:, None], self.sigma[t])
        if self.gam != 1.0:
            out = eps if self.prev is None else self.gam * eps + (1 - self.gam) * self.prev
            self.prev = eps
            return out
        return eps


def _network() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SigmaMLP()


def sampler_pair(k: int, n: int, preset: SamplerSettings, device: torch.device):
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler  # the class itself, not its package's stand-in

    schedule = linear_schedule(T)
    net = _network().to(device).eval()
    sigmas = sample_sigmas(sigma_twin(schedule)[1:], k)
    scheduler = DDIMScheduler(
        num_train_timesteps=T,
        trained_betas=schedule.betas.numpy(),
        clip_sample=False,
        set_alpha_to_one=False,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    scheduler.set_timesteps(k, device=device)
    model = SigmaNetAsVP(net, schedule, preset["gam"]).to(device)
    first_t = int(scheduler.timesteps[0]) + 1
    g_ours, g_peer = seeded(device), seeded(device)

    @torch.no_grad()
    def ours() -> Tensor:
        z = torch.randn(n, 2, generator=g_ours, device=device)
        x = gam_mu_sample(net, sigmas, vp_to_ve(z, schedule.alpha_bar[first_t]), **preset)
        return ve_to_vp(x, schedule.alpha_bar[1])

    @torch.no_grad()
    def peer() -> Tensor:  # the documented loop
        model.reset()
        x = torch.randn(n, 2, generator=g_peer, device=device)
        for timestep in scheduler.timesteps:
            x = scheduler.step(model(x, timestep), timestep, x, eta=0.0).prev_sample
        return x

    return Pair(ours, peer)


def train_pair(n: int, device: torch.device):
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler  # the class itself, not its package's stand-in

    from ddpm.data import Swissroll

    schedule = linear_schedule(T)
    net = _network()
    ours_net, peer_net = copy.deepcopy(net).to(device).train(), copy.deepcopy(net).to(device).train()
    ours_opt = adamw(ours_net.parameters(), LR, device)
    peer_opt = torch.optim.AdamW(peer_net.parameters(), lr=LR)  # what a user writes
    scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.numpy(), clip_sample=False)
    model = SigmaNetAsVP(peer_net, schedule)
    g = seeded(torch.device("cpu"))
    x0 = Swissroll().points.float().repeat((n + 199) // 200, 1)[:n].to(device)
    t = torch.randint(1, T + 1, (n,), generator=g).to(device)
    eps = torch.randn(x0.shape, generator=g).to(device)
    sigma = sigma_twin(schedule).float().to(device)[t]

    def ours() -> Tensor:
        return sigma_train_step(ours_net, ours_opt, x0, sigma, eps)

    def peer() -> Tensor:
        noisy = scheduler.add_noise(x0, eps, t - 1)
        loss = F.mse_loss(model(noisy, t - 1), eps)
        loss.backward()
        peer_opt.step()
        peer_opt.zero_grad()
        return loss

    return Pair(ours, peer)


def sigma_workloads(device: torch.device, quick: bool = False) -> list[Workload]:
    """The sigma world's workloads on ``device``; ``quick`` takes fewer rounds."""

    r = lambda q, f: q if quick else f  # noqa: E731
    peer_ddim = "diffusers DDIMScheduler loop"
    out = []
    for name, preset in (("ddim", DDIM), ("accel", ACCEL)):
        for k in (10, 50):
            out.append(
                Workload(
                    f"sigma_mlp {name} sample N=2000 K={k}",
                    "sample",
                    device,
                    partial(sampler_pair, k, 2000, preset, device),
                    r(5, 11),
                    warmup=2,
                    peer=peer_ddim,
                )
            )
    for n in (200, 5000):
        out.append(
            Workload(
                f"sigma_mlp train B={n}",
                "train",
                device,
                partial(train_pair, n, device),
                r(31, 61),
                warmup=3,
                peer="diffusers add_noise + AdamW step",
            )
        )
    return out
