"""The peer is apples to apples: same network, weights and noise; diffusers' loop draws our samples.

diffusers keeps its coefficients in float32 (ours are float64, cast once), so the two agree to
round-off, not bit for bit: 1000 steps stay within 1e-4 of the samples' size (observed ~1e-5).
diffusers' default configuration (clip_sample=True) is not Algorithm 2, and the same comparison
rejects it. Run with ``pytest benchmarks`` (needs the bench extra).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from benchmarks.peer import ShiftedTimesteps, peer_sample, peer_scheduler  # noqa: E402
from benchmarks.report import relative_difference  # noqa: E402
from benchmarks.workloads import _network, _toy_batch, train_pair  # noqa: E402
from ddpm.beta.sampler import sample_fast  # noqa: E402
from ddpm.beta.schedule import linear_schedule  # noqa: E402
from ddpm.nets import FcNetwork  # noqa: E402

RTOL = 1e-4


def draws(sigma2: str, scheduler=None) -> tuple[torch.Tensor, torch.Tensor]:
    net, schedule = _network(lambda: FcNetwork(2)).eval(), linear_schedule(1000)
    ours = sample_fast(net, schedule, (256, 2), sigma2=sigma2, generator=torch.Generator().manual_seed(0))
    scheduler = peer_scheduler(schedule, sigma2) if scheduler is None else scheduler
    peer = peer_sample(ShiftedTimesteps(net), scheduler, (256, 2), generator=torch.Generator().manual_seed(0))
    return ours, peer


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_peer_draws_our_samples(sigma2):
    assert relative_difference(*draws(sigma2)) <= RTOL


def test_comparison_rejects_diffusers_defaults():
    from diffusers import DDPMScheduler

    schedule = linear_schedule(1000)
    default = DDPMScheduler(num_train_timesteps=1000, trained_betas=schedule.betas.numpy(), variance_type="fixed_large")
    assert relative_difference(*draws("beta", default)) > RTOL


def test_peer_training_step_is_ours():
    """Two steps from the same weights on the same batch: equal first losses (the same L_simple) and equal
    second losses (the same Adam update in between)."""
    pair = train_pair(lambda: FcNetwork(2), _toy_batch(512), 1000, torch.device("cpu"))
    for _ in range(2):
        assert relative_difference(pair.ours(), pair.peer()) <= 1e-5
