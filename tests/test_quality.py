"""A trained toy model is measurably good: a bound that a brief training run meets and an untrained
or broken model fails [issue: measured quality].

The yardstick is the energy distance (ddpm.metrics) between 1000 model samples and 1000 true
samples of TwoGaussians. Two true samples score 0.0004-0.0034 at this n; the model below, trained
for 800 steps (3 s), scores about 0.004; sampling it with another schedule than the one it was trained
on scores 0.07-0.09, and an untrained network about 200. The bound, 0.02, sits 5x above the trained
model and 3x below the nearest broken one. Training and sampling are seeded, so the test is exact.
"""

from __future__ import annotations

import pytest
import torch

from ddpm.beta.sampler import sample
from ddpm.beta.schedule import linear_schedule
from ddpm.data import TwoGaussians
from ddpm.metrics import energy_distance
from ddpm.train import TrainConfig, build_model, build_schedule, restore_model, train

CONFIG = TrainConfig(
    data="tg",
    network="fc",
    net_config=dict(input_dim=2, num_hidden=64, num_layers=3, activation="silu"),
    T=100,
    beta_T=0.2,
    steps=800,
    batch_size=512,
    lr=3e-3,
    seed=0,
)
BOUND = 0.02
N = 1000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return restore_model(train(CONFIG, tmp_path_factory.mktemp("q") / "ckpt.pt", show_progress=False))


def distance_to_data(model, schedule, seed: int = 0, **kwargs) -> tuple[float, float]:
    """Energy distance of N model samples to N true samples, and their mean exact log-density."""
    data = TwoGaussians()
    x = sample(model, schedule, (N, 2), generator=torch.Generator().manual_seed(seed), **kwargs)
    y = data.sample(N, generator=torch.Generator().manual_seed(seed + 100))
    return energy_distance(x, y), data.log_prob(x).mean().item()


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_a_briefly_trained_model_is_close_to_the_data(trained, sigma2):
    distance, log_p = distance_to_data(trained, build_schedule(CONFIG), sigma2=sigma2)
    assert distance < BOUND, f"energy distance {distance:.4f} to the data exceeds {BOUND}"
    data = TwoGaussians()
    true_log_p = data.log_prob(data.sample(N, torch.Generator().manual_seed(1))).mean().item()
    assert log_p > true_log_p - 1.0, f"mean log-density {log_p:.3f} of samples vs {true_log_p:.3f} of data"


def test_an_untrained_model_fails_the_bound():
    distance, _ = distance_to_data(build_model(CONFIG).eval(), build_schedule(CONFIG))
    assert distance > BOUND


def test_a_broken_sampler_fails_the_bound(trained):
    """The trained network driven through another schedule than the one it learned (beta_T = 0.02)."""
    distance, _ = distance_to_data(trained, linear_schedule(CONFIG.T, CONFIG.beta_1, 0.02))
    assert distance > BOUND
