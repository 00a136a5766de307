"""The sigma workloads' two sides compute the same thing.

The same samples (DDIM and the accelerated sampler through the
bridge) and the same training loss, before any timing is trusted."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from benchmarks.sigma_workloads import sampler_pair, train_pair  # noqa: E402
from ddpm.sigma.sampler import ACCEL, DDIM  # noqa: E402

CPU = torch.device("cpu")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max() / a.detach().abs().max())


@pytest.mark.parametrize("preset", [DDIM, ACCEL], ids=["ddim", "accel"])
@pytest.mark.parametrize("k", [10, 50])
def test_sigma_samplers_match_the_ddim_loop(preset, k):
    pair = sampler_pair(k, 64, preset, CPU)
    assert _relative(pair.ours(), pair.peer()) < 1e-4


def test_sigma_accel_differs_from_ddim():
    """The comparison can fail: the accelerated sampler against the plain DDIM loop."""
    ours, peer = sampler_pair(10, 64, ACCEL, CPU).ours(), sampler_pair(10, 64, DDIM, CPU).peer()
    assert _relative(ours, peer) > 1e-3  # 4e-3 on the untrained network, 40x the tolerance above


@pytest.mark.parametrize("n", [200, 1000])
def test_sigma_training_steps_match(n):
    pair = train_pair(n, CPU)
    for _ in range(2):  # the same loss twice: the same loss and the same AdamW update
        assert _relative(pair.ours(), pair.peer()) < 1e-5
