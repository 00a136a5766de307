"""A small progress bar on standard error, for training, sampling and the bound."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A one-line progress bar: ``with Progress(total, "train") as bar: bar.update(1, loss=0.3)``.

    On a terminal the line is redrawn in place at most ten times a second; elsewhere (a log, CI)
    a line is printed at most every ``log_every`` seconds, so logs stay short.
    """

    def __init__(self, total: int, desc: str = "", *, start: int = 0, stream: TextIO | None = None,
                 disable: bool = False, log_every: float = 10.0):
        self.total, self.desc, self.n = total, desc, start
        self.stream = stream if stream is not None else sys.stderr
        self.disable = disable
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = 0.1 if self.tty else log_every
        self.postfix: dict[str, object] = {}
        self._t0 = time.monotonic()
        self._last = -float("inf")  # draw on the first update
        self._n0 = start

    def update(self, n: int = 1, **postfix: object) -> None:
        self.n += n
        self.postfix.update(postfix)
        now = time.monotonic()
        if now - self._last >= self.interval or self.n >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        if self.disable:
            return
        rate = (self.n - self._n0) / max(now - self._t0, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * self.n / max(self.total, 1))
        extras = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        line = (f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.n}/{self.total} "
                f"{rate:.1f} it/s eta {_clock(eta)} {extras}").rstrip()
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.disable and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
