"""Training (Algorithm 1): determinism, checkpoints, resume after an interruption, bad input."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from ddpm.train import TrainConfig, ema_decay, load_checkpoint, restore_model, save_checkpoint, train, update_ema

TINY = TrainConfig(data="tg", network="fc", net_config=dict(input_dim=2, num_hidden=16), T=50, steps=12,
                   batch_size=32, lr=1e-3, checkpoint_every=4, seed=3)


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten().float() for v in state.values()])


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_weights(tmp_path):
    a = train(TINY, tmp_path / "a.pt", show_progress=False)
    b = train(TINY, tmp_path / "b.pt", show_progress=False)
    assert_same_weights(a.model, b.model)
    c = train(replace(TINY, seed=4), tmp_path / "c.pt", show_progress=False)
    assert not torch.equal(flat(a.model), flat(c.model))


def test_resume_continues_exactly(tmp_path):
    """Training 12 steps at once equals 8 steps, then 4 more from the checkpoint (constant lr)."""
    config = replace(TINY, warmdown=0.0)
    whole = train(config, tmp_path / "whole.pt", show_progress=False)
    train(replace(config, steps=8), tmp_path / "part.pt", show_progress=False)
    resumed = train(config, tmp_path / "part.pt", show_progress=False)
    assert resumed.step == 12
    assert_same_weights(whole.model, resumed.model)
    assert_same_weights(whole.ema, resumed.ema)


def test_interrupted_run_resumes_without_loss(tmp_path):
    """Ctrl-C in the middle of `ddpm train`: the checkpoint it writes resumes to the uninterrupted result."""
    args = [sys.executable, "-m", "ddpm.cli", "train", "--data", "tg", "--T", "50", "--steps", "400",
            "--width", "16", "--depth", "2", "--batch-size", "64", "--checkpoint-every", "50", "--samples", "16",
            "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    interrupted = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=env,
                                   stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    first = tmp_path / "cut" / "checkpoint.pt"
    start = time.monotonic()
    while not first.exists() and interrupted.poll() is None and time.monotonic() - start < 60:
        time.sleep(0.01)  # interrupt once training is under way: after its first checkpoint
    interrupted.send_signal(signal.SIGINT)
    rest = interrupted.communicate(timeout=60)[1]
    assert interrupted.returncode == 130, rest
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert 50 <= cut.step < 400, "the interrupt should land mid-run"
    assert cut.step % 50, "the checkpoint is the one written on the interrupt, not an interval's"
    subprocess.run(args + ["--out", str(tmp_path / "cut")], env=env, check=True, capture_output=True)
    subprocess.run(args + ["--out", str(tmp_path / "whole")], env=env, check=True, capture_output=True)
    a, b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt"), load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    assert a.step == b.step == 400
    assert_same_weights(a.model, b.model)


def test_resume_refuses_another_configuration(tmp_path):
    train(TINY, tmp_path / "c.pt", show_progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train(replace(TINY, lr=0.5), tmp_path / "c.pt", show_progress=False)


def test_checkpoint_round_trip_and_restore(tmp_path):
    ckpt = train(TINY, tmp_path / "c.pt", show_progress=False)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.config == TINY and loaded.step == TINY.steps
    model = restore_model(loaded)
    x, t = torch.randn(5, 2), torch.tensor([1, 2, 3, 4, 50])
    raw = restore_model(loaded, use_ema=False)
    assert not model.training
    assert torch.equal(flat(raw.state_dict()), flat(ckpt.model))
    assert torch.equal(flat(model.state_dict()), flat(ckpt.ema))
    assert not torch.equal(flat(ckpt.ema), flat(ckpt.model))
    assert model(x, t).shape == (5, 2)


def test_ema_is_the_warmed_up_average():
    """The EMA after n steps is the average of the weights with decays min(d, (1 + s) / (10 + s))."""
    config = replace(TINY, steps=3, ema_decay=0.9)
    decays = [ema_decay(config, s) for s in range(3)]
    assert decays == [0.1, 2 / 11, 0.25]
    model = torch.nn.Linear(2, 1)
    ema = copy.deepcopy(model)
    expected = model.weight.detach().clone()
    for d in decays:
        with torch.no_grad():
            model.weight.add_(1.0)
        update_ema(ema, model, d)
        expected = d * expected + (1 - d) * model.weight.detach()
    torch.testing.assert_close(ema.weight, expected)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A write that fails midway leaves the previous checkpoint intact and no temporary file behind."""
    ckpt = train(TINY, tmp_path / "c.pt", show_progress=False)
    before = (tmp_path / "c.pt").read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.pt", ckpt)
    assert (tmp_path / "c.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="is not a readable ddpm checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not a ddpm checkpoint: expected format"):
        load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize("change, message", [
    (dict(steps=0), "steps must be >= 1, got 0"),
    (dict(lr=-1.0), "lr must be > 0"),
    (dict(ema_decay=1.0), "ema_decay must lie in"),
    (dict(schedule="quadratic"), "schedule must be 'linear' or 'cosine'"),
    (dict(warmdown=2.0), "warmdown must lie in"),
])
def test_bad_configuration(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change)
