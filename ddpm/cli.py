"""The ``ddpm`` command line: train, sample, elbo, derive, verify, conform.

Every command checks all its values before any work and any output: a user's mistake is one line on
standard error that names the value and what was expected, and exit status 2. Each command has one
``check_*`` step (after argparse's per-value types) where the checks that involve several values or
files live, so that a new option adds its check there.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import torch

from ddpm.atomic import write_atomically
from ddpm.beta.schedule import SIGMA2_CHOICES
from ddpm.data import DATASETS, Chequerboard, TwoGaussians
from ddpm.hostmem import keep_freed_host_memory
from ddpm.sigma.run import SAMPLERS as SIGMA_SAMPLERS
from ddpm.sigma.run import is_sigma_world
from ddpm.train import CheckpointWriteError, TrainConfig, TrainingDiverged, load_checkpoint


class _PresetFields(TypedDict):
    network: str
    net_config: dict[str, Any]
    steps: int
    batch_size: int
    lr: float


class Preset(_PresetFields, total=False):
    """A data set's preset: TrainConfig's fields that the bare ``ddpm train --data NAME`` sets."""

    checkpoint_every: int  # TrainConfig's default where a preset leaves it out


# Per data set: the network and the run length that the bare `ddpm train --data NAME` uses.
PRESETS: dict[str, Preset] = {
    "tg": dict(
        network="fc",
        net_config=dict(num_hidden=128, num_layers=3, activation="silu"),
        steps=3000,
        batch_size=1024,
        lr=2e-3,
    ),
    "cb": dict(
        network="fc",
        net_config=dict(num_hidden=256, num_layers=4, activation="silu"),
        steps=6000,
        batch_size=2048,
        lr=2e-3,
    ),
    "mnist": dict(network="unet", net_config={}, steps=60_000, batch_size=128, lr=2e-4, checkpoint_every=1000),
    # the 6.S183 notebook's setup in the sigma world: its MLP, 200 log-linear levels, AdamW at 1e-3 [6.S183 Q2]
    "swissroll": dict(network="sigma_mlp", net_config=dict(input_dim=2), steps=20_000, batch_size=200, lr=1e-3),
}
IMAGE_DATA = ("mnist",)  # data sets of images, which the U-Net takes
QUALITY_N = 2000  # samples the quality report compares: its permutation test holds a (2n)^2 distance matrix


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_host_memory()  # the command owns its process: no page faults on each step's buffers
    prefix = f"ddpm {args.command}: error:"
    try:
        if getattr(args, "check", None) is not None:
            args.check(args)  # every value, before any work and any output
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:  # the user's input: a value, a file
        print(f"{prefix} {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, CheckpointWriteError) as e:
        print(f"{prefix} {e}", file=sys.stderr)
        return 1
    except torch.OutOfMemoryError:
        print(
            f"{prefix} out of memory on {getattr(args, 'device', 'the device')}; try a smaller "
            f"{'--batch-size' if args.command != 'sample' else '-n'}",
            file=sys.stderr,
        )
        return 1
    except OSError as e:  # a figure or a result that cannot be written: say which, no traceback
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "the disk is full" + (f": could not write {e.filename!r}" if e.filename else "")
        else:
            what = (e.strerror or str(e)) + (f": {e.filename!r}" if e.filename else "")
        print(f"{prefix} {what}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\nddpm {args.command}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130


class Parser(argparse.ArgumentParser):
    """argparse, with a user's mistake reported on one line: ``ddpm train: error: --steps must be ...``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = re.sub(r"^argument ([^:]+): (must\b|@)", lambda m: f"{m[1]} {m[2].strip('@')}", message)
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- values: argparse types that refuse a bad value with what was expected ------------------------------


def integer(minimum: int = 1, maximum: int | None = None):
    """An argparse type: an integer in [minimum, maximum]."""
    span = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    return parse


def number(low: float, high: float, *, closed_low: bool = False, closed_high: bool = False, note: str = ""):
    """An argparse type: a finite number in the interval from low to high (open unless ``closed_*``)."""
    left, right = "[" if closed_low else "(", "]" if closed_high else ")"
    span = f"a finite number > {low:g}" if high == math.inf and not closed_low else f"in {left}{low:g}, {high:g}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (low <= value if closed_low else low < value) and (value <= high if closed_high else value < high)
        if not (inside and math.isfinite(value)):
            verb = "be" if span.startswith("a ") else "lie"
            raise argparse.ArgumentTypeError(f"must {verb} {span}{note}, got {text}")
        return value

    return parse


def device(text: str) -> str:
    """An argparse type: a torch device that exists on this machine."""
    try:
        d = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a torch device such as cpu, cuda or cuda:1, got {text!r}") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise argparse.ArgumentTypeError(f"@{text}: CUDA is not available here ({why}); use --device cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"@{text}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif d.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"@{text}: Apple's MPS is not available here; use --device cpu")
    elif d.type != "cpu":
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or mps, got {text!r}")
    return text


SEED = integer(0, 2**32 - 1)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ddpm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a DDPM (Algorithm 1), then sample and plot it",
        description="Train a DDPM by Algorithm 1 [Ho20], then sample it and plot the samples and the "
        "loss. Interrupt at any time (Ctrl-C, SIGTERM): the same command resumes it.",
    )
    p.add_argument("--data", choices=DATASETS, default="cb", help="data set (default: %(default)s)")
    p.add_argument("--mnist-root", help="folder with the MNIST IDX files (for --data mnist)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/DATA)")
    p.add_argument("--steps", type=integer(1), help="training steps (default: the data set's preset)")
    p.add_argument("--batch-size", type=integer(1), help="samples per training step (default: the data set's preset)")
    p.add_argument(
        "--lr",
        type=number(0, math.inf),
        help="Adam's learning rate, linearly down to 0 over the last 20%% of steps (default: the data set's preset)",
    )
    p.add_argument(
        "--network",
        choices=("fc", "unet"),
        help="eps_theta: fc, fully connected (toy sets), or unet (images) (default: the data set's preset)",
    )
    p.add_argument("--width", type=integer(1), help="hidden width of the fc network (default: the preset's)")
    p.add_argument("--depth", type=integer(1), help="hidden layers of the fc network (default: the preset's)")
    p.add_argument(
        "--T",
        type=integer(1),
        help="diffusion steps (default: 1000); for --data swissroll the number of noise levels sigma (default: 200)",
    )
    p.add_argument("--sigma-min", type=number(0, math.inf), help="--data swissroll: the lowest level (default: 0.005)")
    p.add_argument("--sigma-max", type=number(0, math.inf), help="--data swissroll: the highest level (default: 10)")
    p.add_argument(
        "--schedule",
        choices=("linear", "cosine"),
        default="linear",
        help="noise schedule: linear from --beta-1 to --beta-T [Ho20 §4] or cosine [ND21] (default: %(default)s)",
    )
    p.add_argument("--beta-1", type=number(0, 1), help="beta_1 of the linear schedule (default: 1e-4)")
    p.add_argument("--beta-T", type=number(0, 1), help="beta_T of the linear schedule (default: 0.02)")
    p.add_argument(
        "--ema",
        type=number(0, 1, closed_low=True, note=" (0 for no EMA)"),
        default=0.999,
        help="decay of the EMA of the weights that sampling uses, 0 for none (default: %(default)s)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of the weights and of every draw (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=integer(1), help="steps between checkpoints (default: 500; MNIST 1000)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has a checkpoint")
    p.add_argument(
        "--samples", type=integer(1), default=2000, help="samples drawn after training (default: %(default)s)"
    )
    _add_common(p)
    p.set_defaults(check=check_train, run=cmd_train)

    p = sub.add_parser("sample", help="draw samples (Algorithm 2) from a checkpoint: a PNG and the raw tensor")
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt that ddpm train wrote")
    p.add_argument("-n", type=integer(1), default=2000, help="number of samples (default: %(default)s)")
    p.add_argument(
        "--out",
        type=Path,
        help="PNG path (default: samples.png beside the checkpoint); the raw samples "
        "go to .pt beside it, a toy set's quality report to _quality.json",
    )
    _add_sigma2(p)
    p.add_argument(
        "--sampler",
        choices=SIGMA_SAMPLERS,
        help="a sigma-world checkpoint's (--data swissroll) sampler: "
        "ddim, ddpm (mu = 1/2) or accel (gamma = 2) [PY23 App. A] (default: accel); a DDPM checkpoint "
        "is sampled by Algorithm 2",
    )
    p.add_argument(
        "--steps",
        dest="sample_steps",
        type=integer(1),
        help="with --sampler: the number of levels walked, by trailing spacing (default: 10)",
    )
    p.add_argument(
        "--gamma",
        type=number(-math.inf, math.inf),
        help="with --sampler: gamma of eps_bar = gamma eps + (1 - gamma) eps_prev (default: the sampler's, 1 or 2)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of the sampler's draws (default: %(default)s)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not their EMA")
    _add_common(p)
    p.set_defaults(check=check_sample, run=cmd_sample)

    p = sub.add_parser("elbo", help="the variational bound [Ho20 eq. 5] on held-out data, in bits/dim")
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt that ddpm train wrote")
    p.add_argument("-n", type=integer(1), default=1000, help="held-out points (default: %(default)s)")
    p.add_argument(
        "--batch-size",
        type=integer(1),
        default=500,
        help="points evaluated at once; lower it if memory runs out (default: %(default)s)",
    )
    _add_sigma2(p)
    p.add_argument("--mnist-root", help="folder with the MNIST IDX files (default: the training run's)")
    p.add_argument(
        "--seed",
        type=SEED,
        default=1,
        help="seed of the held-out draws and of the bound's noise (default: %(default)s)",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not their EMA")
    _add_common(p)
    p.set_defaults(check=check_elbo, run=cmd_elbo)

    p = sub.add_parser(
        "derive",
        help="print a derivation of the specs (no NAME: list them)",
        description="Print a derivation of the specs, step by step: unicode math for a terminal, "
        "LaTeX for a handout, Markdown for a notebook cell.",
        epilog=_claims_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="the claim (no NAME: list the claims; with --latex or --markdown, write every derivation)",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="a LaTeX article (amsmath) that pdflatex compiles")
    fmt.add_argument("--markdown", action="store_true", help="Markdown with $$ math, e.g. for a Jupyter cell")
    p.set_defaults(run=cmd_derive)

    p = sub.add_parser("verify", help="run the specs against a DDPM written to the 02460 template")
    from ddpm.verify import cli as verify_cli

    verify_cli.add_arguments(p)
    p.set_defaults(run=verify_cli.run)

    p = sub.add_parser("conform", help="hold a library's scheduler (diffusers' and others) to the specs")
    from ddpm.conform import cli as conform_cli

    conform_cli.add_arguments(p)
    p.set_defaults(run=conform_cli.run)
    return parser


def _add_sigma2(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sigma2",
        choices=SIGMA2_CHOICES,
        default="beta",
        help="reverse-process variance sigma_t^2: beta_t or beta_tilde_t [Ho20 §3.2] (default: %(default)s)",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device, default=default_device(), help="torch device (default: %(default)s)")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no messages on stderr (results still go to stdout, errors to stderr); "
        "the bar shows only on a terminal anyway",
    )


def _note(args: argparse.Namespace, message: str) -> None:
    """An informational line on stderr, unless --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr)


def _progress(args: argparse.Namespace) -> bool | None:
    """The progress bar's ``show``: never with --quiet, else on a terminal (or in a notebook) only."""
    return False if args.quiet else None


def _save_tensor(path: Path, x: torch.Tensor) -> None:
    """torch.save through memory, so that a full disk is an OSError naming the file.

    Not torch's RuntimeError.
    """
    buffer = io.BytesIO()
    torch.save(x, buffer)
    try:
        write_atomically(path, buffer.getbuffer())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def _check_output_file(option: str, path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"{option} must name a file, got the folder {str(path)!r}")


def _check_mnist_root(option: str, root: str, split: str) -> None:
    from ddpm.data.mnist import _find

    try:
        _find(Path(root), split)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{option}: {e}") from None


def _density_set(name: str) -> TwoGaussians | Chequerboard:
    """The 02460 toy set ``name``: a set with the exact log-density that quality and bits/dim need.

    The sigma world's Swissroll has no density; every command turns it away or routes it elsewhere
    before it gets here, so reaching here with it is a bug.
    """
    from ddpm.data import toy_dataset

    dataset = toy_dataset(name)
    if not isinstance(dataset, (TwoGaussians, Chequerboard)):
        raise RuntimeError(f"{name} has no closed-form log-density; only the 02460 toy sets tg and cb have one")
    return dataset


# -- train -------------------------------------------------------------------------------------------


def check_train(args: argparse.Namespace) -> None:
    """Every value of ``ddpm train`` together; sets ``args.config``, ``args.out`` and ``args.checkpoint``."""
    from ddpm.train import build_schedule, resumable_checkpoint

    args.config = config_from_args(args)
    build_schedule(args.config)  # whatever the schedule refuses beyond the checks above
    args.out = args.out or Path("runs") / args.data
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out must be a folder, got the file {str(args.out)!r}")
    args.checkpoint = args.out / "checkpoint.pt"
    if not args.no_resume:
        resumable_checkpoint(args.config, args.checkpoint)  # a corrupt one, or another run's, is refused now


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the data set's preset, with what the command line names put over it."""
    preset = PRESETS[args.data].copy()
    sigma_world = is_sigma_world(args.data)
    if sigma_world:
        given = [
            o
            for o, v in (
                ("--network", args.network),
                ("--width", args.width),
                ("--depth", args.depth),
                ("--beta-1", args.beta_1),
                ("--beta-T", args.beta_T),
            )
            if v is not None
        ]
        given += ["--schedule"] if args.schedule != "linear" else []
        if given:
            raise ValueError(
                f"{', '.join(given)} do not apply to --data {args.data}, which trains the 6.S183 MLP on "
                "noise levels sigma (--T, --sigma-min and --sigma-max set them)"
            )
    elif args.sigma_min is not None or args.sigma_max is not None:
        raise ValueError(
            f"--sigma-min and --sigma-max apply to the sigma world (--data swissroll), not --data {args.data}"
        )
    sigma_min: float = 0.005 if args.sigma_min is None else args.sigma_min
    sigma_max: float = 10.0 if args.sigma_max is None else args.sigma_max
    if not sigma_min < sigma_max:
        raise ValueError(f"--sigma-min must be below --sigma-max, got {sigma_min:g} and {sigma_max:g}")
    T = args.T if args.T is not None else (200 if sigma_world else 1000)
    network = args.network or preset["network"]
    if network == "unet" and args.data not in IMAGE_DATA:
        raise ValueError(
            f"--network unet takes images: use it with --data {' or '.join(IMAGE_DATA)}, not --data {args.data}"
        )
    net_config = dict(preset["net_config"]) if network == preset["network"] else {}
    if network == "fc":
        net_config["input_dim"] = 28 * 28 if args.data == "mnist" else 2
        net_config.update({k: v for k, v in (("num_hidden", args.width), ("num_layers", args.depth)) if v is not None})
    elif args.width is not None or args.depth is not None:
        raise ValueError("--width and --depth apply to --network fc only")
    if args.data == "mnist":
        if args.mnist_root is None:
            raise ValueError("--data mnist needs --mnist-root, the folder holding the MNIST IDX files")
        _check_mnist_root("--mnist-root", args.mnist_root, "train")
    elif args.mnist_root is not None:
        raise ValueError(f"--mnist-root applies to --data mnist only, not --data {args.data}")
    if args.schedule != "linear" and (args.beta_1 is not None or args.beta_T is not None):
        raise ValueError(f"--beta-1 and --beta-T apply to --schedule linear only, not --schedule {args.schedule}")
    beta_1 = 1e-4 if args.beta_1 is None else args.beta_1
    beta_T = 0.02 if args.beta_T is None else args.beta_T
    if beta_1 > beta_T:
        raise ValueError(f"--beta-1 must not exceed --beta-T, got --beta-1 {beta_1:g} and --beta-T {beta_T:g}")
    preset["network"], preset["net_config"] = network, net_config
    if args.steps is not None:
        preset["steps"] = args.steps
    if args.batch_size is not None:
        preset["batch_size"] = args.batch_size
    if args.lr is not None:
        preset["lr"] = args.lr
    if args.checkpoint_every is not None:
        preset["checkpoint_every"] = args.checkpoint_every
    return TrainConfig(
        data=args.data,
        schedule=args.schedule,
        T=T,
        beta_1=beta_1,
        beta_T=beta_T,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        ema_decay=args.ema or None,
        seed=args.seed,
        mnist_root=str(Path(args.mnist_root).resolve()) if args.mnist_root else None,
        **preset,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ddpm.train import train

    config, ckpt_path = args.config, args.checkpoint
    rank = _join_torchrun(args)
    if rank == 0:
        _note(
            args,
            f"training {config.network} on {config.data} for {config.steps} steps on {args.device}; "
            f"checkpoints in {ckpt_path}",
        )
    start = time.perf_counter()
    ckpt = train(config, ckpt_path, device=args.device, resume=not args.no_resume, show_progress=_progress(args))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    _note(args, f"trained in {time.perf_counter() - start:.0f} s; final loss {ckpt.losses[-1]:.4f}")
    from ddpm.plot import line_plot

    xs = [min(config.log_every * (i + 1), ckpt.step) for i in range(len(ckpt.losses))]
    line_plot(args.out / "loss.png", [ckpt.losses], xs=xs)
    return _sample_and_report(
        args, ckpt, args.out / "samples.png", n=args.samples, sigma2="beta", seed=args.seed, use_ema=True
    )


def _join_torchrun(args: argparse.Namespace) -> int:
    """Under ``torchrun`` (WORLD_SIZE > 1), join the process group — NCCL on CUDA, gloo on CPU — and
    take this process's GPU; returns the rank (0 when run alone)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if torch.device(args.device).type == "cuda":
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(args.device)
    dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    return dist.get_rank()


# -- sample ------------------------------------------------------------------------------------------


def check_sample(args: argparse.Namespace) -> None:
    """Every value of ``ddpm sample``; loads and verifies the checkpoint (``args.ckpt``)."""
    args.ckpt = load_checkpoint(args.checkpoint)
    args.out = args.out or args.checkpoint.with_name("samples.png")
    _check_output_file("--out", args.out)
    given = [
        o
        for o, v in (("--sampler", args.sampler), ("--steps", args.sample_steps), ("--gamma", args.gamma))
        if v is not None
    ]
    config = args.ckpt.config
    if not is_sigma_world(config.data) and given:
        raise ValueError(
            f"{', '.join(given)} apply to sigma-world checkpoints (--data swissroll); this one was "
            f"trained on {config.data} and is sampled by Algorithm 2 (--sigma2)"
        )
    if is_sigma_world(config.data) and (args.sample_steps or 10) > config.T:
        raise ValueError(f"--steps must be at most the checkpoint's {config.T} noise levels, got {args.sample_steps}")


def cmd_sample(args: argparse.Namespace) -> int:
    return _sample_and_report(
        args, args.ckpt, args.out, n=args.n, sigma2=args.sigma2, seed=args.seed, use_ema=not args.no_ema
    )


def _sample_and_report(
    args: argparse.Namespace, ckpt, png: Path, *, n: int, sigma2: str, seed: int, use_ema: bool
) -> int:
    """Draw n samples, save them (.pt) and their picture (.png); for a toy set, print its quality report."""
    from ddpm.beta.sampler import sample
    from ddpm.plot import image_grid, scatter_over_density
    from ddpm.train import build_schedule, progress_bar, restore_model

    config = ckpt.config
    model = restore_model(ckpt, use_ema=use_ema, device=args.device)
    if is_sigma_world(config.data):
        return _sample_sigma_world(args, model, config, png, n=n, seed=seed)
    shape = (n, 2) if config.data != "mnist" else (n, 1, 28, 28)
    generator = torch.Generator(args.device).manual_seed(seed)
    with progress_bar(config.T, "sample", show=_progress(args)) as bar:
        x0 = sample(
            model, build_schedule(config), shape, sigma2=sigma2, generator=generator, progress=lambda t: bar.update(1)
        ).cpu()
    png.parent.mkdir(parents=True, exist_ok=True)
    _save_tensor(png.with_suffix(".pt"), x0)
    if config.data == "mnist":
        image_grid(png, (x0[:64] + 1) / 2)
        print(f"wrote {png} (the first 64 samples) and {png.with_suffix('.pt')} (all {n})")
        return 0
    from ddpm.metrics import format_report, quality_report

    dataset = _density_set(config.data)
    measured = min(n, QUALITY_N)
    report = quality_report(x0, dataset, n=measured, generator=torch.Generator().manual_seed(seed + 1))
    scatter_over_density(png, x0, dataset.log_prob, report=report)
    report = {"samples_drawn": n, **report}
    quality = png.with_name(png.stem + "_quality.json")
    quality.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    if measured < n:
        print(
            f"(quality measured on the first {measured} of the {n} samples: the permutation test holds "
            f"a (2n)^2 distance matrix; the plot and the .pt hold all {n})"
        )
    print(f"wrote {png}, {png.with_suffix('.pt')} and {quality.name}")
    return 0


def _sample_sigma_world(args: argparse.Namespace, model, config: TrainConfig, png: Path, *, n: int, seed: int) -> int:
    """Sigma-world samples by the gamma / mu sampler, their picture over the spiral [6.S183 Q2].

    And the quality report.
    """
    from ddpm.sigma.run import format_swissroll_report, plot_swissroll, sample_sigma_world, swissroll_quality
    from ddpm.sigma.schedule import log_linear_sigmas

    sampler, steps = getattr(args, "sampler", None) or "accel", getattr(args, "sample_steps", None) or 10
    gamma = getattr(args, "gamma", None)
    levels = log_linear_sigmas(config.T, config.sigma_min, config.sigma_max)
    generator = torch.Generator(args.device).manual_seed(seed)
    x0 = sample_sigma_world(
        model, levels, n, sampler=sampler, steps=steps, gamma=gamma, generator=generator, device=args.device
    ).cpu()
    png.parent.mkdir(parents=True, exist_ok=True)
    _save_tensor(png.with_suffix(".pt"), x0)
    plot_swissroll(png, x0)
    report = swissroll_quality(x0, sampler=sampler, steps=steps, gamma=gamma, seed=seed, levels=levels)
    quality = png.with_name(png.stem + "_quality.json")
    quality.write_text(json.dumps(report, indent=2) + "\n")
    print(format_swissroll_report(report))
    print(f"wrote {png}, {png.with_suffix('.pt')} and {quality.name}")
    return 0


# -- elbo --------------------------------------------------------------------------------------------


def check_elbo(args: argparse.Namespace) -> None:
    """Every value of ``ddpm elbo``.

    Loads and verifies the checkpoint (``args.ckpt``), finds MNIST's test split.
    """
    args.ckpt = load_checkpoint(args.checkpoint)
    config = args.ckpt.config
    if is_sigma_world(config.data):
        raise ValueError(
            f"the variational bound is Ho et al.'s, of a DDPM checkpoint; this one was trained on "
            f"{config.data} in the sigma world, which has no such bound"
        )
    if config.data == "mnist":
        args.mnist_root = args.mnist_root or config.mnist_root
        if args.mnist_root is None:
            raise ValueError("--mnist-root is needed: the folder holding the MNIST IDX files")
        _check_mnist_root("--mnist-root", args.mnist_root, "test")
    elif args.mnist_root is not None:
        raise ValueError(
            f"--mnist-root applies to MNIST checkpoints only; {str(args.checkpoint)!r} is a {config.data} model"
        )


def cmd_elbo(args: argparse.Namespace) -> int:
    from ddpm.beta.losses import negative_elbo
    from ddpm.train import build_schedule, progress_bar, restore_model

    ckpt = args.ckpt
    config = ckpt.config
    x0, reference = held_out(config, args.n, args.mnist_root, seed=args.seed)
    model = restore_model(ckpt, use_ema=not args.no_ema, device=args.device)
    schedule = build_schedule(config).to(args.device)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    batches = x0.split(args.batch_size)
    bounds = []
    with progress_bar(config.T * len(batches), "elbo", show=_progress(args)) as bar:
        for batch in batches:
            bound = negative_elbo(
                model,
                schedule,
                batch.to(args.device),
                generator=generator,
                sigma2=args.sigma2,
                progress=lambda t: bar.update(1),
            )
            bounds.append((bound.prior, bound.terms))
    prior = torch.cat([p for p, _ in bounds]).double()
    terms = torch.cat([t for _, t in bounds]).double()
    dims, n = x0[0].numel(), x0.shape[0]
    per_dim = dims * math.log(2)
    total = (prior + terms.sum(1)) / per_dim
    mean, se = total.mean().item(), total.std().item() / math.sqrt(n)
    print(
        f"negative ELBO on {n} held-out points of {config.data}: {mean:.4f} ± {se:.4f} bits/dim "
        f"(sigma^2 = {args.sigma2})"
    )
    print(f"  L_T     {prior.mean().item() / per_dim:.6f} bits/dim")
    print(f"  L_1..   {terms[:, 1:].sum(1).mean().item() / per_dim:.4f} bits/dim (sum of L_{{t-1}}, t = 2..{config.T})")
    print(
        f"  L_0     {terms[:, 0].mean().item() / per_dim:.4f} bits/dim (discretised decoder, sigma_1^2 = "
        "beta_tilde_2 as in Ho et al.'s released code)"
    )
    if reference is not None:
        print(f"  the true distribution's own -log likelihood of the same quantised data: {reference:.4f} bits/dim")
    return 0


def held_out(config: TrainConfig, n: int, mnist_root: str | None, *, seed: int) -> tuple[torch.Tensor, float | None]:
    """n held-out points on the 256-level grid in [-1, 1], and the true model's bits/dim on them if known.

    MNIST: the test split. Toy sets: fresh draws quantised to the grid (the edge bins take the tails);
    their true discrete log-likelihood is approximated by log p(x) + D log(2/255) per point.
    """
    if n < 1:
        raise ValueError(f"the number of held-out points must be >= 1, got {n}")
    if config.data == "mnist":
        from ddpm.data.mnist import load_mnist, to_grid

        if mnist_root is None:
            raise ValueError("--mnist-root is needed: the folder holding the MNIST IDX files")
        images = load_mnist(mnist_root, "test")[0]
        if n > len(images):
            raise ValueError(f"-n must be at most the {len(images)} images of MNIST's test split, got {n}")
        return to_grid(images[:n]), None
    dataset = _density_set(config.data)
    x = dataset.sample(n, generator=torch.Generator().manual_seed(seed))
    grid = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1
    nll = -(dataset.log_prob(x).double() + 2 * math.log(2 / 255))
    return grid, nll.mean().item() / (2 * math.log(2))


# -- derive ------------------------------------------------------------------------------------------


def _claims_listing() -> str:
    """The claims ``ddpm derive`` knows, one a line, for its --help."""
    from ddpm.specs import CLAIMS

    return "claims:\n" + "\n".join(f"  {name:6s} {title}" for name, (_, title) in CLAIMS.items())


def cmd_derive(args: argparse.Namespace) -> int:
    import importlib

    from ddpm import specs
    from ddpm.specs._sym import latex_document

    if args.name is None and not (args.latex or args.markdown):
        for name, (module, title) in specs.CLAIMS.items():
            print(f"{name:8s} {title}  (specs/{module}.py)")
        return 0
    if args.name is not None and args.name not in specs.CLAIMS:
        raise ValueError(f"no claim named {args.name!r}; choose one of {', '.join(specs.CLAIMS)}")
    derivations = [
        importlib.import_module(f"ddpm.specs.{specs.CLAIMS[name][0]}").derivation()
        for name in ([args.name] if args.name else specs.CLAIMS)
    ]
    if args.latex:
        print(latex_document([d.latex(standalone=False) for d in derivations]), end="")
    elif args.markdown:
        print("\n".join(d.markdown() for d in derivations), end="")
    else:
        print(derivations[0].render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
