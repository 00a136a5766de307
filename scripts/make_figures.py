"""Regenerate every figure under docs/ that the README and the documentation site show.

    python scripts/make_figures.py [--out docs] [--only KIND] [--steps 2000] [--bench-summary summary.json]

- ``cb_default_samples.png``: the default job's own picture: ``ddpm train`` with no options (a 4 x 256
  SiLU network, 6000 steps; minutes on a CPU), its ``samples.png`` with the quality report in the title.
- ``swissroll_samples.png``: ``ddpm train --data swissroll`` (the 6.S183 notebook's setup, 20000 steps),
  its ``samples.png``: 2000 samples of the accelerated sampler (10 steps) over the spiral.
- ``cb_samples.png``, ``cb_loss.png``, ``cb_trajectory.png``: a Chequerboard model trained here
  (a 3 x 128 SiLU network, 2000 steps at batch 1024: smaller than the default job's), 2000 of its
  samples over the true density with the quality report in the title, its loss curve, and x_t of
  one sampling run at a few t.
- ``mnist_style_grid.png``: an image grid of SYNTHETIC MNIST-style digits (0-9 drawn with
  matplotlib's font, jittered and blurred), not model samples: no MNIST is downloaded here.
- ``speedup.png``: the benchmark's chart, from a ``summary.json`` of ``benchmarks/report.py``
  (``--bench-summary``), or else from the measured quick CPU run tabulated in benchmarks/README.md.

Everything is seeded; the numbers depend on the machine only through float rounding and timing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a clone

from ddpm.beta.sampler import sample  # noqa: E402
from ddpm.data import Chequerboard  # noqa: E402
from ddpm.metrics import quality_report  # noqa: E402
from ddpm.plot import image_grid, loss_plot, scatter_over_density, trajectory_plot  # noqa: E402
from ddpm.train import TrainConfig, build_schedule, restore_model, train  # noqa: E402

LOG_EVERY = 50


def toy_figures(out: Path, steps: int, width: int, batch_size: int, seed: int, work_dir: Path | None) -> None:
    """Train a Chequerboard model, then draw its samples, loss and sampling trajectory."""
    config = TrainConfig(
        data="cb",
        network="fc",
        net_config=dict(input_dim=2, num_hidden=width, num_layers=3, activation="silu"),
        steps=steps,
        batch_size=batch_size,
        lr=2e-3,
        seed=seed,
        checkpoint_every=steps,
        log_every=LOG_EVERY,
    )
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp())
    ckpt = train(config, work / "checkpoint.pt")  # an existing, finished one is reused
    model = restore_model(ckpt, use_ema=True)
    generator = torch.Generator().manual_seed(seed)
    x0, trajectory = sample(model, build_schedule(config), (2000, 2), generator=generator, return_trajectory=True)
    dataset = Chequerboard()
    report = quality_report(x0, dataset, generator=torch.Generator().manual_seed(seed + 1))
    scatter_over_density(out / "cb_samples.png", x0, dataset.log_prob, report=report)
    loss_plot(out / "cb_loss.png", ckpt.losses, [min(LOG_EVERY * (i + 1), ckpt.step) for i in range(len(ckpt.losses))])
    trajectory_plot(out / "cb_trajectory.png", trajectory, extent=(-3.0, 3.0, -3.0, 3.0))
    print(json.dumps({k: round(v, 6) for k, v in report.items()}, indent=2))


def synthetic_digits(n: int, seed: int) -> torch.Tensor:
    """n SYNTHETIC MNIST-style images (n, 1, 28, 28) in [0, 1]: digits 0-9 in matplotlib's font.

    Each digit is rendered white on black, shifted by up to 2 pixels and slightly blurred; a stand-in
    for MNIST in a picture of the image grid, not data a model was trained on.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28))
    for i in range(n):
        fig = Figure(figsize=(1, 1), dpi=28)
        canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("black")
        fig.text(
            0.5,
            0.5,
            str(i % 10),
            color="white",
            fontsize=44 + rng.integers(-6, 5),
            ha="center",
            va="center",
            rotation=rng.uniform(-12, 12),
            fontweight="bold",
        )
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())[..., 0].astype(float) / 255
        pixels = np.roll(pixels, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        blurred = (
            4 * pixels + np.roll(pixels, 1, 0) + np.roll(pixels, -1, 0) + np.roll(pixels, 1, 1) + np.roll(pixels, -1, 1)
        ) / 8
        images[i, 0] = np.clip(blurred * 1.3, 0, 1)
    return torch.from_numpy(images)


def rows_from_benchmarks_readme(path: Path = ROOT / "benchmarks" / "README.md") -> list[dict]:
    """The rows of the measured quick CPU run in benchmarks/README.md, as ``report.py`` writes them."""
    text = path.read_text()
    table = text[text.index("`python benchmarks/report.py --quick`") :].split("\n\n")[1]
    rows = []
    for line in table.splitlines()[2:]:
        workload, ours, peer, speedup, target = (cell.strip() for cell in line.strip("|").split("|"))
        goal = re.match(r">= ([0-9.]+)", target)
        rows.append(
            {
                "workload": workload,
                "device": "cpu (2 threads)",
                "ours_s": float(ours),
                "peer_s": float(peer),
                "speedup": float(speedup.rstrip("x")),
                "kind": "sample" if "sample" in workload else "train",
                "target": float(goal.group(1)) if goal else None,
            }
        )
    return rows


def speedup_figure(out: Path, summary: Path | None) -> None:
    """The benchmark chart, from ``summary`` (a summary.json) or the run in benchmarks/README.md."""
    from benchmarks.report import plot

    rows = rows_from_benchmarks_readme() if summary is None else json.loads(summary.read_text())
    plot(rows, out / "speedup.png")


def command_figure(out: Path, name: str, train_args: list[str], work_dir: Path | None) -> None:
    """``ddpm train`` with ``train_args`` in ``work_dir`` (a finished run is reused); keep samples.png."""
    import shutil

    from ddpm.cli import main as ddpm_main

    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp())
    status = ddpm_main(["train", *train_args, "--out", str(work), "--quiet"])
    if status != 0:
        raise SystemExit(f"ddpm train {' '.join(train_args)} exited {status}")
    shutil.copyfile(work / "samples.png", out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: docs/)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of the Chequerboard model")
    parser.add_argument("--width", type=int, default=128, help="hidden width of its 3-layer SiLU network")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, help="folder for the model's checkpoint, reused when rerun (default: temp)"
    )
    parser.add_argument("--bench-summary", type=Path, help="summary.json of benchmarks/report.py to chart")
    parser.add_argument("--only", choices=("toy", "grid", "speedup", "default", "swissroll"), help="make one kind only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "toy"):
        toy_figures(args.out, args.steps, args.width, args.batch_size, args.seed, args.work)
    if args.only in (None, "grid"):
        image_grid(
            args.out / "mnist_style_grid.png",
            synthetic_digits(40, args.seed),
            nrow=10,
            title="image grid of synthetic MNIST-style digits (not model samples)",
        )
    if args.only in (None, "speedup"):
        speedup_figure(args.out, args.bench_summary)
    if args.only in (None, "default"):
        command_figure(args.out, "cb_default_samples.png", [], args.work and args.work / "default")
    if args.only in (None, "swissroll"):
        command_figure(
            args.out, "swissroll_samples.png", ["--data", "swissroll"], args.work and args.work / "swissroll"
        )
    print(f"wrote the figures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
