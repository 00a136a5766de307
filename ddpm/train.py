"""Training by Algorithm 1 of Ho et al. (2020): checkpoints, resume, EMA, progress [Ho20 alg. 1].

Every random draw of a run — the data batch, t and eps — comes from one generator seeded by the run's
seed and saved in each checkpoint, so a run interrupted and resumed gives the same weights as one
that was never stopped (on CPU; CUDA kernels may differ in the last bits).

A checkpoint is written whole to a temporary file and renamed over the last one, never with NaN or
infinity in it, and holds a SHA-256 of its state: loading tells a good checkpoint from a corrupt one
(:class:`CorruptCheckpoint`) and from a file that is not a ddpm checkpoint (:class:`ForeignCheckpoint`).

A data set of the sigma world (``ddpm.sigma.run.SIGMA_DATA``, the 6.S183 Swissroll) trains the same loop with
the loss ||eps_theta(x_0 + sigma eps, sigma) - eps||^2, sigma one of the run's T log-linear levels per
example, and AdamW, as the 6.S183 notebook does [6.S183 Q2].

Under ``torchrun`` the same loop runs data-parallel (gloo on CPU, NCCL on CUDA): every process draws
the whole global batch from the same generator and trains on its own slice, so the averaged gradient
is the single-process gradient of the same global batch.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import glob
import hashlib
import io
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ddpm.atomic import write_atomically
from ddpm.beta.losses import l_simple
from ddpm.beta.schedule import Schedule, cosine_schedule, linear_schedule
from ddpm.sigma.train import adamw, sigma_train_step

__all__ = [
    "TrainConfig",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "check_checkpoint",
    "resumable_checkpoint",
    "remove_stale_temporaries",
    "state_checksum",
    "build_schedule",
    "build_model",
    "batch_source",
    "train",
    "train_step",
    "adam",
    "ema_decay",
    "update_ema",
    "restore_model",
    "progress_bar",
    "CheckpointError",
    "CorruptCheckpoint",
    "ForeignCheckpoint",
    "CheckpointWriteError",
    "NonFiniteState",
    "TrainingDiverged",
]

CHECKPOINT_FORMAT = "ddpm-checkpoint/2"  # 2: a SHA-256 of the state, and the losses of the open log interval
READABLE_FORMATS = ("ddpm-checkpoint/1", CHECKPOINT_FORMAT)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in each checkpoint as a plain dict."""

    data: str = "cb"
    network: str = "fc"
    net_config: dict[str, Any] = field(default_factory=dict)
    schedule: str = "linear"
    T: int = 1000
    beta_1: float = 1e-4
    beta_T: float = 0.02
    steps: int = 4000
    batch_size: int = 2048
    lr: float = 1e-3
    warmdown: float = 0.2
    ema_decay: float | None = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    mnist_root: str | None = None
    log_every: int = 50  # steps per logged loss (a point of the loss curve)
    sigma_min: float = 0.005  # the sigma world's levels (data in ddpm.sigma.run.SIGMA_DATA): T of them, log-linear
    sigma_max: float = 10.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "T", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= self.warmdown <= 1:
            raise ValueError(f"warmdown must lie in [0, 1], got {self.warmdown!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {self.ema_decay!r}")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if not 0 < self.sigma_min < self.sigma_max < math.inf:
            raise ValueError(
                f"the sigma levels need 0 < sigma_min < sigma_max, got {self.sigma_min!r}, {self.sigma_max!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**values)


def build_schedule(config: TrainConfig) -> Schedule:
    """The run's noise schedule [Ho20 §4; ND21]."""
    if config.schedule == "cosine":
        return cosine_schedule(config.T)
    return linear_schedule(config.T, config.beta_1, config.beta_T)


def build_model(config: TrainConfig) -> nn.Module:
    """eps_theta for the run.

    Its initial weights drawn from the run's seed (the global RNG is left alone).
    """
    from ddpm.nets import build_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_network(config.network, **network_arguments(config))


def network_arguments(config: TrainConfig) -> dict[str, Any]:
    """The network's keyword arguments.

    Its ``net_config``, and T unless it is a sigma-world net (it takes sigma).
    """
    from ddpm.sigma.run import is_sigma_world

    return dict(config.net_config) if is_sigma_world(config.data) else {"T": config.T, **config.net_config}


# -- checkpoints -------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A file that cannot serve as a ddpm checkpoint; the message says which file and why."""


class CorruptCheckpoint(CheckpointError):
    """A ddpm checkpoint whose contents were damaged: truncated, bytes changed, entries missing."""


class ForeignCheckpoint(CheckpointError):
    """A file that is not a ddpm checkpoint at all: another program's, or not a torch file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); the previous one is untouched."""

    def __str__(self) -> str:
        return str(self.strerror)


class NonFiniteState(ValueError):
    """A state holding NaN or infinity, which a checkpoint never stores; ``where`` names the tensor."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or state; nothing of it was written."""


@dataclass
class Checkpoint:
    """A run's state after ``step`` steps.

    ``losses`` holds the mean loss of each logged interval of ``config.log_every`` steps, and of the
    final shorter one; ``pending`` the losses of the ``step % log_every`` steps since the last full
    interval, so that a resumed run logs exactly the history of one never stopped.
    """

    config: TrainConfig
    step: int
    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    optimizer: dict[str, Any]
    generator: Tensor
    losses: list[float]
    pending: list[float] = field(default_factory=list)


def state_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over every entry of a checkpoint's payload but ``checksum``, in a fixed order.

    Each tensor contributes its key path, dtype, shape and the bytes of its elements (so the digest
    does not depend on how torch lays out storages in the file); every other value its type and repr.
    """
    digest = hashlib.sha256()

    def feed(key: str, value: Any) -> None:
        if isinstance(value, Tensor):
            t = value.detach().to("cpu").contiguous()
            digest.update(f"{key}\0tensor\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            # an ndarray is a buffer, but numpy's stubs declare __buffer__ only for Python >= 3.12
            digest.update(t.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
        elif isinstance(value, dict):
            digest.update(f"{key}\0dict\0{len(value)}\0".encode())
            for k in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
                feed(f"{key}/{k!r}", value[k])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{key}\0{type(value).__name__}\0{len(value)}\0".encode())
            for i, v in enumerate(value):
                feed(f"{key}[{i}]", v)
        else:
            digest.update(f"{key}\0{type(value).__name__}\0{value!r}\0".encode())

    for key in sorted(k for k in payload if k != "checksum"):
        feed(key, payload[key])
    return digest.hexdigest()


def first_nonfinite(state: Any, name: str = "") -> str | None:
    """The key path of the first floating-point tensor in ``state`` holding NaN or infinity, else None."""
    if isinstance(state, Tensor):
        return name if state.is_floating_point() and not bool(torch.isfinite(state).all()) else None
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    for k, v in items:
        found = first_nonfinite(v, f"{name}[{k!r}]")
        if found is not None:
            return found
    return None


def _payload(ckpt: Checkpoint) -> dict[str, Any]:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(ckpt.config),
        "step": ckpt.step,
        "model": ckpt.model,
        "ema": ckpt.ema,
        "optimizer": ckpt.optimizer,
        "generator": ckpt.generator,
        "losses": [float(v) for v in ckpt.losses],
        "pending": [float(v) for v in ckpt.pending],
    }
    payload["checksum"] = state_checksum(payload)
    return payload


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically, with the SHA-256 of its state, readable as any file the user writes.

    The file is written whole to a temporary file beside ``path`` (``.NAME.XXXXXXXX.tmp``), synced,
    then renamed over ``path``: a crash, a kill or a full disk at any moment leaves the previous
    checkpoint intact. A state holding NaN or infinity is refused (:class:`NonFiniteState`) and a
    failed write is a :class:`CheckpointWriteError` that says where and why.
    """
    path = Path(path)
    bad = first_nonfinite({"model": ckpt.model, "ema": ckpt.ema, "optimizer": ckpt.optimizer})
    if bad is not None:
        raise NonFiniteState(f"refusing to write {str(path)!r}: {bad} holds NaN or infinity", bad)
    buffer = io.BytesIO()
    torch.save(_payload(ckpt), buffer)
    data = buffer.getbuffer()
    previous = (
        f"the previous checkpoint {str(path)!r} is intact"
        if path.exists()
        else "no checkpoint had been written there before"
    )
    try:
        write_atomically(path, data)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else 0
            raise CheckpointWriteError(
                e.errno,
                f"the disk is full: no room in {str(path.parent)!r} for the {len(data)}-byte checkpoint "
                f"{path.name} ({free} bytes free); {previous}",
            ) from None
        raise CheckpointWriteError(
            e.errno, f"could not write the checkpoint {str(path)!r} ({e.strerror or e}); {previous}"
        ) from None


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes of checkpoint ``path`` killed midway left beside it.

    Only names :func:`ddpm.atomic.write_atomically` creates (``.NAME.XXXXXXXX.tmp``) are touched; returns them.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [
        p
        for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
        if re.fullmatch(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp", p.name) and p.is_file()
    ]
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def _classify_unreadable(path: Path, error: Exception) -> CheckpointError:
    """Why torch could not load ``path``.

    A damaged ddpm checkpoint (its header names the format) or another file.
    """
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # data.pkl, the first entry of torch's zip, holds the format string
    if head.startswith(b"PK\x03\x04") and b"ddpm-checkpoint/" in head:
        return CorruptCheckpoint(f"{str(path)!r} is a corrupt ddpm checkpoint: torch cannot read it ({reason})")
    if head.startswith(b"PK\x03\x04") and b"data.pkl" in head:
        return ForeignCheckpoint(
            f"{str(path)!r} is not a ddpm checkpoint (foreign): a torch file of "
            f"something else, or one damaged beyond recognition ({reason})"
        )
    return ForeignCheckpoint(f"{str(path)!r} is not a ddpm checkpoint (foreign): not a file torch.save writes")


_ENTRIES = ("config", "step", "model", "ema", "optimizer", "generator", "losses")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    It is read with ``torch.load(weights_only=True)``.

    A missing file is a ``FileNotFoundError``. A file that is not a ddpm checkpoint is a
    :class:`ForeignCheckpoint`; a ddpm checkpoint whose bytes changed since it was written (its
    SHA-256 no longer matches, an entry is missing, the file is truncated) a :class:`CorruptCheckpoint`;
    one whose weights do not fit its configuration, or that holds NaN or infinity, a
    :class:`CheckpointError`. Checkpoints of format 1 (before checksums) load unverified.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file: unpickling, zip, EOF, ...
        raise _classify_unreadable(path, e) from None
    name = str(path)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("ddpm-checkpoint/"):
        found = f"format {fmt!r}" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise ForeignCheckpoint(
            f"{name!r} is not a ddpm checkpoint (foreign): expected format {CHECKPOINT_FORMAT!r}, found {found}"
        )
    if fmt not in READABLE_FORMATS:
        raise ForeignCheckpoint(
            f"{name!r} has format {fmt!r}, from another version of ddpm; this one reads {', '.join(READABLE_FORMATS)}"
        )
    verified = fmt != "ddpm-checkpoint/1"
    missing = [k for k in _ENTRIES + (("pending", "checksum") if verified else ()) if k not in payload]
    if missing:
        raise CorruptCheckpoint(
            f"{name!r} is a corrupt ddpm checkpoint: it lacks the entr"
            f"{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))}"
        )
    if verified and payload["checksum"] != state_checksum(payload):
        raise CorruptCheckpoint(
            f"{name!r} is a corrupt ddpm checkpoint: its contents changed after it was "
            "written (their SHA-256 differs from the one stored beside them)"
        )
    try:
        config = TrainConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name!r} holds an invalid configuration: {e}") from None
    ckpt = Checkpoint(
        config=config,
        step=payload["step"],
        model=payload["model"],
        ema=payload["ema"],
        optimizer=payload["optimizer"],
        generator=payload["generator"],
        losses=list(payload["losses"]),
        pending=list(payload.get("pending", [])),
    )
    check_checkpoint(ckpt, name)
    if torch.device(map_location).type != "cpu":
        ckpt.model, ckpt.ema, ckpt.optimizer = (_to(v, map_location) for v in (ckpt.model, ckpt.ema, ckpt.optimizer))
    return ckpt


def _to(value: Any, device: str | torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def check_checkpoint(ckpt: Checkpoint, name: str = "the checkpoint") -> None:
    """Refuse a checkpoint whose weights do not fit its configuration, or that holds NaN or infinity.

    The network the configuration describes is built on the meta device (no memory, no time) and its
    parameter names and shapes compared with those of the stored weights and of their EMA.
    """
    config = ckpt.config
    if (ckpt.ema is None) != (config.ema_decay is None):
        has = "no EMA weights" if ckpt.ema is None else "EMA weights"
        raise CheckpointError(f"{name!r} holds {has}, but its configuration says ema_decay = {config.ema_decay}")
    with torch.device("meta"):
        from ddpm.nets import build_network

        expected = {
            k: tuple(v.shape)
            for k, v in build_network(config.network, **network_arguments(config)).state_dict().items()
        }
    described = f"{config.network} {config.net_config}"
    for entry, weights in (("model", ckpt.model), ("ema", ckpt.ema)):
        if weights is None:
            continue
        if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
            raise CheckpointError(f"{name!r}: its {entry!r} entry is not a dict of tensors")
        if weights.keys() != expected.keys():
            odd = sorted(weights.keys() ^ expected.keys())
            raise CheckpointError(
                f"{name!r}: its {entry!r} weights do not fit its configuration ({described}): "
                f"parameters {', '.join(odd[:4])}{' ...' if len(odd) > 4 else ''} "
                "are in one but not the other"
            )
        for k, shape in expected.items():
            if tuple(weights[k].shape) != shape:
                raise CheckpointError(
                    f"{name!r}: its {entry!r} weights do not fit its configuration ({described}): "
                    f"{k} has shape {tuple(weights[k].shape)}, the configuration makes {shape}"
                )
    bad = first_nonfinite({"model": ckpt.model, "ema": ckpt.ema, "optimizer": ckpt.optimizer})
    if bad is not None:
        raise CheckpointError(f"{name!r} holds NaN or infinity in {bad}")


# -- data --------------------------------------------------------------------------------------------


def batch_source(config: TrainConfig, device: torch.device) -> Callable[[int, torch.Generator], Tensor]:
    """``draw(step, generator)``: the global batch x_0 of a step, on ``device``.

    Toy sets are sampled afresh each step. MNIST is read in epochs, each a permutation seeded by
    (seed, epoch), and dequantised with noise from the run's generator [02460 ex. 3.5].
    """
    from ddpm.data import toy_dataset

    if config.data != "mnist":
        dataset = toy_dataset(config.data)
        return lambda step, generator: dataset.sample(config.batch_size, generator=generator).to(device)

    from ddpm.data.mnist import dequantise, load_mnist

    if config.mnist_root is None:
        raise ValueError("--data mnist needs --mnist-root, the folder holding the MNIST IDX files")
    images = load_mnist(config.mnist_root, "train")[0]
    per_epoch = len(images) // config.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(images)} training images")

    def draw(step: int, generator: torch.Generator) -> Tensor:
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
        batch = images[order[i * config.batch_size : (i + 1) * config.batch_size]]
        return dequantise(batch, generator=generator).to(device)

    return draw


# -- the loop ----------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resumable_checkpoint(config: TrainConfig, path: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint at ``path`` that a run of ``config`` resumes from, or None if there is none.

    Raises if the file cannot be used (corrupt, foreign) or holds a run of another configuration
    (only ``steps`` may differ, to train longer).
    """
    path = Path(path)
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    if ckpt.step > config.steps:
        raise ValueError(
            f"{str(path)!r} holds a run already at step {ckpt.step}, past the {config.steps} steps "
            "asked for; ask for more steps, name another checkpoint, or pass resume=False (--no-resume)"
        )
    if {**asdict(ckpt.config), "steps": 0} != {**asdict(config), "steps": 0}:
        theirs, ours = asdict(ckpt.config), asdict(config)
        differ = ", ".join(
            f"{k} {theirs[k]!r} there, {ours[k]!r} here" for k in ours if k != "steps" and theirs[k] != ours[k]
        )
        raise ValueError(
            f"{str(path)!r} holds a run with another configuration ({differ}); "
            "remove it, name another checkpoint, or pass resume=False (--no-resume)"
        )
    return ckpt


def progress_bar(total: int, desc: str, *, initial: int = 0, show: bool | None = None):
    """A ``tqdm.auto`` bar on standard error (a widget in Jupyter); ``show=None`` shows it only on a
    terminal or in a notebook, so logs and pipes stay clean."""
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    if show is None:
        show = terminal or "ipykernel" in sys.modules
    width = {}
    if terminal and _columns(sys.stderr) == 0:
        width = {"ncols": 80, "nrows": 24}  # a terminal that reports no size (a bare pty): tqdm would draw nothing
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=not width,
        unit="step",
        mininterval=0.2,
        **width,
    )


def _columns(stream) -> int:
    """The width of the terminal ``stream`` writes to, 0 if it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def train(
    config: TrainConfig,
    checkpoint_path: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    resume: bool = True,
    show_progress: bool | None = None,
) -> Checkpoint:
    """Run Algorithm 1 [Ho20 alg. 1] until ``config.steps``.

    Checkpointing every ``config.checkpoint_every``.

    With ``resume`` and an existing checkpoint whose configuration matches (``steps`` may differ, to
    train longer), training goes on from it, and ends with the weights and the loss history of a run
    never stopped. Temporary files that killed writes left beside the checkpoint are removed first.
    Returns the final state (also written to ``checkpoint_path``); a stop request (Ctrl-C, SIGTERM)
    writes a checkpoint after the step in progress and raises ``KeyboardInterrupt``. A non-finite
    loss or state stops training with :class:`TrainingDiverged`, naming the step, before anything of
    it is written: the last checkpoint stays the last good one. ``show_progress``: a progress bar
    with the running loss (None: on a terminal or in a notebook only).
    """
    device = torch.device(device)
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    path = Path(checkpoint_path)
    ckpt = resumable_checkpoint(config, path) if resume else None
    schedule = build_schedule(config).to(device)
    model = build_model(config).to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay is not None else None
    levels = _sigma_levels(config, device)  # the sigma world [6.S183 Q2]: AdamW, one level per example
    optimizer = (adam if levels is None else adamw)(model.parameters(), config.lr, device)
    fast_layout = device.type == "cuda" and config.network == "unet"  # channels_last and bf16 autocast
    if fast_layout:
        # Module.to takes memory_format at run time; torch's overloads for it leave the keyword out
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    generator = torch.Generator(device).manual_seed(config.seed)
    step, losses, pending = 0, [], []
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
        if ema is not None:
            assert ckpt.ema is not None  # a run of the same configuration, so it kept an EMA
            ema.load_state_dict(ckpt.ema)
        optimizer.load_state_dict(ckpt.optimizer)
        generator.set_state(ckpt.generator.cpu())
        step, losses, pending = ckpt.step, list(ckpt.losses), list(ckpt.pending)
        if step < config.steps and len(losses) > step // config.log_every and len(pending) == step % config.log_every:
            losses.pop()  # the shorter last interval of a finished run: the longer run logs it whole
    if rank == 0:
        remove_stale_temporaries(path)
    saved = ckpt.step if ckpt is not None else None  # the step of the last good checkpoint on disk

    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    draw = batch_source(config, device)
    rows = slice(rank * config.batch_size // world, (rank + 1) * config.batch_size // world)
    # The losses of the open log interval, on the device (no host sync per step); window[:reduced]
    # already holds means over the processes (after a checkpoint within the interval).
    window = torch.zeros(config.log_every, device=device)
    window[: len(pending)] = torch.tensor(pending, dtype=window.dtype)
    count = reduced = len(pending)

    def reduce_window() -> None:
        nonlocal reduced
        if world > 1 and count > reduced:
            dist.all_reduce(window[reduced:count])
            window[reduced:count] /= world
        reduced = count

    def kept() -> str:
        return (
            f"the last good checkpoint {str(path)!r} (step {saved}) is intact"
            if saved is not None
            else "no checkpoint was written"
        )

    def check_losses() -> None:
        """Stop at the first non-finite loss of the open interval, naming its step (one host sync)."""
        finite = torch.isfinite(window[:count])
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"training diverged at step {step - count + i + 1}: the loss is "
                f"{float(window[i])}; nothing since was written and {kept()}; "
                "try a lower learning rate (--lr)"
            )

    def checkpoint() -> None:
        nonlocal saved
        reduce_window()
        check_losses()
        if rank != 0:
            return
        state = Checkpoint(
            config,
            step,
            model.state_dict(),
            ema.state_dict() if ema is not None else None,
            optimizer.state_dict(),
            generator.get_state(),
            list(losses),
            window[:count].tolist(),
        )
        try:
            save_checkpoint(path, state)
        except NonFiniteState as e:
            raise TrainingDiverged(
                f"training diverged by step {step}: {e.where} holds NaN or infinity; "
                f"nothing was written and {kept()}; "
                "try a lower learning rate (--lr)"
            ) from None
        saved = step

    model.train()
    bar = progress_bar(config.steps, "train", initial=step, show=show_progress if rank == 0 else False)
    with bar, _stop_requests() as stop:
        while step < config.steps:
            x0 = draw(step, generator)  # line 2: x_0 ~ q(x_0)
            t = torch.randint(1, config.T + 1, (config.batch_size,), generator=generator, device=device)  # line 3
            eps = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)  # line 4
            x0, t, eps = x0[rows], t[rows], eps[rows]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            if levels is None:
                loss = train_step(net, schedule, optimizer, x0, t, eps, autocast=fast_layout)  # line 5
            else:  # sigma_{t-1} of the N = T levels, uniformly [6.S183 Q2]
                loss = sigma_train_step(net, optimizer, x0, levels[t - 1].to(x0.dtype), eps)
            if ema is not None:
                update_ema(ema, model, ema_decay(config, step))
            window[count] = loss
            step += 1
            count += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                reduce_window()  # log the global batch's loss, not this process's slice
                mean = float(window[:count].sum()) / count  # the loop's one host sync, every log_every steps
                if not math.isfinite(mean):
                    check_losses()
                losses.append(mean)
                bar.set_postfix(loss=f"{mean:.4g}", refresh=False)
                if step % config.log_every == 0:
                    count = reduced = 0
            if step % config.checkpoint_every == 0 or step == config.steps or stop:
                checkpoint()
            if stop:
                raise KeyboardInterrupt(f"stopped at step {step}; the checkpoint {str(path)!r} resumes it")
    return Checkpoint(
        config,
        step,
        model.state_dict(),
        ema.state_dict() if ema is not None else None,
        optimizer.state_dict(),
        generator.get_state(),
        list(losses),
        window[:count].tolist(),
    )


def _sigma_levels(config: TrainConfig, device: torch.device) -> Tensor | None:
    """The T log-linear levels of a sigma-world run [6.S183 Q2]; None for the beta world."""
    from ddpm.sigma.run import is_sigma_world
    from ddpm.sigma.schedule import log_linear_sigmas

    if not is_sigma_world(config.data):
        return None
    return log_linear_sigmas(config.T, config.sigma_min, config.sigma_max).to(device)


def train_step(
    net: nn.Module,
    schedule: Schedule,
    optimizer: torch.optim.Optimizer,
    x0: Tensor,
    t: Tensor,
    eps: Tensor,
    *,
    autocast: bool = False,
) -> Tensor:
    """One gradient step on L_simple per coordinate [Ho20 alg. 1 line 5, eq. 14].

    Returns the loss, detached.

    Forward, loss, backward and ``optimizer.step()``, with no host sync. ``autocast`` runs the
    network under bfloat16 autocast (for the U-Net on CUDA); the loss is still summed in float32.
    """
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = l_simple(net, schedule, x0, t, eps).mean() / x0[0].numel()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def ema_decay(config: TrainConfig, step: int) -> float:
    """The EMA's decay after step ``step`` (0-based): min(ema_decay, (1 + step) / (10 + step)).

    The warm-up keeps a short run's average from being dominated by its initial weights; like the
    learning rate it is a function of the step alone, so a resumed run follows it exactly.
    """
    assert config.ema_decay is not None  # asked only of runs that keep an EMA
    return min(config.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay ema + (1 - decay) model for every parameter; buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based): constant, then linearly down to 0 over the last
    ``warmdown`` fraction of the run. A function of the step alone, so a resumed run follows it exactly."""
    remaining = config.steps - step
    return config.lr * min(1.0, remaining / (config.warmdown * config.steps)) if config.warmdown else config.lr


def adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with its fused kernel on CUDA and CPU (a third of the foreach path's time on CPU).

    Foreach elsewhere.
    """
    fast: dict[str, Any] = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, **fast)


@contextlib.contextmanager
def _stop_requests():
    """Ctrl-C or SIGTERM asks the loop to stop after the step in progress (a checkpoint is written then);
    a second one stops at once. Yields the list of requests, empty until one arrives."""
    requested: list[int] = []

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield requested
        return
    try:
        yield requested
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def restore_model(ckpt: Checkpoint, *, use_ema: bool = True, device: torch.device | str = "cpu") -> nn.Module:
    """The trained eps_theta of a checkpoint (its EMA weights when it has them and ``use_ema``).

    In eval mode.
    """
    model = build_model(ckpt.config)
    model.load_state_dict(ckpt.ema if use_ema and ckpt.ema is not None else ckpt.model)
    return model.to(device).eval()
