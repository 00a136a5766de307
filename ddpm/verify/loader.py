"""Load a student's DDPM file as a module, standing in stubs for the imports it cannot resolve.

02460 files import things the DDPM class never uses (``tqdm``, ``torchvision``, ``ToyData``, ``unet``).
When such an import fails at the top of the file, a stub module takes its place and the file is
executed again; the stubs are listed in the report. Any other failure is the file's own: it is
raised as :class:`LoadError` with a one-line reason, the line of the file that failed included.

A stub is a stand-in, not the package: whenever the code uses one (calls it, reads an attribute,
iterates it), ``on_touch(name, what)`` is told, so that the verifier can answer "cannot verify: needs
diffusers" rather than judge maths computed by a stand-in. Progress bars are the exception: a stub
named ``tqdm`` or ``trange`` behaves as the real one does (``tqdm(it)`` iterates ``it``, ``trange(n)``
is ``range(n)``), and touching it is harmless (``PASSTHROUGH``).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
import types
from pathlib import Path

__all__ = ["LoadError", "Stub", "load_module", "load_ddpm_class", "describe_exception", "PASSTHROUGH", "on_touch"]

MAX_STUBS = 32
MODULE_NAME = "student_ddpm"
PASSTHROUGH = ("tqdm",)  # packages whose stand-in behaves as the package does


def on_touch(name: str, what: str) -> None:
    """Told of every use of a stub.

    ``name`` is the stub's, e.g. ``diffusers.DDPMScheduler``; ``what`` is call, attribute, ....

    The observer replaces this hook while it runs the file's DDPM; by default it does nothing.
    """


class LoadError(Exception):
    """The file cannot be loaded or does not follow the template's interface."""


class Stub:
    """Stands in for anything from a missing module: calls, attributes, iteration, subclassing.

    Called with an iterable first argument it returns that argument, so ``tqdm(range(T))`` still
    loops over ``range(T)``.
    """

    def __init__(self, name: str = "stub"):
        self._name = name

    def __call__(self, *args, **kwargs):
        _touched(self._name, "call")
        if self._name.split(".")[-1] == "trange":
            return range(*args)
        if args and hasattr(args[0], "__iter__"):
            return args[0]
        return Stub(f"{self._name}()")

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        _touched(self._name, f"attribute {name}")
        return Stub(f"{self._name}.{name}")

    def __iter__(self):
        _touched(self._name, "iteration")
        return iter(())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __mro_entries__(self, bases):
        return (object,)

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


def _touched(name: str, what: str) -> None:
    sys.modules[__name__].on_touch(name, what)


class _StubModule(types.ModuleType):
    __ddpm_verify_stub__ = True

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Stub(f"{self.__name__}.{name}")


def describe_exception(exc: BaseException, path: Path | str) -> str:
    """``"IndexError: index 20 is out of bounds (line 52 of ddpm.py)"``.

    The error and the file's last line in it.
    """
    path = str(Path(path).resolve())
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == Path(path):
        where = f" (line {exc.lineno} of {Path(path).name})"
    else:
        where = f" (line {frames[-1].lineno} of {Path(path).name}: {frames[-1].line})" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def _stub(name: str) -> None:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if sys.modules.get(prefix) is None:  # absent, or marked not importable (None)
            module = _StubModule(prefix)
            module.__path__ = []  # a package, so that submodules import
            sys.modules[prefix] = module
            if i > 1:
                setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], module)


def _failed_import_in_file(exc: ImportError, path: str) -> str | None:
    """The module name when ``exc`` is an import statement of the file itself failing, else None."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    return exc.name if exc.name and frames and frames[-1].filename == path else None


def load_module(path: Path | str) -> tuple[types.ModuleType, list[str]]:
    """Execute the file as a module (not as ``__main__``).

    Returns it and the names of the stubbed imports.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise LoadError(f"no such file: {path}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # the file's folder, as when it is run as a script
    stubbed: list[str] = []
    while True:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"{path.name} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        try:
            spec.loader.exec_module(module)
            return module, stubbed
        except ImportError as exc:
            name = _failed_import_in_file(exc, str(path))
            if name is None or name in stubbed or len(stubbed) >= MAX_STUBS:
                raise LoadError(f"importing {path.name} failed: {describe_exception(exc, path)}") from None
            _stub(name)
            stubbed.append(name)
        except BaseException as exc:  # noqa: BLE001 - anything the file raises is its own failure
            raise LoadError(f"importing {path.name} failed: {describe_exception(exc, path)}") from None


def load_ddpm_class(path: Path | str, name: str = "DDPM") -> tuple[type, list[str]]:
    """The file's ``DDPM`` class, checked against the template's interface, and the stubbed imports."""
    module, stubbed = load_module(path)
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise LoadError(f"{Path(path).name} defines no class {name}")
    missing = [m for m in ("negative_elbo", "sample", "loss") if not callable(getattr(cls, m, None))]
    if missing:
        raise LoadError(
            f"class {name} has no method {', '.join(missing)} (the template has negative_elbo, sample, loss)"
        )
    try:
        inspect.signature(cls).bind(None, beta_1=0.1, beta_T=0.2, T=10)
    except TypeError as exc:
        raise LoadError(f"{name}(network, beta_1=..., beta_T=..., T=...) does not fit its constructor: {exc}") from None
    return cls, stubbed
