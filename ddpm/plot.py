"""Figures with matplotlib: samples over the true density, the loss, the trajectory, image grids.

Each ``*_figure`` function returns a ``matplotlib.figure.Figure`` built without pyplot, so no display
and no global backend are involved (works headless, in scripts and in Jupyter, where a Figure shows
itself); ``save_figure`` writes one atomically: to a temporary file in the same folder, then renamed
over the target, so that an interrupted run never leaves half a PNG. The path-taking functions
(``scatter_over_density``, ``loss_plot``, ``trajectory_plot``, ``image_grid``) build and save in one call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter
from torch import Tensor

from ddpm.atomic import write_atomically

__all__ = [
    "samples_figure",
    "loss_figure",
    "trajectory_figure",
    "image_grid_figure",
    "save_figure",
    "scatter_over_density",
    "loss_plot",
    "line_plot",
    "trajectory_plot",
    "image_grid",
    "moving_average",
    "tile_images",
    "quality_title",
]

DOT_COLOUR = "tab:red"  # stands out on every colour of viridis
DENSITY_MAP = "viridis"  # perceptually ordered, readable in grey scale and by colour-blind readers


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix: .png, .pdf, .svg) atomically; return the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return write_atomically(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


def _numpy(v: Any) -> np.ndarray:
    """``v`` (a sequence, array or tensor on any device) as a float64 numpy array."""
    return torch.as_tensor(v, dtype=torch.float64).detach().cpu().numpy()


# -- samples over the true density ----------------------------------------------------------------


def quality_title(report: Mapping[str, float]) -> str:
    """The headline numbers of a ``ddpm.metrics.quality_report``, in one line for a figure's title."""
    return (
        f"energy distance {report['energy_distance']:.2e} (true vs true {report['baseline_energy_distance']:.2e}), "
        f"p = {report['p_value']:.2f}; {100 * report['support']:.1f}% in the support"
    )


@torch.no_grad()
def samples_figure(
    samples: Tensor,
    log_prob: Callable[[Tensor], Tensor],
    extent: tuple[float, float, float, float] = (-1.5, 1.5, -1.5, 1.5),
    *,
    report: Mapping[str, float] | None = None,
    title: str = "model samples over the true density",
    grid: int = 300,
) -> Figure:
    """2D ``samples`` as red dots over the density exp(log_prob) on a ``grid`` x ``grid`` mesh.

    ``extent`` is (x_min, x_max, y_min, y_max). ``log_prob`` maps an (n, 2) float64 tensor to (n,)
    log-densities (-inf where the density is 0). With a ``ddpm.metrics.quality_report`` the title
    carries its numbers. Dots are translucent when there are many, so that dense regions show solid.
    """
    samples = torch.as_tensor(samples).detach().cpu().double()
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (n, 2), got {tuple(samples.shape)}")
    x_min, x_max, y_min, y_max = map(float, extent)
    if not (math.isfinite(x_max - x_min + y_max - y_min) and x_min < x_max and y_min < y_max):
        raise ValueError(f"extent must be finite (x_min, x_max, y_min, y_max) with min < max, got {extent}")
    xs = np.linspace(x_min, x_max, grid)
    ys = np.linspace(y_min, y_max, grid)
    mesh = torch.from_numpy(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    logp = _numpy(log_prob(mesh)).reshape(grid, grid)
    if np.isnan(logp).any() or np.isposinf(logp).any():
        raise ValueError("log_prob returned NaN or +inf on the grid; expected finite values or -inf")
    density = np.exp(logp)

    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        density,
        origin="lower",
        extent=(x_min, x_max, y_min, y_max),
        cmap=DENSITY_MAP,
        aspect="equal",
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label="true density p(x)", shrink=0.85)
    pts = samples.numpy()
    ax.scatter(
        pts[:, 0],
        pts[:, 1],
        s=5,
        color=DOT_COLOUR,
        alpha=min(1.0, 1000 / max(len(pts), 1)) ** 0.5,
        linewidths=0,
        label=f"{len(pts)} model samples",
    )
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="upper right", markerscale=3, framealpha=0.9)
    ax.set_title(title if report is None else f"{title}\n{quality_title(report)}", fontsize=10)
    return fig


def scatter_over_density(
    path: str | os.PathLike,
    samples: Tensor,
    log_prob: Callable[[Tensor], Tensor],
    extent: tuple[float, float, float, float] = (-1.5, 1.5, -1.5, 1.5),
    report: Mapping[str, float] | None = None,
) -> Path:
    """Write :func:`samples_figure` of ``samples`` over exp(``log_prob``) to ``path``, atomically."""
    return save_figure(samples_figure(samples, log_prob, extent, report=report), path)


# -- the loss --------------------------------------------------------------------------------------


def moving_average(values: Any, window: int) -> np.ndarray:
    """The mean of each value and the up to ``window - 1`` before it (a trailing window)."""
    v = _numpy(values)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    sums = np.concatenate([[0.0], np.cumsum(v)])
    counts = np.minimum(np.arange(1, len(v) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(v) + 1) - counts]) / counts


def loss_figure(losses: Any, steps: Any = None, *, window: int | None = None, title: str = "training loss") -> Figure:
    """The loss against the training step on a log scale, with its trailing moving average.

    ``steps`` defaults to 1, 2, ...; ``window`` (points in the average) to a tenth of the curve,
    at least 1. The loss must be positive (L_simple is); non-finite points are left out.
    """
    y = _numpy(losses)
    if y.ndim != 1 or len(y) < 1:
        raise ValueError(f"losses must be a non-empty sequence of numbers, got shape {y.shape}")
    x = np.arange(1, len(y) + 1, dtype=float) if steps is None else _numpy(steps)
    if x.shape != y.shape:
        raise ValueError(f"steps must have one value per loss ({len(y)}), got shape {x.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if (y[keep] <= 0).any():
        raise ValueError(f"a log-scale loss plot needs positive losses, got min {y[keep].min():.3g}")
    if not keep.any():
        raise ValueError("no finite loss to plot")
    x, y = x[keep], y[keep]
    window = window or max(1, len(y) // 10)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, y, color="tab:blue", alpha=0.35, lw=1, label="loss")
    ax.plot(x, moving_average(y, window), color="tab:blue", lw=2, label=f"moving average of {window} points")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")  # 0.2, 0.3 rather than 2 x 10^-1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if y.max() < 10 * y.min() else NullFormatter())  # label 2..9 within a decade
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return fig


def loss_plot(path: str | os.PathLike, losses: Any, steps: Any = None) -> Path:
    """Write :func:`loss_figure` of ``losses`` (at ``steps``) to ``path``, atomically."""
    return save_figure(loss_figure(losses, steps), path)


def line_plot(path: str | os.PathLike, ys: Any, xs: Any = None) -> Path:
    """:func:`loss_plot` under the name ``ddpm train`` calls: ``ys`` is the loss curve, or ``[curve]``."""
    if isinstance(ys, (list, tuple)) and len(ys) == 1 and np.ndim(ys[0]) == 1:
        ys = ys[0]
    return loss_plot(path, ys, xs)


# -- image grids -----------------------------------------------------------------------------------


def tile_images(images: Tensor, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Tile ``images`` (N, 1 or 3, H, W), values clamped to [0, 1], ``nrow`` a row: an (H', W', 3) array.

    Images are separated and framed by ``pad`` white pixels; unused places are white.
    """
    images = torch.as_tensor(images).detach().cpu().double()
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, 1 or 3, H, W) with N >= 1, got {tuple(images.shape)}")
    if nrow < 1 or pad < 0:
        raise ValueError(f"nrow must be >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    if torch.isnan(images).any():
        raise ValueError("images contain NaN")
    n, _, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    tiles = images.clamp(0, 1).expand(n, 3, h, w).permute(0, 2, 3, 1).numpy()
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3))
    for i, tile in enumerate(tiles):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top : top + h, left : left + w] = tile
    return grid


def image_grid_figure(images: Tensor, nrow: int = 8, pad: int = 2, title: str | None = None) -> Figure:
    """Images (N, 1 or 3, H, W) with values in [0, 1] tiled ``nrow`` a row, pixels kept sharp.

    Map model outputs in [-1, 1] to [0, 1] by (x + 1) / 2 first.
    """
    grid = tile_images(images, nrow, pad)
    height, width = grid.shape[:2]
    scale = 6.0 / max(height, width)
    fig = Figure(
        figsize=(max(width * scale, 1.0), max(height * scale, 1.0) + (0.4 if title else 0)), layout="constrained"
    )
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def image_grid(path: str | os.PathLike, images: Tensor, nrow: int = 8, pad: int = 2, title: str | None = None) -> Path:
    """Write :func:`image_grid_figure` of ``images`` (values in [0, 1]) to ``path``, atomically."""
    return save_figure(image_grid_figure(images, nrow, pad, title), path)


# -- the sampling trajectory -----------------------------------------------------------------------


def trajectory_figure(
    trajectory: Tensor,
    ts: Sequence[int] | None = None,
    *,
    extent: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
    n_images: int = 8,
) -> Figure:
    """x_t at a few t of one run of Algorithm 2: ``trajectory[t]`` is x_t, t = 0..T.

    That is the ``xs`` of ``ddpm.beta.sampler.sample(..., return_trajectory=True)``. ``ts`` defaults to
    T, 3T/4, T/2, T/4, T/10 and 0. 2D samples are drawn as one scatter a t within ``extent``; images
    (batch, C, H, W) as one row a t of the first ``n_images``, mapped from [-1, 1] to [0, 1].
    """
    trajectory = torch.as_tensor(trajectory).detach().cpu()
    if trajectory.ndim not in (3, 5) or (trajectory.ndim == 3 and trajectory.shape[2] != 2):
        raise ValueError(
            f"trajectory must have shape (T + 1, n, 2) or (T + 1, n, C, H, W), got {tuple(trajectory.shape)}"
        )
    T = trajectory.shape[0] - 1
    if ts is None:
        ts = sorted({T, round(0.75 * T), T // 2, T // 4, T // 10, 0}, reverse=True)
    bad = [t for t in ts if not 0 <= t <= T]
    if bad or not ts:
        raise ValueError(f"ts must be steps in 0..{T}, got {list(ts)}")
    if trajectory.ndim == 3:
        fig = Figure(figsize=(2.4 * len(ts), 2.8), layout="constrained")
        axes = fig.subplots(1, len(ts), sharex=True, sharey=True, squeeze=False)[0]
        for ax, t in zip(axes, ts):
            pts = trajectory[t].double().numpy()
            ax.scatter(pts[:, 0], pts[:, 1], s=2, color=DOT_COLOUR, alpha=min(1.0, 300 / len(pts)) ** 0.5, linewidths=0)
            ax.set_title(f"$x_{{{t}}}$", fontsize=11)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_aspect("equal")
            ax.set_xlabel("$x_1$")
        axes[0].set_ylabel("$x_2$")
    else:
        fig = Figure(figsize=(1.0 * min(n_images, trajectory.shape[1]) + 0.8, 1.0 * len(ts)), layout="constrained")
        axes = fig.subplots(len(ts), 1, squeeze=False)[:, 0]
        for ax, t in zip(axes, ts):
            ax.imshow(tile_images((trajectory[t, :n_images].double() + 1) / 2, nrow=n_images), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(f"$x_{{{t}}}$", rotation=0, labelpad=18, va="center")
    fig.suptitle("sampling trajectory (Algorithm 2): $x_t$ from $t = T$ to $0$")
    return fig


def trajectory_plot(path: str | os.PathLike, trajectory: Tensor, ts: Sequence[int] | None = None, **kwargs) -> Path:
    """Write :func:`trajectory_figure` of ``trajectory`` to ``path``, atomically."""
    return save_figure(trajectory_figure(trajectory, ts, **kwargs), path)
