"""Data-parallel training: two gloo processes on CPU give the single-process weights.

Each process draws the whole global batch from the run's generator and trains on its half;
DistributedDataParallel averages the two halves' gradients, which is the gradient of the global
batch. The weights then agree up to the order of float32 sums (the mean over 64 rows is taken as
two means of 32, averaged): after 5 Adam steps they differ by ~1e-8 (observed 7e-9), held to atol = 1e-5 with
rtol = 1e-4, while a run on a different batch differs by ~1e-2 (observed 8e-3; the test below shows the
comparison can fail).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ddpm.train import TrainConfig, load_checkpoint, train

CONFIG = TrainConfig(
    data="tg",
    network="fc",
    net_config=dict(input_dim=2, num_hidden=32),
    T=100,
    steps=5,
    batch_size=64,
    ema_decay=None,
    warmdown=0.0,
    checkpoint_every=1000,
    seed=7,
)
ATOL, RTOL = 1e-5, 1e-4
# Checkpoints at 2 and 4 fall inside the log intervals 1-3 and 4-5: the losses of an open interval are
# averaged over the processes at a checkpoint, the rest at the log.
CONFIG = replace(CONFIG, checkpoint_every=2, log_every=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        final = train(CONFIG, os.path.join(out, "ddp.pt"), resume=False, show_progress=False)
        torch.save(final.model, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _prefixed(key: str) -> Callable[[str], str]:
    return lambda message: f"{key}: {message}"


def assert_close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=RTOL, msg=_prefixed(key))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two-process run (its checkpoint and each rank's final weights) and the single-process run."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    single = train(CONFIG, out / "single.pt", resume=False, show_progress=False)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return load_checkpoint(out / "ddp.pt"), ranks, single


def test_two_processes_equal_one(runs):
    ddp, ranks, single = runs
    assert ddp.step == single.step == CONFIG.steps
    assert_close_weights(ddp.model, single.model)
    assert len(ddp.losses) == 2 and ddp.losses == pytest.approx(single.losses, rel=RTOL)  # the global batch's loss
    for state in ranks:  # every replica holds the same weights
        assert_close_weights(state, single.model)


def test_comparison_fails_for_another_batch(runs, tmp_path):
    """The check can fail: training on half the global batch alone (what a rank sees) is not the same run."""
    ddp, _, _ = runs
    half = train(replace(CONFIG, batch_size=32), tmp_path / "half.pt", resume=False, show_progress=False)
    with pytest.raises(AssertionError):
        assert_close_weights(ddp.model, half.model)
