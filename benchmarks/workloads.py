"""The benchmarked workloads, each a pair (ours, peer) running the same network with the same weights.

(a) the toy MLP — the 02460 ``FcNetwork`` (width 64) and a width-128 variant — sampling N = 256 and
N = 5000 points in 2D with T = 1000, and its training step at batch 5000; (b) the MNIST U-Net: its
training step at batch 128 and sampling 256 images. On CPU the U-Net sampler runs a T = 2 (quick)
or T = 10 chain, since 1000 U-Net steps at batch 256 take most of an hour on two cores; the time of
a step does not depend on T, so the ratio is that of T = 1000. The U-Net's inputs are uniform
noise in [-1, 1] shaped like MNIST: the cost of a step does not depend on the pixel values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from benchmarks.pair import Pair, Workload, seeded
from benchmarks.peer import ShiftedTimesteps, peer_sample, peer_scheduler, peer_train_step
from benchmarks.sigma_workloads import sigma_workloads
from ddpm.beta.sampler import FastSampler
from ddpm.beta.schedule import linear_schedule
from ddpm.data import toy_dataset
from ddpm.nets import FcNetwork, UNet
from ddpm.train import adam, train_step

__all__ = ["workloads"]

LR = 1e-3


def _network(make: Callable[[], nn.Module]) -> nn.Module:
    """A network with seeded initial weights; a U-Net's zero output layer is made random, so that
    comparing ours with the peer tests something."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = make()
        if isinstance(net, UNet):
            nn.init.normal_(net.conv_out.weight, std=0.05)
    return net


def sampler_pair(make: Callable[[], nn.Module], T: int, shape: tuple[int, ...], device: torch.device) -> Pair:
    """Ours: ``FastSampler`` (a CUDA graph on CUDA). Peer: diffusers' documented loop. Same seed on both."""
    net = _network(make).to(device).eval()
    schedule = linear_schedule(T)
    ours = FastSampler(net, schedule, shape, generator=seeded(device), device=device)
    scheduler, model, generator = peer_scheduler(schedule), ShiftedTimesteps(net), seeded(device)

    def details() -> dict[str, Any]:
        out: dict[str, Any] = {"ours_setup_s": ours.capture_s}
        if device.type == "cuda":
            from benchmarks.timing import graph_kernel_cost, kernels_launched

            steps = 10
            eager = FastSampler(net, linear_schedule(steps), shape, device=device, cuda_graph=False)
            eager()
            per_step = kernels_launched(eager) / steps
            cost = graph_kernel_cost(device)
            out.update(kernels_per_step=per_step, kernel_cost_s=cost, launch_floor_s=per_step * T * cost)
        return out

    return Pair(ours, lambda: peer_sample(model, scheduler, shape, generator=generator, device=device), details)


def train_pair(make: Callable[[], nn.Module], x0: torch.Tensor, T: int, device: torch.device) -> Pair:
    """Ours: ``ddpm.train.train_step`` with the Adam that ``train`` uses (fused), and
    for the U-Net on CUDA channels_last and bf16 autocast. Peer: add_noise, MSE, backward, plain Adam."""
    net = _network(make)
    image = x0.ndim == 4
    fast_layout = image and device.type == "cuda"
    layout = torch.channels_last if fast_layout else torch.contiguous_format
    # Module.to takes memory_format at run time; torch's overloads for it leave the keyword out
    ours_net = copy.deepcopy(net).to(device, memory_format=layout).train()  # type: ignore[call-overload]
    peer_net = copy.deepcopy(net).to(device).train()
    ours_opt = adam(ours_net.parameters(), LR, device)
    peer_opt = torch.optim.Adam(peer_net.parameters(), lr=LR)  # what a user writes
    schedule, scheduler, model = (
        linear_schedule(T).to(device),
        peer_scheduler(linear_schedule(T)),
        ShiftedTimesteps(peer_net),
    )
    g = seeded(device)
    x0 = x0.to(device)
    t = torch.randint(1, T + 1, (x0.shape[0],), generator=g, device=device)
    eps = torch.randn(x0.shape, generator=g, device=device)
    x0_ours, eps_ours = x0.contiguous(memory_format=layout), eps.contiguous(memory_format=layout)

    def ours() -> torch.Tensor:
        return train_step(ours_net, schedule, ours_opt, x0_ours, t, eps_ours, autocast=fast_layout)

    def details() -> dict[str, Any]:
        from torch.utils.flop_counter import FlopCounterMode

        from benchmarks.timing import peak_bf16_flops

        counter = FlopCounterMode(display=False)
        with counter:
            ours()
        return {"flops": counter.get_total_flops(), "peak_bf16_flops": peak_bf16_flops(device)}

    # float32 losses agree to ~1e-6; bf16 autocast (8 significant bits) to ~1e-2
    return Pair(
        ours,
        lambda: peer_train_step(model, scheduler, peer_opt, x0, t - 1, eps),
        details,
        rtol=2e-2 if fast_layout else 1e-4,
    )


def _toy_batch(n: int) -> torch.Tensor:
    return toy_dataset("cb").sample(n, generator=seeded(torch.device("cpu")))


def _toy_train_pair(make: Callable[[], nn.Module], n: int, T: int, device: torch.device) -> Pair:
    return train_pair(make, _toy_batch(n), T, device)


def _mnist_like(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=seeded(torch.device("cpu"))) * 2 - 1


def workloads(device: torch.device, quick: bool = False) -> list[Workload]:
    """Every workload on ``device``.

    ``quick`` takes fewer rounds, a shorter U-Net chain and, on CPU, leaves out
    the width-128 sampler at N = 5000."""
    cpu = device.type == "cpu"
    T = 1000
    fc = {64: lambda: FcNetwork(2, num_hidden=64, T=T), 128: lambda: FcNetwork(2, num_hidden=128, T=T)}
    unet = lambda: UNet(T=T)  # noqa: E731
    unet_T = (2 if quick else 10) if cpu else T
    r = lambda q, f: q if quick else f  # noqa: E731
    out = []
    for width, make in fc.items():
        for n, rounds, target in ((256, r(5, 9), 2.0 if cpu else 10.0), (5000, r(3, 7), 1.2 if cpu else 10.0)):
            if quick and cpu and width == 128 and n == 5000:
                continue  # the costliest toy workload: full mode only
            out.append(
                Workload(
                    f"fc{width} sample N={n} T={T}",
                    "sample",
                    device,
                    partial(sampler_pair, make, T, (n, 2), device),
                    rounds,
                    target=target,
                )
            )
    for width, make in fc.items():
        out.append(
            Workload(
                f"fc{width} train B=5000",
                "train",
                device,
                partial(_toy_train_pair, make, 5000, T, device),
                r(61, 101),
                warmup=3,
                target=1.0 if cpu else None,
            )
        )
    out.append(
        Workload(
            "unet train B=128",
            "train",
            device,
            lambda: train_pair(unet, _mnist_like(128), T, device),
            r(5, 9) if cpu else r(10, 30),
            warmup=1 if cpu else 3,
            target=1.0 if cpu else None,
        )
    )
    out.append(
        Workload(
            f"unet sample N=256 T={unet_T}",
            "sample",
            device,
            lambda: sampler_pair(unet, unet_T, (256, 1, 28, 28), device),
            r(2, 3),
        )
    )

    return out + sigma_workloads(device, quick)
