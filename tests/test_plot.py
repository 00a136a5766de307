"""The PNG writer and the three plots, read back through a small PNG decoder of the test's own.

The decoder below follows the PNG specification independently of ``ddpm.plot``: it checks the
signature, every chunk's CRC-32 and the IHDR fields, inflates the IDAT stream and undoes the
per-row filters. Pixel values are compared exactly: 8-bit colours leave nothing to tolerate.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ddpm.plot as plot
from ddpm.plot import FONT, colormap, image_grid, line_plot, scatter_over_density, write_png


def decode_png(path: Path) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of an 8-bit RGB PNG; AssertionError on a bad signature or CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0), "not 8-bit RGB"
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 3 * width
    assert len(raw) == height * (stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    for r in range(height):
        f, line = raw[r * (stride + 1)], np.frombuffer(raw, np.uint8, stride, r * (stride + 1) + 1).astype(np.int64)
        prev = out[r - 1] if r else np.zeros(stride, np.int64)
        if f == 0:
            out[r] = line
        elif f == 2:  # Up; the writer uses 0, but a decoder that knew only 0 would prove less
            out[r] = (line + prev) % 256
        else:
            raise AssertionError(f"filter type {f} not supported by this test decoder")
    return out.astype(np.uint8).reshape(height, width, 3)


def u8(rgb) -> np.ndarray:
    """Colours in [0, 1] as the writer stores them."""
    return np.round(np.clip(np.asarray(rgb, dtype=float), 0, 1) * 255).astype(np.uint8)


def plot_area(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of the pixels neither white nor black: the plot area of a scatter."""
    coloured = ~((pixels == 255).all(-1) | (pixels == 0).all(-1))
    rows, cols = np.flatnonzero(coloured.any(1)), np.flatnonzero(coloured.any(0))
    return rows[0], cols[0], rows[-1], cols[-1]


# -- PNG --------------------------------------------------------------------------------------------


def test_png_round_trip_is_exact(tmp_path, gen):
    rgb = torch.randint(0, 256, (7, 13, 3), generator=gen, dtype=torch.uint8).numpy()
    write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(decode_png(tmp_path / "a.png"), rgb)


def test_png_from_floats_rounds_and_clips(tmp_path):
    rgb = np.array([[[0.0, 0.5, 1.0], [-0.3, 1.7, 0.2]]])
    write_png(tmp_path / "f.png", rgb)
    np.testing.assert_array_equal(decode_png(tmp_path / "f.png"), [[[0, 128, 255], [0, 255, 51]]])


def test_png_decoder_catches_a_corrupt_crc(tmp_path):
    """The CRC check of the test decoder can fail: flip one byte of the IDAT data."""
    write_png(tmp_path / "c.png", np.zeros((4, 4, 3)))
    data = bytearray((tmp_path / "c.png").read_bytes())
    idat = data.index(b"IDAT") + 4
    data[idat] ^= 0xFF
    (tmp_path / "c.png").write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="bad CRC"):
        decode_png(tmp_path / "c.png")


# A 9 x 5 PNG written by Pillow 13 (``Image.fromarray(STRIPES).save(...)``), an encoder independent
# of ddpm.plot: the test decoder is checked against it, so that it cannot merely mirror our writer.
PILLOW_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000090000000508020000001831513c0000002b49444154789c636050f5ca"
    "9fb2f31eb3866fd1f43d0fd9b4034a67ed7fc2a9175c31f710d373dc801672000efd6d389e12b16c0000000049454e44"
    "ae426082"
)
STRIPES = (np.arange(5 * 9 * 3).reshape(5, 9, 3) * 37 % 256).astype(np.uint8)


def test_decoder_reads_a_png_written_by_pillow(tmp_path):
    (tmp_path / "pillow.png").write_bytes(PILLOW_PNG)
    np.testing.assert_array_equal(decode_png(tmp_path / "pillow.png"), STRIPES)
    write_png(tmp_path / "ours.png", STRIPES)
    np.testing.assert_array_equal(decode_png(tmp_path / "ours.png"), STRIPES)


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4)), np.zeros((4, 4, 4)), np.zeros((0, 4, 3)), np.full((2, 2, 3), np.nan),
])
def test_png_rejects_bad_pictures(tmp_path, bad):
    with pytest.raises(ValueError, match="RGB picture"):
        write_png(tmp_path / "bad.png", bad)


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failed write leaves the old file whole and no temporary file behind."""
    target = tmp_path / "x.png"
    write_png(target, np.zeros((2, 2, 3)))
    before = target.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(plot.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_png(target, np.ones((3, 3, 3)))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


# -- colours and numbers ------------------------------------------------------------------------------


def test_colormap_is_ordered_in_lightness():
    """Perceptual order: relative luminance (Rec. 709 weights) rises strictly from 0 to 1."""
    rgb = colormap(np.linspace(0, 1, 256))
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luminance) > 0).all()
    np.testing.assert_array_equal(colormap(np.array([-1.0, 0.0, 1.0, 2.0])),
                                  plot.VIRIDIS_ANCHORS[[0, 0, -1, -1]])


@given(st.floats(min_value=-1e300, max_value=1e300))  # beyond, rounding to 3 digits may overflow
def test_axis_numbers_use_the_font_and_read_back(v):
    label = plot._format_number(v)
    assert set(label) <= set(FONT), label
    assert float(label) == pytest.approx(v, rel=5e-3, abs=0)  # 3 significant digits


def test_text_draws_the_glyph_bitmap():
    canvas = np.ones((20, 20, 3))
    plot._text(canvas, "7", 2, 3, np.zeros(3))
    bitmap = np.array([[ch == "#" for ch in row] for row in FONT["7"]])
    expected = np.kron(bitmap, np.ones((plot.FONT_SCALE, plot.FONT_SCALE), bool))
    drawn = (canvas == 0).all(-1)
    h, w = expected.shape
    np.testing.assert_array_equal(drawn[3:3 + h, 2:2 + w], expected)
    assert drawn.sum() == expected.sum()


# -- scatter_over_density -----------------------------------------------------------------------------


def unit_square_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log of the uniform density on [0, 1]^2: 0 inside, -inf outside."""
    inside = ((x >= 0) & (x <= 1)).all(-1)
    return torch.where(inside, 0.0, -math.inf).to(x.dtype)


def test_scatter_shows_density_and_dots_where_they_are(tmp_path):
    extent = (-2.0, 2.0, -1.0, 3.0)
    scatter_over_density(tmp_path / "s.png", torch.tensor([[-1.0, 2.0]]), unit_square_log_prob, extent, size=300)
    px = decode_png(tmp_path / "s.png")
    assert px.shape == (300, 300, 3)
    top, left, bottom, right = plot_area(px)
    height, width = bottom - top + 1, right - left + 1
    assert height == width  # a square extent gives a square plot area

    def pixel(x, y):
        return px[top + int((extent[3] - y) / 4 * height), left + int((x - extent[0]) / 4 * width)]

    np.testing.assert_array_equal(pixel(0.5, 0.5), u8(colormap(np.array(1.0))))  # inside the support
    np.testing.assert_array_equal(pixel(1.5, -0.5), u8(colormap(np.array(0.0))))  # density 0
    np.testing.assert_array_equal(pixel(-1.0, 2.0), u8(plot.DOT_COLOUR))  # the one sample, opaque
    assert (px[top - 1, left:right + 1] == 0).all()  # the axes box
    assert ((px[bottom + 2:, :] == 0).all(-1)).any()  # numbers under the x axis


def test_scatter_blends_many_dots(tmp_path):
    """With many samples each dot is translucent; where they pile up the colour tends to the dot's."""
    pile = torch.full((5000, 2), 0.5)
    scatter_over_density(tmp_path / "m.png", pile, unit_square_log_prob, size=200)
    px = decode_png(tmp_path / "m.png").astype(int)
    reds = (np.abs(px - u8(plot.DOT_COLOUR).astype(int)).sum(-1) <= 3)
    assert 1 <= reds.sum() <= 25  # the pile is one opaque dot
    one = torch.cat([pile, torch.tensor([[-1.0, -1.0]])])
    scatter_over_density(tmp_path / "one.png", one, unit_square_log_prob, size=200)
    lone = decode_png(tmp_path / "one.png").astype(int)
    changed = np.abs(lone - px).sum(-1) > 0
    assert changed.any() and not (np.abs(lone[changed] - u8(plot.DOT_COLOUR)).sum(-1) <= 3).any()  # faint


def test_scatter_aspect_follows_the_extent(tmp_path):
    scatter_over_density(tmp_path / "w.png", torch.zeros(1, 2), unit_square_log_prob, (-2, 2, -1, 1), size=300)
    top, left, bottom, right = plot_area(decode_png(tmp_path / "w.png"))
    assert abs((right - left + 1) - 2 * (bottom - top + 1)) <= 1


def test_scatter_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        scatter_over_density(tmp_path / "b.png", torch.zeros(3, 3), unit_square_log_prob)
    with pytest.raises(ValueError, match="NaN"):
        scatter_over_density(tmp_path / "b.png", torch.zeros(3, 2), lambda x: torch.full((len(x),), math.nan))
    with pytest.raises(ValueError, match="extent"):
        scatter_over_density(tmp_path / "b.png", torch.zeros(3, 2), unit_square_log_prob, (1, -1, 0, 1))
    with pytest.raises(ValueError, match="no room"):
        scatter_over_density(tmp_path / "b.png", torch.zeros(3, 2), unit_square_log_prob, size=40)
    assert not list(tmp_path.iterdir())


# -- image_grid ---------------------------------------------------------------------------------------


def test_image_grid_tiles_pads_and_upscales(tmp_path):
    images = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 0.5, 2.0)])  # 2.0 is clamped to 1
    images[0, 0, 1, 2] = -3.0  # clamped to 0
    image_grid(tmp_path / "g.png", images, nrow=2, pad=1)
    px = decode_png(tmp_path / "g.png")
    side = 2 * (4 + 1) + 1  # two tiles a row, padding around and between
    scale = 512 // side
    assert px.shape == (side * scale, side * scale, 3)
    small = px[::scale, ::scale]  # undo the nearest-neighbour enlargement
    assert (px == small.repeat(scale, 0).repeat(scale, 1)).all()
    np.testing.assert_array_equal(small[1:5, 1:5, 0], 0)
    np.testing.assert_array_equal(small[1:5, 6:10], 128)
    np.testing.assert_array_equal(small[6:10, 1:5], 255)
    np.testing.assert_array_equal(small[6:10, 6:10], 255)  # the empty fourth place is background
    assert (small[0] == 255).all() and (small[:, 5] == 255).all()  # padding


def test_image_grid_keeps_colour_channels(tmp_path):
    images = torch.zeros(2, 3, 300, 300)
    images[0, 0] = 1.0  # red
    images[1, 2] = 1.0  # blue
    image_grid(tmp_path / "c.png", images, pad=0)
    px = decode_png(tmp_path / "c.png")
    assert px.shape == (300, 600, 3)  # large enough: not enlarged
    np.testing.assert_array_equal(px[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(px[0, 300], [0, 0, 255])


@pytest.mark.parametrize("images", [torch.zeros(2, 4, 4), torch.zeros(2, 2, 4, 4), torch.full((1, 1, 2, 2), math.nan)])
def test_image_grid_rejects_bad_images(tmp_path, images):
    with pytest.raises(ValueError, match="images"):
        image_grid(tmp_path / "b.png", images)


# -- line_plot ----------------------------------------------------------------------------------------


def curve_pixels(px: np.ndarray, colour) -> np.ndarray:
    return (px == u8(colour)).all(-1)


def test_line_plot_draws_the_curve_across_the_axes(tmp_path):
    line_plot(tmp_path / "l.png", [0.0, 1.0], xs=[10.0, 20.0], size=(400, 300))
    px = decode_png(tmp_path / "l.png")
    assert px.shape == (300, 400, 3)
    on = curve_pixels(px, plot.CURVE_COLOURS[0])
    rows, cols = np.nonzero(on)
    # From the bottom-left to the top-right corner of the plot area: y falls as x rises, in a line.
    assert np.corrcoef(rows, cols)[0, 1] < -0.99
    assert (curve_pixels(px, plot.GRID)).sum() > 100  # the light grid
    assert (px == 0).all(-1).sum() > 100  # the box and the numbers


def test_line_plot_several_curves_and_non_finite_values(tmp_path):
    ys = np.array([[3.0, 2.0, np.nan, 1.0], [1.0, 1.5, 2.0, np.inf]])
    line_plot(tmp_path / "two.png", ys)
    px = decode_png(tmp_path / "two.png")
    assert curve_pixels(px, plot.CURVE_COLOURS[0]).any() and curve_pixels(px, plot.CURVE_COLOURS[1]).any()


def test_line_plot_of_a_long_curve_draws_its_envelope(tmp_path):
    """100000 points alternating 0 and 1: every column of the plot area spans the full height."""
    ys = torch.arange(100_000) % 2
    line_plot(tmp_path / "long.png", ys, size=(320, 200))
    on = curve_pixels(decode_png(tmp_path / "long.png"), plot.CURVE_COLOURS[0])
    rows, cols = np.nonzero(on)
    filled = on[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert filled.mean() > 0.95


def test_line_plot_of_a_constant_and_of_one_point(tmp_path):
    line_plot(tmp_path / "flat.png", [0.5] * 10)
    line_plot(tmp_path / "dot.png", [2.0])
    for name in ("flat.png", "dot.png"):
        assert curve_pixels(decode_png(tmp_path / name), plot.CURVE_COLOURS[0]).any()


@pytest.mark.parametrize("ys, xs, match", [
    ([], None, "non-empty"), ([[1.0, 2.0], [1.0]], None, "one length"), ([1.0, 2.0], [1.0], "xs"),
    ([math.nan, math.inf], None, "finite"),
])
def test_line_plot_rejects_bad_input(tmp_path, ys, xs, match):
    with pytest.raises(ValueError, match=match):
        line_plot(tmp_path / "b.png", ys, xs)
