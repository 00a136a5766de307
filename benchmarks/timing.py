"""Timing done right: warm-up, interleaved A/B rounds, medians, the device synchronised at the end.

On CUDA each timed region starts after ``torch.cuda.synchronize()`` and ends with another, so it
holds exactly the work of one call; graph capture and compilation happen in the warm-up calls and
are reported apart (``FastSampler.capture_s``). On CPU the clock is ``time.perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Comparison", "timed", "compare", "kernels_launched", "graph_kernel_cost", "peak_bf16_flops"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds taken by one call of ``fn``, the device's queued work included."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@dataclass
class Comparison:
    """The times of ours and the peer's, in seconds, one entry a round, and the warm-up results."""

    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    first_ours: object = None
    first_peer: object = None

    @property
    def ours_s(self) -> float:
        return statistics.median(self.ours)

    @property
    def peer_s(self) -> float:
        return statistics.median(self.peer)

    @property
    def speedup(self) -> float:
        """peer_s / ours_s, the ratio of medians."""
        return self.peer_s / self.ours_s


def compare(
    ours: Callable[[], object], peer: Callable[[], object], device: torch.device, *, rounds: int, warmup: int = 1
) -> Comparison:
    """Time ``ours`` and ``peer`` in ``rounds`` interleaved rounds after ``warmup`` calls of each.

    The order within a round alternates (ours first in even rounds, the peer first in odd ones), so
    a drift of the machine (another process, the clock, the cache) weighs on both sides alike. The
    results of the first warm-up calls are kept, so the caller can check the two sides agree.
    """
    result = Comparison()
    for i in range(warmup):
        a, b = ours(), peer()
        if i == 0:
            result.first_ours, result.first_peer = a, b
    _sync(device)
    for r in range(rounds):
        sides = [(ours, result.ours), (peer, result.peer)]
        for fn, times in sides if r % 2 == 0 else sides[::-1]:
            times.append(timed(fn, device))
    return result


def kernels_launched(fn: Callable[[], object]) -> int:
    """The number of CUDA kernels one call of ``fn`` launches, counted by the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA)


def graph_kernel_cost(device: torch.device, kernels: int = 2000, replays: int = 20) -> float:
    """Seconds per kernel of a CUDA graph of ``kernels`` tiny kernels: the launch cost a replay must pay."""
    x = torch.zeros(256, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        x.add_(1.0)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(kernels):
            x.add_(1.0)
    graph.replay()
    times = [timed(graph.replay, device) for _ in range(replays)]
    return statistics.median(times) / kernels


# Dense (no sparsity) bfloat16 tensor-core peaks from the vendor's data sheets, in FLOP/s.
PEAK_BF16 = {
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "A100": 312e12,
}


def peak_bf16_flops(device: torch.device) -> float | None:
    """The dense bf16 peak of ``device`` if it is in :data:`PEAK_BF16`, else None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)
