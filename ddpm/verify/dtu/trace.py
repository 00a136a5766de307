"""The child's instruments: call sites in the student's file, recorded draws, and a clean exit.

- :func:`site` names the student's line a call came from: the innermost frame of the stack that is in
  the student's file (``"ddpm.py:41  x_t = ..."``).
- :class:`DrawTracer` wraps torch's random functions (``torch.randn``, ``randn_like``, ``rand``,
  ``randint``, ``normal``, ``Tensor.normal_``, ... and every draw made with ``generator=``) so that each
  draw the student's code makes is recorded with its function, shape, call site and whether it came
  from a generator of the file's own. The values are torch's own: the wrapper only records.
- :func:`restored` puts back everything observing changes in the process: the wrapped functions,
  the stubs and the student's module in ``sys.modules``, ``sys.path``, the global generators' states
  and torch's thread count, so that observing in-process (the tests) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TypedDict

import torch

__all__ = ["site", "Draw", "DrawTracer", "restored", "DRAW_FUNCTIONS", "TENSOR_DRAW_METHODS"]

DRAW_FUNCTIONS = (
    "randn",
    "randn_like",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "normal",
    "randperm",
    "multinomial",
    "bernoulli",
    "poisson",
)
TENSOR_DRAW_METHODS = (
    "normal_",
    "uniform_",
    "random_",
    "exponential_",
    "bernoulli_",
    "geometric_",
    "log_normal_",
    "cauchy_",
)


class Draw(TypedDict):
    """One recorded draw, as the child sends it to the parent."""

    fn: str  # "torch.randn", "Tensor.normal_", ...
    shape: list[int]  # the drawn tensor's shape ([] for a non-tensor result)
    site: str  # the student's line (``site``), "" when the call came from outside the file
    own_generator: bool  # drawn with generator= a generator other than torch's default one
    after_calls: int  # ``on_draw()`` at the draw: the network calls so far
    shifted: bool  # the draw was moved by ``shift`` (the recording's first draw, x_T)


def site(path: str, frame: FrameType | None = None) -> str | None:
    """``"ddpm.py:41  x_t = ..."``: the innermost frame of the stack in the file ``path``, or None."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == path:
            text = linecache.getline(path, frame.f_lineno).strip()
            return f"{Path(path).name}:{frame.f_lineno}  {text}"
        frame = frame.f_back
    return None


class DrawTracer:
    """Records every draw from torch's random functions while ``active``; ``draws`` is the log.

    ``on_draw()`` (set by the observer) gives a number stored with each draw (the network calls so
    far), so that the parent can tell which step of a loop a draw belongs to.
    """

    def __init__(self, path: str):
        self.path, self.active = path, False
        self.draws: list[Draw] = []
        self.on_draw: Callable[[], int] = lambda: 0
        # a tensor added to the first draw of a recording, when it has that shape
        self.shift: torch.Tensor | None = None
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, fn, name: str):
        tracer = self

        @functools.wraps(fn)
        def draw(*args, **kwargs):
            out = fn(*args, **kwargs)
            if tracer.active:
                gen = kwargs.get("generator")
                shape = list(out.shape) if isinstance(out, torch.Tensor) else []
                shifted = False
                if (
                    tracer.shift is not None
                    and not tracer.draws
                    and isinstance(out, torch.Tensor)
                    and out.is_floating_point()
                    and tuple(out.shape) == tuple(tracer.shift.shape)
                ):
                    # The verifier's chosen start: the run's first draw (x_T) moved by a known delta.
                    delta = tracer.shift.to(out.device, out.dtype)
                    out = out.add_(delta) if name.startswith("Tensor.") else out + delta
                    shifted = True
                tracer.draws.append(
                    {
                        "fn": name,
                        "shape": shape,
                        "site": site(tracer.path, sys._getframe(1)) or "",
                        "own_generator": gen is not None and gen is not torch.default_generator,
                        "after_calls": tracer.on_draw(),
                        "shifted": shifted,
                    }
                )
            return out

        return draw

    def install(self) -> None:
        for name in DRAW_FUNCTIONS:
            if hasattr(torch, name):
                self._saved.append((torch, name, getattr(torch, name)))
                setattr(torch, name, self._wrap(getattr(torch, name), f"torch.{name}"))
        for name in TENSOR_DRAW_METHODS:
            if hasattr(torch.Tensor, name):
                self._saved.append((torch.Tensor, name, getattr(torch.Tensor, name)))
                setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name), f"Tensor.{name}"))

    def uninstall(self) -> None:
        for owner, name, fn in reversed(self._saved):
            setattr(owner, name, fn)
        self._saved.clear()

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Draw]]:
        """Record the draws made inside the block; yields the list they go to."""
        self.draws, self.active = [], True
        try:
            yield self.draws
        finally:
            self.active = False


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Undo, on exit, what observing a file changes in this process (see the module's docstring)."""
    modules, path = dict(sys.modules), list(sys.path)
    torch_state, py_state, threads = torch.get_rng_state(), random.getstate(), torch.get_num_threads()
    restore_numpy: Callable[[], object] | None = None
    try:
        import numpy

        restore_numpy = functools.partial(numpy.random.set_state, numpy.random.get_state())
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            if name == "student_ddpm" or getattr(module, "__ddpm_verify_stub__", False):
                if name in modules and modules[name] is not module:
                    sys.modules[name] = modules[name]  # a stub over what was there (e.g. None: not importable)
                elif name not in modules:
                    del sys.modules[name]
        sys.path[:] = path
        torch.set_rng_state(torch_state)
        random.setstate(py_state)
        torch.set_num_threads(threads)
        if restore_numpy is not None:
            restore_numpy()
