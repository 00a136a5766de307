"""MNIST from IDX files; two maps of its 8-bit pixels into [-1, 1] [02460 ex. 3.5; Ho20 §3.3].

Nothing is downloaded: put the four files of http://yann.lecun.com/exdb/mnist/ (plain or ``.gz``)
in a folder, or point at a torchvision root that holds them in ``MNIST/raw/``. An IDX file is a
4-byte magic number (two zero bytes, a type code, the number of dimensions), the dimensions as
big-endian uint32, then the values, big-endian, in C order.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["FILES", "read_idx", "write_idx", "load_mnist", "dequantise", "to_grid"]

# The IDX type codes and the big-endian numpy dtypes they stand for.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array in the IDX file ``path``, plain or gzip-compressed (told by its first bytes).

    Raises a ``ValueError`` naming the file when it is not an IDX file (bad magic number, unknown
    type code), is truncated, has bytes past its data, or is a broken gzip stream.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{str(path)!r} is a corrupt gzip file ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'}; "
            f"expected 0000TTNN with type TT in {sorted(f'{c:02x}' for c in IDX_DTYPES)}"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header needs {header} bytes, the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != size:
        problem = "is truncated" if len(raw) - header < size else "has trailing bytes"
        raise ValueError(
            f"{str(path)!r} {problem}: shape {shape} of {dtype.name} needs {size} data bytes, "
            f"the file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or not 1 <= array.ndim <= 255:
        raise ValueError(
            f"IDX holds 1 to 255 dimensions of {sorted(str(d) for d in codes)}; "
            f"got {array.ndim} dimensions of {array.dtype}"
        )
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, codes[native], array.ndim, *array.shape)
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def _find(root: Path, split: str) -> list[Path]:
    """The image and label files of ``split`` in ``root`` or ``root/MNIST/raw``, each plain or ``.gz``."""
    names, folders = FILES[split], (root, root / "MNIST" / "raw")
    where = (
        f"put {' and '.join(f'{n} (or {n}.gz)' for n in names)} in {str(root)!r} "
        f"(or in {str(folders[1])!r}, torchvision's layout)"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"the MNIST folder {str(root)!r} does not exist; {where}")
    found = {n: next((f / m for f in folders for m in (n, f"{n}.gz") if (f / m).is_file()), None) for n in names}
    present = {n: p for n, p in found.items() if p is not None}
    missing = [n for n in names if n not in present]
    if missing:
        raise FileNotFoundError(f"MNIST {split} files missing from {str(root)!r}: {', '.join(missing)}; {where}")
    return [present[n] for n in names]


def load_mnist(root: str | os.PathLike, split: str = "train") -> tuple[Tensor, Tensor]:
    """(images, labels) of the MNIST ``split`` ("train" or "test"): uint8 (N, 28, 28) and int64 (N,).

    A missing folder or file is a ``FileNotFoundError`` that names the files and where they go; a
    file of the wrong shape or type is a ``ValueError`` naming it.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    image_path, label_path = _find(Path(root), split)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{str(image_path)!r} holds {images.dtype} of shape {images.shape}; expected uint8 (N, 28, 28)"
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1] or (labels > 9).any():
        raise ValueError(
            f"{str(label_path)!r} holds {labels.dtype} of shape {labels.shape}; "
            f"expected {images.shape[0]} uint8 labels in 0..9"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def dequantise(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x = 2 (k / 255 + u / 255 - 0.5), u ~ U[0, 1), as float32 (N, 1, H, W) [02460 ex. 3.5].

    The sheet's transform, step for step: ``ToTensor`` (k / 255), ``x + rand / 255``, ``(x - 0.5) * 2``.
    ``floor((x / 2 + 0.5) * 255)`` gives back k, except where u lies within float32 rounding
    (about 1e-5) of 0 or 1. The noise is drawn on the generator's device, and x is returned there.
    """
    k = _as_images(images).to(generator.device if generator is not None else images.device)
    x = k.float() / 255
    x = x + torch.rand(k.shape, generator=generator, device=k.device) / 255
    return (x - 0.5) * 2.0


def to_grid(images: Tensor) -> Tensor:
    """x = 2 k / 255 - 1, float32 (N, 1, H, W): the discretised likelihood's 256-level grid [Ho20 §3.3]."""
    return (_as_images(images).double() * 2 / 255 - 1).float()


def _as_images(images: Tensor) -> Tensor:
    """uint8 images (N, H, W) or (N, 1, H, W) as (N, 1, H, W)."""
    if images.dtype != torch.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[1] != 1):
        raise ValueError(
            f"expected uint8 images of shape (N, H, W) or (N, 1, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    return images if images.ndim == 4 else images[:, None]
