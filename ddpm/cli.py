"""The ``ddpm`` command line: train, sample, elbo, derive, verify."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from ddpm.data import DATASETS
from ddpm.hostmem import keep_freed_host_memory
from ddpm.schedule import SIGMA2_CHOICES
from ddpm.train import TrainConfig, load_checkpoint

LOG_EVERY = 50  # training steps per logged loss (the loss curve's points)

# Per data set: the network and the run length that the bare `ddpm train --data NAME` uses.
PRESETS = {
    "tg": dict(network="fc", net_config=dict(num_hidden=128, num_layers=3, activation="silu"),
               steps=3000, batch_size=1024, lr=2e-3),
    "cb": dict(network="fc", net_config=dict(num_hidden=256, num_layers=4, activation="silu"),
               steps=6000, batch_size=2048, lr=2e-3),
    "mnist": dict(network="unet", net_config={}, steps=60_000, batch_size=128, lr=2e-4, checkpoint_every=1000),
}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_host_memory()  # the command owns its process: no page faults on each step's buffers
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"ddpm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"\nddpm {args.command}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a DDPM (Algorithm 1), then sample and plot it")
    p.add_argument("--data", choices=DATASETS, default="cb", help="data set (default: %(default)s)")
    p.add_argument("--mnist-root", help="folder with the MNIST IDX files (for --data mnist)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/DATA)")
    p.add_argument("--steps", type=int, help="training steps (default: the data set's preset)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--network", choices=("fc", "unet"))
    p.add_argument("--width", type=int, help="hidden width of the fc network")
    p.add_argument("--depth", type=int, help="hidden layers of the fc network")
    p.add_argument("--T", type=int, default=1000, help="diffusion steps (default: %(default)s)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default="linear")
    p.add_argument("--beta-1", type=float, default=1e-4)
    p.add_argument("--beta-T", type=float, default=0.02)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay, 0 for none (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has a checkpoint")
    p.add_argument("--samples", type=int, default=2000, help="samples drawn after training (default: %(default)s)")
    _add_device(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("sample", help="draw samples (Algorithm 2) from a checkpoint: a PNG and the raw tensor")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-n", type=int, default=2000, help="number of samples (default: %(default)s)")
    p.add_argument("--out", type=Path, help="PNG path (default: samples.png beside the checkpoint); raw samples go to .pt beside it")
    p.add_argument("--sigma2", choices=SIGMA2_CHOICES, default="beta", help="reverse variance [Ho20 §3.2]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not their EMA")
    _add_device(p)
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("elbo", help="the variational bound [Ho20 eq. 5] on held-out data, in bits/dim")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-n", type=int, default=1000, help="held-out points (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--sigma2", choices=SIGMA2_CHOICES, default="beta")
    p.add_argument("--mnist-root", help="folder with the MNIST IDX files (default: the training run's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-ema", action="store_true")
    _add_device(p)
    p.set_defaults(run=cmd_elbo)

    p = sub.add_parser("derive", help="print a derivation of the specs (no NAME: list them)",
                       description="Print a derivation of the specs, step by step: unicode math for a terminal, "
                                   "LaTeX for a handout, Markdown for a notebook cell.",
                       epilog=_claims_listing(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="the claim (no NAME: list the claims; with --latex or "
                                                           "--markdown, write every derivation)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="a LaTeX article (amsmath) that pdflatex compiles")
    fmt.add_argument("--markdown", action="store_true", help="Markdown with $$ math, e.g. for a Jupyter cell")
    p.set_defaults(run=cmd_derive)

    p = sub.add_parser("verify", help="run the specs against a DDPM written to the 02460 template")
    from ddpm.verify import cli as verify_cli

    verify_cli.add_arguments(p)
    p.set_defaults(run=verify_cli.run)
    return parser


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=default_device(), help="torch device (default: %(default)s)")


# -- train -------------------------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the data set's preset, with what the command line names put over it."""
    preset = dict(PRESETS[args.data])
    network = args.network or preset["network"]
    net_config = dict(preset["net_config"]) if network == preset["network"] else {}
    if network == "fc":
        net_config["input_dim"] = 28 * 28 if args.data == "mnist" else 2
        net_config.update({k: v for k, v in (("num_hidden", args.width), ("num_layers", args.depth)) if v})
    elif args.width or args.depth:
        raise ValueError("--width and --depth apply to --network fc only")
    preset.update(network=network, net_config=net_config)
    preset.update({k: v for k, v in dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                         checkpoint_every=args.checkpoint_every).items() if v is not None})
    return TrainConfig(
        data=args.data, schedule=args.schedule, T=args.T, beta_1=args.beta_1, beta_T=args.beta_T,
        ema_decay=args.ema or None, seed=args.seed,
        mnist_root=str(Path(args.mnist_root).resolve()) if args.mnist_root else None, **preset,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ddpm.train import train

    config = config_from_args(args)
    out = args.out or Path("runs") / args.data
    ckpt_path = out / "checkpoint.pt"
    rank = _join_torchrun(args)
    if rank == 0:
        print(f"training {config.network} on {config.data} for {config.steps} steps on {args.device}; "
              f"checkpoints in {ckpt_path}", file=sys.stderr)
    start = time.perf_counter()
    ckpt = train(config, ckpt_path, device=args.device, resume=not args.no_resume, log_every=LOG_EVERY)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    print(f"trained in {time.perf_counter() - start:.0f} s; final loss {ckpt.losses[-1]:.4f}", file=sys.stderr)
    from ddpm.plot import line_plot

    line_plot(out / "loss.png", [ckpt.losses], xs=[LOG_EVERY * (i + 1) for i in range(len(ckpt.losses))])
    return _sample_and_report(ckpt, out / "samples.png", n=args.samples, sigma2="beta", seed=args.seed,
                              use_ema=True, device=args.device)


def _join_torchrun(args: argparse.Namespace) -> int:
    """Under ``torchrun`` (WORLD_SIZE > 1), join the process group — NCCL on CUDA, gloo on CPU — and
    take this process's GPU; returns the rank (0 when run alone)."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if torch.device(args.device).type == "cuda":
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(args.device)
    dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    return dist.get_rank()


# -- sample ------------------------------------------------------------------------------------------


def cmd_sample(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    out = args.out or args.checkpoint.with_name("samples.png")
    return _sample_and_report(ckpt, out, n=args.n, sigma2=args.sigma2, seed=args.seed,
                              use_ema=not args.no_ema, device=args.device)


def _sample_and_report(ckpt, png: Path, *, n: int, sigma2: str, seed: int, use_ema: bool, device: str) -> int:
    """Draw n samples, save them (.pt) and their picture (.png); for a toy set, print its quality report."""
    from ddpm.plot import image_grid, scatter_over_density
    from ddpm.progress import Progress
    from ddpm.sampler import sample
    from ddpm.train import build_schedule, restore_model

    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    config = ckpt.config
    model = restore_model(ckpt, use_ema=use_ema, device=device)
    shape = (n, 2) if config.data != "mnist" else (n, 1, 28, 28)
    generator = torch.Generator(device).manual_seed(seed)
    with Progress(config.T, "sample") as bar:
        x0 = sample(model, build_schedule(config), shape, sigma2=sigma2, generator=generator,
                    progress=lambda t: bar.update(1)).cpu()
    png.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x0, png.with_suffix(".pt"))
    if config.data == "mnist":
        image_grid(png, (x0[:64] + 1) / 2)
        print(f"wrote {png} and {png.with_suffix('.pt')}")
        return 0
    from ddpm.data import toy_dataset
    from ddpm.metrics import format_report, quality_report

    dataset = toy_dataset(config.data)
    scatter_over_density(png, x0, dataset.log_prob)
    report = quality_report(x0, dataset, n=min(n, 2000), generator=torch.Generator().manual_seed(seed + 1))
    png.with_name(png.stem + "_quality.json").write_text(json.dumps(report, indent=2))
    print(format_report(report))
    print(f"wrote {png}, {png.with_suffix('.pt')} and {png.stem}_quality.json")
    return 0


# -- elbo --------------------------------------------------------------------------------------------


def cmd_elbo(args: argparse.Namespace) -> int:
    from ddpm.losses import negative_elbo
    from ddpm.progress import Progress
    from ddpm.train import build_schedule, restore_model

    ckpt = load_checkpoint(args.checkpoint)
    config = ckpt.config
    model = restore_model(ckpt, use_ema=not args.no_ema, device=args.device)
    schedule = build_schedule(config).to(args.device)
    x0, reference = held_out(config, args.n, args.mnist_root or config.mnist_root, seed=args.seed)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    batches = x0.split(args.batch_size)
    bounds = []
    with Progress(config.T * len(batches), "elbo") as bar:
        for batch in batches:
            bound = negative_elbo(model, schedule, batch.to(args.device), generator=generator, sigma2=args.sigma2,
                                  progress=lambda t: bar.update(1))
            bounds.append((bound.prior, bound.terms))
    prior = torch.cat([p for p, _ in bounds]).double()
    terms = torch.cat([t for _, t in bounds]).double()
    dims, n = x0[0].numel(), x0.shape[0]
    per_dim = dims * math.log(2)
    total = (prior + terms.sum(1)) / per_dim
    mean, se = total.mean().item(), total.std().item() / math.sqrt(n)
    print(f"negative ELBO on {n} held-out points of {config.data}: {mean:.4f} ± {se:.4f} bits/dim "
          f"(sigma^2 = {args.sigma2})")
    print(f"  L_T     {prior.mean().item() / per_dim:.6f} bits/dim")
    print(f"  L_1..   {terms[:, 1:].sum(1).mean().item() / per_dim:.4f} bits/dim (sum of L_{{t-1}}, t = 2..{config.T})")
    print(f"  L_0     {terms[:, 0].mean().item() / per_dim:.4f} bits/dim (discretised decoder)")
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
        images = load_mnist(mnist_root, "test")[0][:n]
        return to_grid(images), None
    from ddpm.data import toy_dataset

    dataset = toy_dataset(config.data)
    x = dataset.sample(n, generator=torch.Generator().manual_seed(seed))
    grid = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1
    nll = -(dataset.log_prob(x).double() + 2 * math.log(2 / 255))
    return grid, nll.mean().item() / (2 * math.log(2))


# -- derive ------------------------------------------------------------------------------------------


def _claims_listing() -> str:
    """The claims ``ddpm derive`` knows, one a line, for its --help."""
    from specs import CLAIMS

    return "claims:\n" + "\n".join(f"  {name:6s} {title}" for name, (_, title) in CLAIMS.items())


def cmd_derive(args: argparse.Namespace) -> int:
    import importlib

    import specs
    from specs._sym import latex_document

    if args.name is None and not (args.latex or args.markdown):
        for name, (module, title) in specs.CLAIMS.items():
            print(f"{name:8s} {title}  (specs/{module}.py)")
        return 0
    if args.name is not None and args.name not in specs.CLAIMS:
        raise ValueError(f"no claim named {args.name!r}; choose one of {', '.join(specs.CLAIMS)}")
    derivations = [importlib.import_module(f"specs.{specs.CLAIMS[name][0]}").derivation()
                   for name in ([args.name] if args.name else specs.CLAIMS)]
    if args.latex:
        print(latex_document([d.latex(standalone=False) for d in derivations]), end="")
    elif args.markdown:
        print("\n".join(d.markdown() for d in derivations), end="")
    else:
        print(derivations[0].render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
