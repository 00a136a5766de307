"""``python -m ddpm.verify.child``.

The child of ``ddpm verify``, which runs the student's file and only observes.

It reads one JSON message from stdin (never argv): the run's channel key, the pipe it writes frames
to, the private directory, the limits, ``strict`` and the job ``{"course", "observer", "file",
"config"}``. Before anything of the student's is imported it moves the pipe to a file descriptor of its
own choosing, sets up the channel (the key is kept only in the writer's closure), imports torch and the
course's observer (trusted code, loaded while the child may still read every file), confines itself
(:func:`ddpm.verify.sandbox.confine`) and tells the parent what is in force and what is missing in a
``__sandbox__`` frame; with ``strict`` and a protection missing it ends there. Then it calls
``observe(path, config, emit)``; an exception escaping it is sent as ``emit("crash", error=...)``.
Last it writes the end frame and exits at once, so that no exit handler or thread of the student's file
writes after it.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
import traceback
from pathlib import Path


def _hide(fd: int) -> int:
    """The channel's pipe moved to a free descriptor drawn at random.

    Not inherited by what the file starts.
    """
    for _ in range(64):
        new = 300 + secrets.randbelow(700)
        try:
            os.fstat(new)
        except OSError:
            os.dup2(fd, new, inheritable=False)
            os.close(fd)
            return new
    os.set_inheritable(fd, False)
    return fd


def main() -> None:
    raw = sys.stdin.buffer.read(1 << 20)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    message = json.loads(raw)
    from ddpm.verify import channel, sandbox

    fd = _hide(int(message["fd"]))
    emit, system, end = channel.make_channel(channel.fd_writer(fd), bytes.fromhex(message["key"]))
    message["key"] = None
    del raw
    job = message["job"]
    import torch  # noqa: F401 - loaded before the confinement, which lets it read only what it needs from now on

    observe = importlib.import_module(job["observer"]).observe  # the course's code, trusted: loaded before too
    confined = sandbox.confine(message["private"], message["limits"], message.get("cgroup"), job["file"])
    system("__sandbox__", confined=confined.notes(), missing=confined.missing)
    if message.get("strict") and confined.missing:  # --strict: nothing of the file runs without every protection
        end()
        os._exit(0)
    try:
        observe(Path(job["file"]), job["config"], emit)
    except BaseException as exc:  # noqa: BLE001 - whatever escapes, SystemExit included, is reported as a crash
        try:
            emit(
                "crash",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                traceback="".join(traceback.format_exception(exc))[-8000:],
            )
        except BaseException:  # noqa: BLE001 - a crash that cannot even be described still ends the stream
            pass
    try:
        end()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(0)


if __name__ == "__main__":
    main()
