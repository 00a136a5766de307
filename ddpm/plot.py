"""Pictures without a plotting library: a small PNG writer and three plots.

``scatter_over_density`` shows a toy model's samples over the true density, ``image_grid`` tiles
image samples (MNIST), ``line_plot`` draws curves such as the training loss. A picture is built as
an (H, W, 3) float array with values in [0, 1] and written as an 8-bit RGB PNG (W3C PNG
specification, 2nd ed.): the signature, an IHDR chunk, one zlib-compressed IDAT chunk whose rows
carry filter type 0, and IEND; every chunk ends with the CRC-32 of its type and data. Files are
written atomically: to a temporary file in the same folder, then renamed over the target.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["write_png", "colormap", "scatter_over_density", "image_grid", "line_plot"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Anchor colours of a viridis-like map (dark purple, blue, teal, green, yellow): perceptually
# ordered, readable in grey scale and by colour-blind readers; interpolated linearly in between.
VIRIDIS_ANCHORS = np.array([
    [0.267, 0.005, 0.329], [0.254, 0.265, 0.530], [0.164, 0.471, 0.558],
    [0.135, 0.659, 0.518], [0.478, 0.821, 0.318], [0.993, 0.906, 0.144],
])
CURVE_COLOURS = np.array([  # one colour a curve, cycled
    [0.12, 0.47, 0.71], [1.00, 0.50, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16], [0.58, 0.40, 0.74],
])
DOT_COLOUR = np.array([0.95, 0.1, 0.1])  # a red that stands out on every viridis colour
BACKGROUND, FRAME, GRID = np.ones(3), np.zeros(3), np.full(3, 0.88)

# A 3 x 5 bitmap font for numbers: each glyph is five rows of three pixels, "#" on.
FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    "-": ("...", "...", "###", "...", "..."), "+": ("...", ".#.", "###", ".#.", "..."),
    ".": ("...", "...", "...", "...", ".#."), "e": ("###", "#..", "###", "#..", "###"),
}
FONT_SCALE = 2  # each font pixel drawn as a 2 x 2 block: glyphs are 6 x 10 pixels
MARGIN = 30  # pixels around the plot area, room for the numbers on the axes


# -- PNG -------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``rgb`` (H, W, 3), floats in [0, 1] or uint8, as an 8-bit RGB PNG, atomically."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"an RGB picture must have shape (H, W, 3) with H, W >= 1, got {rgb.shape}")
    if rgb.dtype != np.uint8:
        if not np.isfinite(rgb).all():
            raise ValueError("an RGB picture must be finite")
        rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    height, width = rgb.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, 3 * width)], axis=1)  # filter 0
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # bit depth 8, colour type 2 (RGB)
    data = PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) \
        + _chunk(b"IEND", b"")
    _write_atomically(Path(path), data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -- drawing ---------------------------------------------------------------------------------------


def colormap(v: np.ndarray) -> np.ndarray:
    """The viridis-like colour of each value in [0, 1] (clipped): shape (..., 3)."""
    pos = np.clip(v, 0.0, 1.0) * (len(VIRIDIS_ANCHORS) - 1)
    lo = np.minimum(pos.astype(int), len(VIRIDIS_ANCHORS) - 2)
    frac = (pos - lo)[..., None]
    return (1 - frac) * VIRIDIS_ANCHORS[lo] + frac * VIRIDIS_ANCHORS[lo + 1]


def _format_number(v: float) -> str:
    """A short label in the font's characters: whole numbers in full, others to 3 significant digits."""
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.3g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _text(canvas: np.ndarray, s: str, x: int, y: int, colour: np.ndarray, align: str = "left") -> None:
    """Draw ``s`` with its top at row ``y`` and its left (``align="left"``) or right edge at column ``x``."""
    if align == "right":
        x -= (4 * len(s) - 1) * FONT_SCALE
    for i, ch in enumerate(s):
        for r, row in enumerate(FONT[ch]):
            for c, on in enumerate(row):
                if on == "#":
                    top, left = y + r * FONT_SCALE, x + (4 * i + c) * FONT_SCALE
                    if 0 <= top and 0 <= left:  # numpy would wrap negative indices around
                        canvas[top:top + FONT_SCALE, left:left + FONT_SCALE] = colour


def _frame(canvas: np.ndarray, top: int, left: int, height: int, width: int) -> None:
    """A one-pixel box just outside the plot area canvas[top:top+height, left:left+width]."""
    canvas[top - 1, left - 1:left + width + 1] = FRAME
    canvas[top + height, left - 1:left + width + 1] = FRAME
    canvas[top - 1:top + height + 1, left - 1] = FRAME
    canvas[top - 1:top + height + 1, left + width] = FRAME


def _axis_numbers(canvas: np.ndarray, top: int, left: int, height: int, width: int,
                  xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """The min and max of each axis beside the plot area's corners."""
    below, glyph_h = top + height + 5, 5 * FONT_SCALE
    _text(canvas, _format_number(xlim[0]), left, below, FRAME, "left")
    _text(canvas, _format_number(xlim[1]), left + width, below, FRAME, "right")
    _text(canvas, _format_number(ylim[0]), left - 5, top + height - glyph_h, FRAME, "right")
    _text(canvas, _format_number(ylim[1]), left - 5, top, FRAME, "right")


def _canvas_with_axes(width: int, height: int, margin_left: int,
                      aspect: float | None = None) -> tuple[np.ndarray, int, int, int, int]:
    """A white canvas and its plot area (top, left, height, width) inside the margins.

    With ``aspect`` (the plot area's width / height) the area is the largest of that shape that fits,
    centred, so that a unit on the x axis is as long as one on the y axis.
    """
    h, w = height - 2 * MARGIN, width - margin_left - MARGIN
    if aspect is not None:
        h, w = min(h, round(w / aspect)), min(w, round(h * aspect))
    if h < 8 or w < 8:
        raise ValueError(f"a plot of {width} x {height} pixels leaves no room inside its margins; "
                         f"use at least {margin_left + MARGIN + 8} x {2 * MARGIN + 8}")
    top = MARGIN + (height - 2 * MARGIN - h) // 2
    left = margin_left + (width - margin_left - MARGIN - w) // 2
    return np.ones((height, width, 3)) * BACKGROUND, top, left, h, w


def _label_width(*values: float) -> int:
    """Pixels taken by the widest number label, plus a gap."""
    return max(4 * len(_format_number(v)) - 1 for v in values) * FONT_SCALE + 10


# -- plots -----------------------------------------------------------------------------------------


@torch.no_grad()
def scatter_over_density(
    path: str | os.PathLike,
    samples: Tensor,
    log_prob: Callable[[Tensor], Tensor],
    extent: tuple[float, float, float, float] = (-1.5, 1.5, -1.5, 1.5),
    size: int = 512,
) -> None:
    """2D ``samples`` as red dots over the density exp(log_prob), in a size x size PNG.

    ``extent`` is (x_min, x_max, y_min, y_max); y points up. ``log_prob`` maps an (n, 2) float64
    tensor to (n,) log-densities (-inf where the density is 0); the colour scale runs from 0 to the
    largest density on the grid. Dots are alpha-blended when there are many, so that dense regions
    show as solid and sparse ones as faint.
    """
    samples = torch.as_tensor(samples).detach().cpu().double()
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (n, 2), got {tuple(samples.shape)}")
    x_min, x_max, y_min, y_max = map(float, extent)
    if not (math.isfinite(x_max - x_min + y_max - y_min) and x_min < x_max and y_min < y_max):
        raise ValueError(f"extent must be finite (x_min, x_max, y_min, y_max) with min < max, got {extent}")
    canvas, top, left, h, w = _canvas_with_axes(size, size, MARGIN + _label_width(y_min, y_max),
                                                aspect=(x_max - x_min) / (y_max - y_min))

    # The density at pixel centres: row 0 is y_max, column 0 is x_min.
    xs = x_min + (np.arange(w) + 0.5) * (x_max - x_min) / w
    ys = y_max - (np.arange(h) + 0.5) * (y_max - y_min) / h
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    logp = torch.as_tensor(log_prob(grid)).detach().cpu().double().numpy().reshape(h, w)
    if np.isnan(logp).any() or np.isposinf(logp).any():
        raise ValueError("log_prob returned NaN or +inf on the grid; expected finite values or -inf")
    density = np.exp(logp - logp.max()) if np.isfinite(logp.max()) else np.zeros((h, w))
    canvas[top:top + h, left:left + w] = colormap(density)

    # Dots: count the dots covering each pixel, then blend k dots of opacity a as 1 - (1 - a)^k.
    pts = samples.numpy()
    pts = pts[np.isfinite(pts).all(axis=1)]
    cols = np.floor((pts[:, 0] - x_min) / (x_max - x_min) * w).astype(int)
    rows = np.floor((y_max - pts[:, 1]) / (y_max - y_min) * h).astype(int)
    radius = max(1, size // 300)
    counts = np.zeros((h, w))
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            if dr * dr + dc * dc <= radius * radius + radius:  # a small disc
                r, c = rows + dr, cols + dc
                inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
                np.add.at(counts, (r[inside], c[inside]), 1)
    alpha = min(1.0, 1000 / max(len(pts), 1))
    cover = (1 - (1 - alpha) ** counts)[..., None]
    area = canvas[top:top + h, left:left + w]
    canvas[top:top + h, left:left + w] = (1 - cover) * area + cover * DOT_COLOUR

    _frame(canvas, top, left, h, w)
    _axis_numbers(canvas, top, left, h, w, (x_min, x_max), (y_min, y_max))
    write_png(path, canvas)


def image_grid(path: str | os.PathLike, images: Tensor, nrow: int = 8, pad: int = 2) -> None:
    """Tile ``images`` (N, 1 or 3, H, W), values in [0, 1] (clamped), ``nrow`` a row, into one PNG.

    Images are separated and framed by ``pad`` white pixels. A small grid is enlarged by the largest
    integer factor that keeps its longer side within 512 pixels (nearest neighbour, so pixels stay
    sharp). Map model outputs in [-1, 1] to [0, 1] by (x + 1) / 2 first.
    """
    images = torch.as_tensor(images).detach().cpu().double()
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, 1 or 3, H, W) with N >= 1, got {tuple(images.shape)}")
    if nrow < 1 or pad < 0:
        raise ValueError(f"nrow must be >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    if torch.isnan(images).any():
        raise ValueError("images contain NaN")
    n, c, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    tiles = images.clamp(0, 1).expand(n, 3, h, w).permute(0, 2, 3, 1).numpy()
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3))
    for i, tile in enumerate(tiles):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top:top + h, left:left + w] = tile
    scale = max(1, 512 // max(grid.shape[:2]))
    write_png(path, grid.repeat(scale, axis=0).repeat(scale, axis=1))


def line_plot(
    path: str | os.PathLike,
    ys: Sequence[float] | Sequence[Sequence[float]] | Tensor | np.ndarray,
    xs: Sequence[float] | Tensor | np.ndarray | None = None,
    size: tuple[int, int] = (640, 360),
) -> None:
    """One curve, or several sharing ``xs`` (default 0, 1, ...), over a light grid; size = (width, height).

    ``ys`` is one sequence of values or a sequence of them (a 2-D array is one curve a row), e.g.
    ``[losses, moving_average]``. Non-finite values are skipped. The axes are labelled with their
    minimum and maximum.
    """
    curves = [_numpy(y) for y in _as_curves(ys)]
    length = len(curves[0])
    if length < 1 or any(len(y) != length for y in curves):
        raise ValueError(f"curves must be non-empty and of one length, got lengths {[len(y) for y in curves]}")
    xs = np.arange(length, dtype=float) if xs is None else _numpy(xs)
    if xs.shape != (length,):
        raise ValueError(f"xs must have one value per point ({length}), got shape {xs.shape}")
    finite = [np.isfinite(y) & np.isfinite(xs) for y in curves]
    if not any(f.any() for f in finite):
        raise ValueError("no finite point to plot")
    x_lim = _limits(np.concatenate([xs[f] for f in finite]))
    y_lim = _limits(np.concatenate([y[f] for y, f in zip(curves, finite)]))
    width, height = size
    canvas, top, left, h, w = _canvas_with_axes(width, height, MARGIN + _label_width(*y_lim))

    for k in range(1, 5):  # a 4 x 4 grid of light lines
        canvas[top + k * h // 4, left:left + w] = GRID
        canvas[top:top + h, left + k * w // 4] = GRID
    for i, (y, f) in enumerate(zip(curves, finite)):
        px = (xs[f] - x_lim[0]) / (x_lim[1] - x_lim[0]) * (w - 1)
        py = (y_lim[1] - y[f]) / (y_lim[1] - y_lim[0]) * (h - 1)
        _polyline(canvas[top:top + h, left:left + w], px, py, CURVE_COLOURS[i % len(CURVE_COLOURS)])
    _frame(canvas, top, left, h, w)
    _axis_numbers(canvas, top, left, h, w, x_lim, y_lim)
    write_png(path, canvas)


def _as_curves(ys) -> list:
    """A list of curves from one sequence of numbers or a sequence of sequences."""
    if isinstance(ys, (Tensor, np.ndarray)):
        return [ys] if ys.ndim == 1 else list(ys)
    ys = list(ys)
    return ys if ys and not np.isscalar(ys[0]) and np.ndim(ys[0]) == 1 else [ys]


def _numpy(v) -> np.ndarray:
    """``v`` (a sequence, array or tensor on any device) as a float64 numpy array."""
    return torch.as_tensor(v, dtype=torch.float64).detach().cpu().numpy()


def _limits(v: np.ndarray) -> tuple[float, float]:
    """(min, max) of ``v``, widened around a single value so that the axis has a length."""
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _polyline(area: np.ndarray, px: np.ndarray, py: np.ndarray, colour: np.ndarray) -> None:
    """Join the points (px, py), in pixels, by two-pixel-wide straight segments.

    A curve with more points than there are columns is first reduced to each column's minimum and
    maximum, which draws the same envelope with a bounded number of segments.
    """
    h, w = area.shape[:2]
    if len(px) > 2 * w:
        col = np.round(px).astype(int)
        lo, hi = np.full(w, np.inf), np.full(w, -np.inf)
        np.minimum.at(lo, col, py)
        np.maximum.at(hi, col, py)
        used = np.flatnonzero(np.isfinite(lo))
        px, py = np.repeat(used, 2).astype(float), np.stack([lo[used], hi[used]], axis=1).reshape(-1)
    if len(px) == 1:
        px, py = np.repeat(px, 2), np.repeat(py, 2)
    steps = np.ceil(np.maximum(np.abs(np.diff(px)), np.abs(np.diff(py)))).astype(int) + 1  # per segment
    seg = np.repeat(np.arange(len(steps)), steps)
    frac = (np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)) / np.maximum(steps[seg] - 1, 1)
    x = np.round(px[seg] + frac * (px[seg + 1] - px[seg])).astype(int)
    y = np.round(py[seg] + frac * (py[seg + 1] - py[seg])).astype(int)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        area[np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)] = colour
