"""Training (Algorithm 1): determinism, checkpoints, resume after an interruption, faults, bad input.

The fault-injection tests write real faults: bytes flipped in a checkpoint's tensor data, a full disk
(a small tmpfs, when running as root), SIGKILL in the middle of a write, a learning rate that turns
the state to NaN. Each checks what the user is told and that the last good checkpoint survives.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

import ddpm.train
from ddpm.train import (
    Checkpoint,
    CheckpointError,
    CheckpointWriteError,
    CorruptCheckpoint,
    ForeignCheckpoint,
    NonFiniteState,
    TrainConfig,
    TrainingDiverged,
    ema_decay,
    load_checkpoint,
    restore_model,
    save_checkpoint,
    train,
    update_ema,
)

# 12 steps; a checkpoint every 4, a logged loss every 5: the two boundaries fall apart, so an
# interrupt or a resume can land inside a log interval, on a checkpoint, or on both.
TINY = TrainConfig(
    data="tg",
    network="fc",
    net_config=dict(input_dim=2, num_hidden=16),
    T=50,
    steps=12,
    batch_size=32,
    lr=1e-3,
    checkpoint_every=4,
    seed=3,
    log_every=5,
)
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten().float() for v in state.values()])


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_same_run(a: Checkpoint, b: Checkpoint):
    """The same state and the same loss history, bit for bit."""
    assert a.step == b.step
    assert_same_weights(a.model, b.model)
    assert_same_weights(a.ema, b.ema)
    assert a.losses == b.losses and a.pending == b.pending


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_same_seed_same_weights(tmp_path):
    a = train(TINY, tmp_path / "a.pt", show_progress=False)
    b = train(TINY, tmp_path / "b.pt", show_progress=False)
    assert_same_run(a, b)
    c = train(replace(TINY, seed=4), tmp_path / "c.pt", show_progress=False)
    assert not torch.equal(flat(a.model), flat(c.model))


def test_resume_continues_exactly(tmp_path):
    """Training 12 steps at once equals 8 steps, then 4 more from the checkpoint (constant lr): the
    weights and the loss history (8 is inside the second log interval, which the short run logged short)."""
    config = replace(TINY, warmdown=0.0)
    whole = train(config, tmp_path / "whole.pt", show_progress=False)
    part = train(replace(config, steps=8), tmp_path / "part.pt", show_progress=False)
    assert len(part.losses) == 2 and len(part.pending) == 3  # steps 1-5, then 6-8 logged short
    resumed = train(config, tmp_path / "part.pt", show_progress=False)
    assert resumed.step == 12 and len(whole.losses) == 3  # steps 1-5, 6-10, 11-12
    assert_same_run(whole, resumed)
    assert_same_run(load_checkpoint(tmp_path / "whole.pt"), load_checkpoint(tmp_path / "part.pt"))


def _interrupt_after(monkeypatch, stop_at: int):
    """SIGINT delivered to this process during step ``stop_at`` (1-based), as Ctrl-C would be."""
    calls = {"n": 0}
    real = ddpm.train.update_ema

    def update(*args):
        real(*args)
        calls["n"] += 1
        if calls["n"] == stop_at:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(ddpm.train, "update_ema", update)


@pytest.mark.parametrize("stop_at", [3, 4, 5, 8, 10, 11])
def test_interrupt_anywhere_resumes_to_the_same_run(tmp_path, monkeypatch, stop_at):
    """Ctrl-C at any step — inside a log interval (3, 11), on a checkpoint (4, 8), on a logged loss (5),
    on both (10 is a log boundary, 8 a checkpoint one) — then resuming: the uninterrupted run's weights,
    EMA and loss history, bit for bit."""
    whole = train(TINY, tmp_path / "whole.pt", show_progress=False)
    with monkeypatch.context() as m:
        _interrupt_after(m, stop_at)
        with pytest.raises(KeyboardInterrupt, match=f"stopped at step {stop_at};"):
            train(TINY, tmp_path / "cut.pt", show_progress=False)
    cut = load_checkpoint(tmp_path / "cut.pt")
    assert cut.step == stop_at
    assert len(cut.losses) == stop_at // TINY.log_every and len(cut.pending) == stop_at % TINY.log_every
    assert_same_run(whole, train(TINY, tmp_path / "cut.pt", show_progress=False))


def test_interrupted_command_resumes_without_loss(tmp_path):
    """Ctrl-C in the middle of `ddpm train`: the checkpoint it writes resumes to the uninterrupted result,
    weights and loss history alike (the history once had 2 entries too many after a resume)."""
    args = [
        sys.executable,
        "-m",
        "ddpm.cli",
        "train",
        "--data",
        "tg",
        "--T",
        "50",
        "--steps",
        "300",
        "--width",
        "16",
        "--depth",
        "2",
        "--batch-size",
        "512",
        "--checkpoint-every",
        "10",
        "--samples",
        "16",
        "--device",
        "cpu",
    ]
    interrupted = subprocess.Popen(
        args + ["--out", str(tmp_path / "cut")], env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    first = tmp_path / "cut" / "checkpoint.pt"
    start = time.monotonic()
    while not first.exists() and interrupted.poll() is None and time.monotonic() - start < 120:
        time.sleep(0.01)  # interrupt once training is under way: after its first checkpoint
    interrupted.send_signal(signal.SIGINT)
    rest = interrupted.communicate(timeout=120)[1]
    assert interrupted.returncode == 130, rest
    cut = load_checkpoint(first)
    # Where the interrupt lands is up to the scheduler, on a checkpoint boundary or not: the checkpoint is
    # the one written on the interrupt whichever it is.
    assert f"stopped at step {cut.step};" in rest and 10 <= cut.step < 300, rest
    subprocess.run(args + ["--out", str(tmp_path / "cut")], env=ENV, check=True, capture_output=True)
    subprocess.run(args + ["--out", str(tmp_path / "whole")], env=ENV, check=True, capture_output=True)
    a, b = load_checkpoint(first), load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    assert a.step == b.step == 300 and len(a.losses) == 300 // 50
    assert_same_run(a, b)


def test_resume_refuses_another_configuration(tmp_path):
    train(TINY, tmp_path / "c.pt", show_progress=False)
    with pytest.raises(ValueError, match=r"another configuration \(lr 0.001 there, 0.5 here\)"):
        train(replace(TINY, lr=0.5), tmp_path / "c.pt", show_progress=False)
    with pytest.raises(ValueError, match="already at step 12, past the 8 steps asked for"):
        train(replace(TINY, steps=8), tmp_path / "c.pt", show_progress=False)


def test_checkpoint_round_trip_and_restore(tmp_path):
    old = os.umask(0o022)
    try:
        ckpt = train(TINY, tmp_path / "c.pt", show_progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644  # the umask's, not mkstemp's 0600
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.config == TINY and loaded.step == TINY.steps
    model = restore_model(loaded)
    x, t = torch.randn(5, 2), torch.tensor([1, 2, 3, 4, 50])
    raw = restore_model(loaded, use_ema=False)
    assert not model.training
    assert ckpt.ema is not None
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


# -- what a checkpoint file can be: good, corrupt, foreign ---------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "checkpoint.pt"
    train(TINY, path, show_progress=False)
    return path


def copy_of(good: Path, tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(good.read_bytes())
    return path


def flip_tensor_bytes(path: Path, count: int = 64) -> str:
    """Invert ``count`` bytes in the middle of the largest tensor's data in torch's zip.

    Returns its entry.
    """
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if re.search(r"/data/\d+$", i.filename)), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + (info.file_size - count) // 2
    assert info.file_size >= count and info.compress_type == zipfile.ZIP_STORED
    for i in range(start, start + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return info.filename


def test_flipped_bytes_in_tensor_data_are_corrupt(good, tmp_path):
    """64 flipped bytes in the tensor data: torch still loads the file (the damage is in the numbers,
    as in the Adam moment of -2.2e7 once seen), so only the checksum can tell; load says corrupt, and
    training refuses to resume from it and leaves it as it is."""
    path = copy_of(good, tmp_path)
    flip_tensor_bytes(path)
    damaged, intact = (torch.load(p, weights_only=True) for p in (path, good))  # loads: the planted fault is silent
    assert damaged["checksum"] == intact["checksum"]
    assert not all(torch.equal(a, b) for a, b in zip(flat_tensors(damaged), flat_tensors(intact)))
    with pytest.raises(
        CorruptCheckpoint,
        match="is a corrupt ddpm checkpoint: its contents changed after it was "
        r"written \(their SHA-256 differs",
    ):
        load_checkpoint(path)
    before = path.read_bytes()
    with pytest.raises(CorruptCheckpoint):
        train(replace(TINY, steps=16), path, show_progress=False)
    assert path.read_bytes() == before


def flat_tensors(payload) -> list[torch.Tensor]:
    out = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, dict):
            for k in sorted(v, key=repr):
                walk(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(payload)
    return out


def test_truncated_checkpoint_is_corrupt(good, tmp_path):
    path = copy_of(good, tmp_path)
    path.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CorruptCheckpoint, match="is a corrupt ddpm checkpoint: torch cannot read it"):
        load_checkpoint(path)


def _edit(good: Path, tmp_path: Path, edit) -> Path:
    """The checkpoint rewritten by plain torch.load / torch.save after ``edit(payload)``, as a user might."""
    payload = torch.load(good, weights_only=True)
    edit(payload)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return path


def test_edited_configuration_and_missing_entries_are_corrupt(good, tmp_path):
    """A config saying T = 50 on weights trained with another T, or a checkpoint without its 'ema' entry:
    the checksum binds the configuration to the weights, and a missing entry is named."""
    retimed = _edit(good, tmp_path, lambda p: p["config"].update(T=1000))
    with pytest.raises(CorruptCheckpoint, match="SHA-256 differs"):
        load_checkpoint(retimed)
    no_ema = _edit(good, tmp_path, lambda p: p.pop("ema"))
    with pytest.raises(CorruptCheckpoint, match="it lacks the entry 'ema'"):
        load_checkpoint(no_ema)


def test_weights_must_fit_their_configuration(good, tmp_path):
    """A checkpoint written consistently but of weights another configuration made (through the API):
    a one-line error naming the parameter and both shapes, not a size-mismatch traceback."""
    ckpt = load_checkpoint(good)
    wider = replace(ckpt, config=replace(ckpt.config, net_config={**ckpt.config.net_config, "num_hidden": 32}))
    save_checkpoint(tmp_path / "wider.pt", wider)
    with pytest.raises(
        CheckpointError,
        match=r"its 'model' weights do not fit its configuration \(fc .*num_hidden"
        r".*32.*\): network.0.weight has shape \(16, 3\), the configuration "
        r"makes \(32, 3\)",
    ):
        load_checkpoint(tmp_path / "wider.pt")
    deeper = replace(ckpt, config=replace(ckpt.config, net_config={**ckpt.config.net_config, "num_layers": 3}))
    save_checkpoint(tmp_path / "deeper.pt", deeper)
    with pytest.raises(CheckpointError, match="are in one but not the other"):
        load_checkpoint(tmp_path / "deeper.pt")
    save_checkpoint(tmp_path / "no_ema.pt", replace(ckpt, ema=None))
    with pytest.raises(CheckpointError, match="holds no EMA weights, but its configuration says ema_decay = 0.999"):
        load_checkpoint(tmp_path / "no_ema.pt")


def test_foreign_and_unknown_files(good, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(256))
    with pytest.raises(ForeignCheckpoint, match=r"is not a ddpm checkpoint \(foreign\): not a file torch.save writes"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ForeignCheckpoint, match=r"is not a ddpm checkpoint \(foreign\): expected format"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module: weights_only refuses it
    with pytest.raises(ForeignCheckpoint, match=r"\(foreign\): a torch file of something else"):
        load_checkpoint(tmp_path / "module.pt")
    newer = _edit(good, tmp_path, lambda p: p.update(format="ddpm-checkpoint/9"))
    with pytest.raises(ForeignCheckpoint, match="from another version of ddpm"):
        load_checkpoint(newer)


def test_format_1_checkpoints_still_load(good, tmp_path):
    """Checkpoints written before the checksum (format 1, no 'pending') load unverified, and resume."""

    def to_v1(p):
        p.update(format="ddpm-checkpoint/1")
        p.pop("checksum"), p.pop("pending")
        p["config"].pop("log_every")

    path = _edit(good, tmp_path, to_v1)
    old = load_checkpoint(path)
    assert old.step == 12 and old.pending == [] and old.config == replace(TINY, log_every=50)


# -- never a non-finite state on disk --------------------------------------------------------------------


def test_save_refuses_a_non_finite_state(good, tmp_path):
    ckpt = load_checkpoint(good)
    path = copy_of(good, tmp_path)
    before = path.read_bytes()
    ckpt.optimizer["state"][0]["exp_avg_sq"][0, 0] = math.nan
    with pytest.raises(
        NonFiniteState,
        match=r"refusing to write .*\['optimizer'\]\['state'\]\[0\]\['exp_avg_sq'\] "
        "holds NaN or infinity",
    ):
        save_checkpoint(path, ckpt)
    assert path.read_bytes() == before and temporaries(tmp_path) == []


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """The learning rate turns infinite from step 10 on: step 11's loss is NaN; training stops naming
    that step and never writes the NaN state — the checkpoint of step 8 is the one on disk, unchanged."""
    path = tmp_path / "c.pt"
    train(replace(TINY, steps=8), path, show_progress=False)
    before = path.read_bytes()
    real = ddpm.train.learning_rate
    monkeypatch.setattr(ddpm.train, "learning_rate", lambda config, step: math.inf if step >= 9 else real(config, step))
    with pytest.raises(
        TrainingDiverged,
        match=re.escape(
            "training diverged at step 11: the loss is nan; nothing since "
            f"was written and the last good checkpoint {str(path)!r} "
            "(step 8) is intact"
        ),
    ):
        train(TINY, path, show_progress=False)
    assert path.read_bytes() == before and temporaries(tmp_path) == []


def test_a_diverging_run_from_scratch_writes_nothing(tmp_path):
    """lr = 1e30 (inf is refused by the configuration itself): NaN from step 2, no file at all."""
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got inf"):
        replace(TINY, lr=math.inf)
    with pytest.raises(TrainingDiverged, match="training diverged at step 2: .* no checkpoint was written"):
        train(replace(TINY, lr=1e30), tmp_path / "c.pt", show_progress=False)
    assert list(tmp_path.iterdir()) == []


# -- writes that fail: an I/O error, a full disk, a kill ----------------------------------------------


def test_a_failed_write_leaves_the_previous_checkpoint(good, tmp_path, monkeypatch):
    """A write that fails midway leaves the previous checkpoint intact, no temporary file, and says so."""
    path = copy_of(good, tmp_path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ddpm.train.os, "fsync", broken_fsync)
    with pytest.raises(
        CheckpointWriteError,
        match=re.escape(
            f"could not write the checkpoint {str(path)!r} "
            f"(Input/output error); the previous checkpoint "
            f"{str(path)!r} is intact"
        ),
    ):
        save_checkpoint(path, load_checkpoint(good))
    assert path.read_bytes() == before and temporaries(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs at tmp_path/disk, unmounted afterwards (needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill it needs root; CI runs as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(folder: Path) -> None:
    """Write a file until the file system of ``folder`` has no room left."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_disk_full_says_so_and_keeps_the_checkpoint(small_disk):
    """A full disk stops training with a sentence naming the folder, and the checkpoint of step 8 stays."""
    path = small_disk / "run" / "checkpoint.pt"
    train(replace(TINY, steps=8), path, show_progress=False)
    before = path.read_bytes()
    fill(small_disk)
    with pytest.raises(
        CheckpointWriteError,
        match=re.escape(f"the disk is full: no room in {str(path.parent)!r} for the ")
        + r"\d+-byte checkpoint checkpoint.pt \(\d+ bytes "
        r"free\); the previous checkpoint .* is intact",
    ):
        train(TINY, path, show_progress=False)
    assert path.read_bytes() == before and temporaries(path.parent) == []
    (small_disk / "filler").unlink()
    assert load_checkpoint(path).step == 8


def test_the_command_says_the_disk_is_full(small_disk, capsys):
    from ddpm.cli import main

    args = [
        "train",
        "--data",
        "tg",
        "--T",
        "50",
        "--steps",
        "8",
        "--width",
        "16",
        "--depth",
        "2",
        "--batch-size",
        "32",
        "--checkpoint-every",
        "4",
        "--samples",
        "8",
        "--device",
        "cpu",
        "--out",
        str(small_disk / "run"),
    ]
    assert main(args) == 0
    path = small_disk / "run" / "checkpoint.pt"
    before = path.read_bytes()
    capsys.readouterr()
    fill(small_disk)
    assert main(args[:6] + ["12"] + args[7:]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("training fc on tg for 12 steps"), err  # the note, then one error
    assert err[1].startswith(f"ddpm train: error: the disk is full: no room in {str(path.parent)!r}") and err[
        1
    ].endswith(f"the previous checkpoint {str(path)!r} is intact"), err
    assert path.read_bytes() == before
    samples = small_disk / "samples.pt"  # results, too, are one line when the disk is full
    assert main(["sample", str(path), "-n", "300", "--out", str(samples.with_suffix(".png")), "--device", "cpu"]) == 1
    assert capsys.readouterr().err == f"ddpm sample: error: the disk is full: could not write {str(samples)!r}\n"


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from dataclasses import replace
    import ddpm.train
    from ddpm.train import TrainConfig, train
    config = TrainConfig(**eval(sys.argv[2]))
    train(replace(config, steps=8), sys.argv[1], show_progress=False)
    def stalled_fsync(fd):  # the checkpoint of step 12 is in its temporary file: be killed here
        print("writing", flush=True)
        time.sleep(600)
    ddpm.train.os.fsync = stalled_fsync
    train(config, sys.argv[1], show_progress=False)
""")


def test_kill_9_during_a_write(tmp_path):
    """SIGKILL while the checkpoint of step 12 is being written: the file on disk is still step 8's and
    loads; the dead write's temporary file is removed when training starts again, which ends as a run
    never killed."""
    path = tmp_path / "checkpoint.pt"
    config = replace(TINY, warmdown=0.0)  # constant lr: 8 steps then 4 more are the 12 steps of one run
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), repr(asdict(config))],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        assert child.stdout.readline() == "writing\n", child.stderr.read()
        child.kill()
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    stale = temporaries(tmp_path)
    assert len(stale) == 1 and re.fullmatch(r"\.checkpoint\.pt\.\w{8}\.tmp", stale[0])
    assert load_checkpoint(path).step == 8
    (tmp_path / ".checkpoint.pt.notes.tmp").write_text("not ours")  # not a name save_checkpoint makes: kept
    resumed = train(config, path, show_progress=False)
    assert temporaries(tmp_path) == [".checkpoint.pt.notes.tmp"]
    assert_same_run(resumed, train(config, tmp_path / "whole.pt", show_progress=False))


KILLED_LOOP = textwrap.dedent("""
    import sys
    import torch
    from ddpm.train import TrainConfig, build_model, save_checkpoint, Checkpoint
    config = TrainConfig(**eval(sys.argv[2]))
    model = build_model(config).state_dict()
    g = torch.Generator().manual_seed(0).get_state()
    step = 0
    while True:  # checkpoints of 1.6 MB, one after another, until killed
        step += 1
        save_checkpoint(sys.argv[1], Checkpoint(config, step, model, model, {"state": {}, "param_groups": []}, g, []))
        if step == 1:
            print("saved", flush=True)
""")


def test_kill_9_at_random_moments_of_writing(tmp_path):
    """SIGKILL at three random moments of a loop of checkpoint writes: every time, the file on disk loads."""
    config = replace(TINY, net_config=dict(input_dim=2, num_hidden=200, num_layers=6))
    path = tmp_path / "checkpoint.pt"
    rng = torch.Generator().manual_seed(0)
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_LOOP, str(path), repr(asdict(config))],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stderr is not None
        try:
            assert child.stdout.readline() == "saved\n", child.stderr.read()
            time.sleep(float(torch.rand((), generator=rng)) * 0.2)
            child.kill()
        finally:
            child.wait(timeout=60)
        assert load_checkpoint(path).step >= 1
    ddpm.train.remove_stale_temporaries(path)
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(steps=0), "steps must be >= 1, got 0"),
        (dict(lr=-1.0), "lr must be a finite number > 0"),
        (dict(lr=math.nan), "lr must be a finite number > 0"),
        (dict(ema_decay=1.0), "ema_decay must lie in"),
        (dict(schedule="quadratic"), "schedule must be 'linear' or 'cosine'"),
        (dict(warmdown=2.0), "warmdown must lie in"),
        (dict(log_every=0), "log_every must be >= 1, got 0"),
    ],
)
def test_bad_configuration(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change)
