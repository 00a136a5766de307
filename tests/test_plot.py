"""The figures' content, read back from matplotlib's artists: what each figure shows, not its pixels.

Each test builds a figure from data it knows and reads back the scatter offsets, the lines' data, the
image arrays, the scales, labels, legends and titles. The files are checked only for being whole PNGs
written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

import ddpm.plot as plot
from ddpm.plot import (
    image_grid,
    image_grid_figure,
    loss_figure,
    loss_plot,
    moving_average,
    samples_figure,
    save_figure,
    scatter_over_density,
    tile_images,
    trajectory_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def unit_square_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log of the uniform density on [0, 1]^2: 0 inside, -inf outside."""
    inside = ((x >= 0) & (x <= 1)).all(-1)
    return torch.where(inside, 0.0, -math.inf).to(x.dtype)


def scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def images(ax) -> list[AxesImage]:
    return [a for a in ax.get_images()]


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, "the axes have no legend"
    return [t.get_text() for t in legend.get_texts()]


REPORT = {
    "n": 2000.0,
    "n_permutations": 200.0,
    "energy_distance": 1.612e-3,
    "p_value": 0.219,
    "baseline_energy_distance": 3.305e-4,
    "baseline_p_value": 0.985,
    "log_prob": -0.7985,
    "support": 0.912,
    "baseline_log_prob": -0.7985,
    "baseline_support": 1.0,
}


# -- samples over the density -----------------------------------------------------------------------


def test_samples_figure_shows_the_samples_the_density_and_the_numbers():
    pts = torch.tensor([[-1.0, 2.0], [0.5, 0.5], [0.25, 0.75]])
    fig = samples_figure(pts, unit_square_log_prob, (-2.0, 2.0, -1.0, 3.0), report=REPORT, grid=81)
    ax = fig.axes[0]
    (dots,) = scatters(ax)
    np.testing.assert_array_equal(dots.get_offsets(), pts.numpy())
    (density,) = images(ax)
    assert density.get_extent() == [-2.0, 2.0, -1.0, 3.0]
    grid = np.asarray(density.get_array())
    assert grid.shape == (81, 81)
    # origin="lower": row i is y = -1 + 4 i / 80, column j is x = -2 + 4 j / 80; the square is [0, 1]^2.
    xs, ys = np.linspace(-2, 2, 81), np.linspace(-1, 3, 81)
    inside = ((xs[None, :] >= 0) & (xs[None, :] <= 1)) & ((ys[:, None] >= 0) & (ys[:, None] <= 1))
    np.testing.assert_array_equal(grid, inside.astype(float))
    assert (ax.get_xlim(), ax.get_ylim()) == ((-2.0, 2.0), (-1.0, 3.0))
    assert ax.get_xlabel() == "$x_1$" and ax.get_ylabel() == "$x_2$"
    assert legend_texts(ax) == ["3 model samples"]
    title = ax.get_title()
    assert "energy distance 1.61e-03" in title and "3.31e-04" in title and "p = 0.22" in title and "91.2%" in title
    assert fig.axes[1].get_ylabel() == "true density p(x)"  # the colour bar


def test_samples_figure_without_report_has_a_plain_title():
    fig = samples_figure(torch.zeros(5, 2), unit_square_log_prob, grid=10)
    assert fig.axes[0].get_title() == "model samples over the true density"


def test_samples_figure_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        samples_figure(torch.zeros(3, 3), unit_square_log_prob)
    with pytest.raises(ValueError, match="NaN"):
        samples_figure(torch.zeros(3, 2), lambda x: torch.full((len(x),), math.nan), grid=5)
    with pytest.raises(ValueError, match="extent"):
        samples_figure(torch.zeros(3, 2), unit_square_log_prob, (1, -1, 0, 1))


def test_scatter_over_density_writes_a_png(tmp_path):
    path = scatter_over_density(tmp_path / "sub" / "s.png", torch.zeros(4, 2), unit_square_log_prob, report=REPORT)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in path.parent.iterdir()] == ["s.png"]  # no temporary file left


# -- the loss ---------------------------------------------------------------------------------------


def test_moving_average_against_a_loop():
    v = np.array([4.0, 2.0, 6.0, 1.0, 3.0, 5.0])
    for window in (1, 2, 3, 10):
        expected = [np.mean(v[max(0, i - window + 1) : i + 1]) for i in range(len(v))]
        np.testing.assert_allclose(moving_average(v, window), expected, rtol=1e-15)
    with pytest.raises(ValueError, match="window"):
        moving_average(v, 0)


def test_loss_figure_log_scale_raw_and_smoothed():
    losses = np.array([1.0, 0.5, 0.25, 0.3, 0.2, 0.1])
    steps = 50 * np.arange(1, 7)
    fig = loss_figure(losses, steps, window=3)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    raw, smooth = ax.get_lines()
    np.testing.assert_array_equal(raw.get_xdata(), steps)
    np.testing.assert_array_equal(raw.get_ydata(), losses)
    np.testing.assert_allclose(
        np.asarray(smooth.get_ydata()), [1.0, 0.75, 1.75 / 3, 1.05 / 3, 0.75 / 3, 0.6 / 3], rtol=1e-14
    )
    assert ax.get_xlabel() == "training step" and "loss" in ax.get_ylabel()
    assert legend_texts(ax) == ["loss", "moving average of 3 points"]


def test_loss_figure_default_window_and_non_finite_points():
    losses = np.r_[np.linspace(1, 0.1, 99), np.nan]
    fig = loss_figure(losses)
    raw, smooth = fig.axes[0].get_lines()
    assert len(np.asarray(raw.get_ydata())) == 99 and np.asarray(raw.get_xdata())[0] == 1
    assert "of 9 points" in str(smooth.get_label())  # a tenth of 99 finite points


@pytest.mark.parametrize(
    "losses, steps, match",
    [
        ([], None, "non-empty"),
        ([1.0, 2.0], [1.0], "one value per loss"),
        ([1.0, -1.0], None, "positive"),
        ([math.nan], None, "finite"),
    ],
)
def test_loss_figure_rejects_bad_input(losses, steps, match):
    with pytest.raises(ValueError, match=match):
        loss_figure(losses, steps)


def test_loss_plot_writes_a_png(tmp_path):
    assert loss_plot(tmp_path / "loss.png", [1.0, 0.5], [50, 100]).read_bytes()[:8] == PNG_SIGNATURE


# -- image grids -------------------------------------------------------------------------------------


def test_tile_images_tiles_pads_and_clamps():
    imgs = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 0.5, 2.0)])  # 2.0 is clamped to 1
    imgs[0, 0, 1, 2] = -3.0  # clamped to 0
    grid = tile_images(imgs, nrow=2, pad=1)
    assert grid.shape == (11, 11, 3)
    np.testing.assert_array_equal(grid[1:5, 1:5], 0.0)
    np.testing.assert_array_equal(grid[1:5, 6:10], 0.5)
    np.testing.assert_array_equal(grid[6:10, 1:5], 1.0)
    np.testing.assert_array_equal(grid[6:10, 6:10], 1.0)  # the empty fourth place is background
    assert (grid[0] == 1).all() and (grid[:, 5] == 1).all()  # padding


def test_tile_images_keeps_colour_channels():
    imgs = torch.zeros(2, 3, 5, 5)
    imgs[0, 0] = 1.0  # red
    imgs[1, 2] = 1.0  # blue
    grid = tile_images(imgs, pad=0)
    np.testing.assert_array_equal(grid[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(grid[0, 5], [0, 0, 1])


def test_image_grid_figure_shows_the_tiled_images(tmp_path):
    imgs = torch.rand(10, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    fig = image_grid_figure(imgs, nrow=5, title="MNIST-like")
    ax = fig.axes[0]
    (img,) = images(ax)
    np.testing.assert_array_equal(img.get_array(), tile_images(imgs, nrow=5))
    assert not ax.axison and ax.get_title() == "MNIST-like"
    assert image_grid(tmp_path / "g.png", imgs).read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("imgs", [torch.zeros(2, 4, 4), torch.zeros(2, 2, 4, 4), torch.full((1, 1, 2, 2), math.nan)])
def test_image_grid_rejects_bad_images(imgs):
    with pytest.raises(ValueError, match="images"):
        image_grid_figure(imgs)


# -- the trajectory ----------------------------------------------------------------------------------


def test_trajectory_figure_shows_x_t_at_the_chosen_steps():
    traj = torch.arange(11 * 4 * 2, dtype=torch.float32).reshape(11, 4, 2)  # x_t for t = 0..10
    fig = trajectory_figure(traj, ts=[10, 5, 0])
    assert len(fig.axes) == 3
    for ax, t in zip(fig.axes, (10, 5, 0)):
        (dots,) = scatters(ax)
        np.testing.assert_array_equal(dots.get_offsets(), traj[t].numpy())
        assert ax.get_title() == f"$x_{{{t}}}$"
    assert "trajectory" in fig.get_suptitle()


def test_trajectory_figure_default_steps_and_images():
    traj = torch.linspace(-1, 1, 21)[:, None, None, None, None].expand(21, 3, 1, 2, 2)  # T = 20, images
    fig = trajectory_figure(traj)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["$x_{20}$", "$x_{15}$", "$x_{10}$", "$x_{5}$", "$x_{2}$", "$x_{0}$"]
    (first,) = images(fig.axes[0])
    np.testing.assert_array_equal(first.get_array(), tile_images((traj[20] + 1) / 2, nrow=8))  # all ones


def test_trajectory_figure_rejects_bad_input():
    with pytest.raises(ValueError, match="trajectory must have shape"):
        trajectory_figure(torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match=r"steps in 0\.\.2"):
        trajectory_figure(torch.zeros(3, 4, 2), ts=[5])


# -- saving -----------------------------------------------------------------------------------------


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failed write leaves the old file whole and no temporary file behind."""
    target = tmp_path / "x.png"
    save_figure(loss_figure([1.0, 0.5]), target)
    before = target.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(plot.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_figure(loss_figure([2.0, 0.5]), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_save_takes_the_format_from_the_suffix(tmp_path):
    assert save_figure(loss_figure([1.0]), tmp_path / "l.pdf").read_bytes()[:5] == b"%PDF-"
    assert save_figure(loss_figure([1.0]), tmp_path / "l.svg").read_text().lstrip().startswith("<?xml")


# -- the benchmark's speedup chart ---------------------------------------------------------------------


def test_speedup_chart_bars_targets_and_log_scale(tmp_path):
    from benchmarks.report import plot as write_chart
    from benchmarks.report import speedup_figure

    rows = [
        {"workload": "fc sample N=256", "device": "cpu (2 threads)", "speedup": 2.6, "kind": "sample", "target": 2.0},
        {"workload": "unet train B=128", "device": "cuda (H200)", "speedup": 1.03, "kind": "train", "target": None},
    ]
    ax = speedup_figure(rows).axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1x", "1.5x", "2x", "3x"]
    bars = [b for b in ax.patches if isinstance(b, Rectangle)]
    assert len(bars) == len(ax.patches)  # the bars, and nothing else
    assert [b.get_width() for b in bars] == [2.6, 1.03]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fc sample N=256 [cpu]", "unet train B=128 [cuda]"]
    targets = [line for line in ax.get_lines() if line.get_color() == "black"]
    assert len(targets) == 1 and list(np.asarray(targets[0].get_xdata())) == [
        2.0,
        2.0,
    ]  # only the first row has a target
    assert legend_texts(ax) == ["sampling", "training step"]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()
    write_chart(rows, tmp_path / "speedup.png")
    assert (tmp_path / "speedup.png").read_bytes()[:8] == PNG_SIGNATURE


def test_line_plot_is_the_loss_plot_under_the_name_ddpm_train_calls(tmp_path, monkeypatch):
    drawn: list[Figure] = []

    def keep(fig: Figure, path: Path) -> Path:
        drawn.append(fig)
        return path

    monkeypatch.setattr(plot, "save_figure", keep)
    plot.line_plot(tmp_path / "a.png", [[1.0, 0.5, 0.25]], xs=[50, 100, 150])
    plot.line_plot(tmp_path / "b.png", [1.0, 0.5, 0.25], [50, 100, 150])
    for fig in drawn:
        raw, _ = fig.axes[0].get_lines()
        assert list(np.asarray(raw.get_xdata())) == [50, 100, 150] and list(np.asarray(raw.get_ydata())) == [
            1.0,
            0.5,
            0.25,
        ]
        assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="one-dimensional|losses must be"):
        plot.line_plot(tmp_path / "c.png", [[1.0, 0.5], [2.0, 1.0]])
