"""Files written whole or not at all: a temporary file beside the target, synced, renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike, data: bytes | memoryview | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path``, atomically.

    The bytes go to ``.NAME.XXXXXXXX.tmp`` beside ``path``, are synced, and the file is renamed over
    ``path``: a crash, a kill or a full disk at any moment leaves the previous file intact (a kill can
    leave the temporary file behind, under that name). The file gets the permissions of any file the
    user creates (the umask's), not a temporary file's 0600. An ``OSError`` propagates, with the
    temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path
