"""Training by Algorithm 1 of Ho et al. (2020): checkpoints, resume, EMA, progress [Ho20 alg. 1].

Every random draw of a run — the data batch, t and eps — comes from one generator seeded by the run's
seed and saved in each checkpoint, so a run interrupted and resumed gives the same weights as one
that was never stopped (on CPU; CUDA kernels may differ in the last bits).

Under ``torchrun`` the same loop runs data-parallel (gloo on CPU, NCCL on CUDA): every process draws
the whole global batch from the same generator and trains on its own slice, so the averaged gradient
is the single-process gradient of the same global batch.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ddpm.losses import l_simple
from ddpm.progress import Progress
from ddpm.schedule import Schedule, cosine_schedule, linear_schedule

__all__ = [
    "TrainConfig", "Checkpoint", "save_checkpoint", "load_checkpoint", "build_schedule", "build_model",
    "batch_source", "train", "train_step", "adam", "ema_decay", "update_ema", "restore_model",
]

CHECKPOINT_FORMAT = "ddpm-checkpoint/1"


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

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "T"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.warmdown <= 1:
            raise ValueError(f"warmdown must lie in [0, 1], got {self.warmdown!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {self.ema_decay!r}")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")

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
    """eps_theta for the run, its initial weights drawn from the run's seed (the global RNG is left alone)."""
    from ddpm.nets import build_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_network(config.network, T=config.T, **config.net_config)


# -- checkpoints -------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A run's state after ``step`` steps; ``losses`` holds the mean loss of each logged interval."""

    config: TrainConfig
    step: int
    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    optimizer: dict[str, Any]
    generator: Tensor
    losses: list[float]


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically: to a temporary file beside ``path``, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT, "config": asdict(ckpt.config), "step": ckpt.step, "model": ckpt.model,
        "ema": ckpt.ema, "optimizer": ckpt.optimizer, "generator": ckpt.generator, "losses": ckpt.losses,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    A missing file is a ``FileNotFoundError``; a file that is not a ddpm checkpoint (corrupt,
    truncated, or another program's) is a ``ValueError`` that says so.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a bad file: unpickling, zip, EOF, ...
        raise ValueError(f"{str(path)!r} is not a readable ddpm checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{str(path)!r} is not a ddpm checkpoint: expected format {CHECKPOINT_FORMAT!r}, found {found!r}")
    return Checkpoint(
        config=TrainConfig.from_dict(payload["config"]), step=payload["step"], model=payload["model"],
        ema=payload["ema"], optimizer=payload["optimizer"], generator=payload["generator"],
        losses=list(payload["losses"]),
    )


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
        batch = images[order[i * config.batch_size:(i + 1) * config.batch_size]]
        return dequantise(batch, generator=generator).to(device)

    return draw


# -- the loop ----------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(
    config: TrainConfig,
    checkpoint_path: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    resume: bool = True,
    log_every: int = 50,
    show_progress: bool = True,
) -> Checkpoint:
    """Run Algorithm 1 [Ho20 alg. 1] until ``config.steps``, checkpointing every ``config.checkpoint_every``.

    With ``resume`` and an existing checkpoint whose configuration matches (``steps`` may differ, to
    train longer), training goes on from it.
    Returns the final state (also written to ``checkpoint_path``); a stop request (Ctrl-C, SIGTERM)
    writes a checkpoint after the step in progress and raises ``KeyboardInterrupt``.
    """
    device = torch.device(device)
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    schedule = build_schedule(config).to(device)
    model = build_model(config).to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay is not None else None
    optimizer = adam(model.parameters(), config.lr, device)
    fast_layout = device.type == "cuda" and config.network == "unet"  # channels_last and bf16 autocast
    if fast_layout:
        model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device).manual_seed(config.seed)
    step, losses = 0, []

    path = Path(checkpoint_path)
    if resume and path.exists():
        ckpt = load_checkpoint(path, map_location=device)
        if {**asdict(ckpt.config), "steps": 0} != {**asdict(config), "steps": 0}:
            raise ValueError(f"{str(path)!r} holds a run with another configuration; "
                             "remove it, name another checkpoint, or pass resume=False (--no-resume)")
        model.load_state_dict(ckpt.model)
        if ema is not None:
            ema.load_state_dict(ckpt.ema)
        optimizer.load_state_dict(ckpt.optimizer)
        generator.set_state(ckpt.generator.cpu())
        step, losses = ckpt.step, ckpt.losses

    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    draw = batch_source(config, device)
    rows = slice(rank * config.batch_size // world, (rank + 1) * config.batch_size // world)

    def snapshot() -> Checkpoint:
        return Checkpoint(config, step, model.state_dict(), ema.state_dict() if ema is not None else None,
                          optimizer.state_dict(), generator.get_state(), list(losses))

    def checkpoint() -> None:
        if rank == 0:
            save_checkpoint(path, snapshot())

    model.train()
    running, count = torch.zeros((), device=device), 0
    bar = Progress(config.steps, "train", start=step, disable=not show_progress or rank != 0)
    with bar, _stop_requests() as stop:
        while step < config.steps:
            x0 = draw(step, generator)  # line 2: x_0 ~ q(x_0)
            t = torch.randint(1, config.T + 1, (config.batch_size,), generator=generator, device=device)  # line 3
            eps = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)  # line 4
            x0, t, eps = x0[rows], t[rows], eps[rows]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            loss = train_step(net, schedule, optimizer, x0, t, eps, autocast=fast_layout)  # line 5
            if ema is not None:
                update_ema(ema, model, ema_decay(config, step))
            step += 1
            running += loss
            count += 1
            if count == log_every or step == config.steps or stop:
                if world > 1:  # log the global batch's loss, not this process's slice
                    dist.all_reduce(running)
                    running /= world
                losses.append(float(running) / count)  # the loop's one host sync, every log_every steps
                running.zero_()
                bar.update(count, loss=losses[-1])
                count = 0
            if step % config.checkpoint_every == 0 or step == config.steps or stop:
                checkpoint()
            if stop:
                raise KeyboardInterrupt(f"stopped at step {step}; the checkpoint {str(path)!r} resumes it")
    return snapshot()


def train_step(net: nn.Module, schedule: Schedule, optimizer: torch.optim.Optimizer, x0: Tensor, t: Tensor,
               eps: Tensor, *, autocast: bool = False) -> Tensor:
    """One gradient step on L_simple per coordinate [Ho20 alg. 1 line 5, eq. 14]; returns the loss, detached.

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
    """Adam with its fused kernel on CUDA and CPU (a third of the foreach path's time on CPU), foreach elsewhere."""
    fast = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
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
    """The trained eps_theta of a checkpoint (its EMA weights when it has them and ``use_ema``), in eval mode."""
    model = build_model(ckpt.config)
    model.load_state_dict(ckpt.ema if use_ema and ckpt.ema is not None else ckpt.model)
    return model.to(device).eval()
