"""The verifier's own stand-ins for what the two 6.S183 answers touch (child side).

The notebook imports ``smalldiffusion``, ``accelerate``, ``tqdm``, ``matplotlib`` and ``IPython``;
whether or not they are installed, the child binds these names to the small objects here, so that
the student's ``training_loop`` and ``samples`` run on inputs the verifier chooses and every draw,
network call and yield is recorded with the student's cell and line:

- :class:`Accelerator`: ``prepare`` returns its arguments, ``backward`` is ``loss.backward()``,
  ``device`` is the CPU;
- :class:`Schedule`: ``sigmas``, ``sample_batch`` (one level per example, drawn by the verifier),
  ``sample_sigmas`` (the sigma core's trailing spacing);
- :class:`ProbeModel`: ``rand_input``, ``predict_eps``, ``input_dims``, one parameter for the
  optimiser; its answers are a fixed function of (x, sigma) chosen by the verifier.

A name of these packages that the answers should not need (``TimeInputMLP``, ``Swissroll``, the
library's own ``training_loop``) is a :class:`Unavailable`: using it raises :class:`StandInUsed`, which
the parent reports as "cannot verify", never as the student's bug.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
import types
from collections.abc import Callable
from itertools import count
from typing import Any

import torch
from torch import Tensor, nn

from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas
from ddpm.verify.s183.notebook import cell_of_filename

__all__ = [
    "StandInUsed",
    "Unavailable",
    "Accelerator",
    "Schedule",
    "ScheduleLogLinear",
    "ProbeModel",
    "ProbeLoader",
    "probe_answer",
    "student_site",
    "install_modules",
    "recorded_draws",
    "STANDIN_MODULES",
]


class StandInUsed(RuntimeError):
    """The student's code used a part of a course package the verifier does not stand in for."""


_INTERNAL = [0]


@contextlib.contextmanager
def _internal():
    """Draws made inside the stand-ins (rand_input, sample_batch) are the verifier's, recorded by them."""
    _INTERNAL[0] += 1
    try:
        yield
    finally:
        _INTERNAL[0] -= 1


def student_site(depth: int = 1) -> tuple[int, int] | None:
    """(cell, line) of the innermost frame of the student's notebook on the stack, or None."""
    frame: types.FrameType | None = sys._getframe(depth)
    while frame is not None:
        cell = cell_of_filename(frame.f_code.co_filename)
        if cell is not None:
            return cell, frame.f_lineno
        frame = frame.f_back
    return None


def snap(t: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A detached, contiguous copy for the channel (expanded or strided views included)."""
    t = t.detach()
    out = torch.empty(t.shape, dtype=dtype or t.dtype)  # fresh strides: a one-element view may have stride 0
    return out.copy_(t)


def _site_fields(site) -> dict:
    return {"cell": site[0], "line": site[1]} if site else {"cell": None, "line": None}


class Unavailable:
    """A name of a stood-in package the two answers should not need; calling or reading it raises."""

    def __init__(self, name: str):
        self._name = name

    def _fail(self, *args, **kwargs):
        raise StandInUsed(f"{self._name} (the verifier stands in only for what training_loop and samples need)")

    __call__ = _fail

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Unavailable(f"{self._name}.{attr}")

    def __mro_entries__(self, bases):
        return (nn.Module,)  # a class built on it (class Net(TimeInputMLP)) can be defined, not used


class _Anything:
    """matplotlib / IPython: whatever is asked of it, it does nothing."""

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Anything()

    def __iter__(self):
        return iter((_Anything(), _Anything()))

    def __getitem__(self, key):
        return _Anything()

    def __setitem__(self, key, value):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Accelerator:
    """accelerate's Accelerator as far as the notebook uses it: prepare is the identity, the CPU."""

    def __init__(self, *args, **kwargs):
        self.device = torch.device("cpu")
        self.is_main_process = self.is_local_main_process = True
        self.num_processes, self.process_index = 1, 0

    def prepare(self, *objects):
        return objects[0] if len(objects) == 1 else objects

    def backward(self, loss, **kwargs):
        loss.backward(**kwargs)

    def unwrap_model(self, model, *args, **kwargs):
        return model

    def gather(self, x):
        return x

    gather_for_metrics = reduce = pad_across_processes = gather

    def print(self, *args, **kwargs):
        pass

    def wait_for_everyone(self):
        pass

    def clip_grad_norm_(self, parameters, max_norm, norm_type=2):
        return nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)

    def autocast(self, *args, **kwargs):
        return contextlib.nullcontext()

    def accumulate(self, *models):
        return contextlib.nullcontext()

    def no_sync(self, *models):
        return contextlib.nullcontext()


class _Tqdm:
    """tqdm: iterates its iterable; its methods do nothing."""

    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable = iterable if iterable is not None else ()

    def __iter__(self):
        return iter(self.iterable)

    def __len__(self):
        return len(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return lambda *args, **kwargs: None

    @staticmethod
    def write(*args, **kwargs):
        pass


def _trange(*args, **kwargs):
    return _Tqdm(range(*args))


class Schedule:
    """smalldiffusion's Schedule as the answers use it: levels, one drawn per example, sub-sampled walks."""

    def __init__(self, sigmas: Tensor, generator: torch.Generator | None = None, emit=None):
        self.sigmas = torch.as_tensor(sigmas)
        self._generator = generator
        self._emit = emit

    def __len__(self) -> int:
        return len(self.sigmas)

    def __getitem__(self, i):
        return self.sigmas[i]

    def __iter__(self):
        return iter(self.sigmas)

    def sample_sigmas(self, steps: int) -> Tensor:
        """k + 1 decreasing levels by trailing spacing, from the sigma core [6.S183 Q2]."""
        return sample_sigmas(self.sigmas.double(), int(steps)).to(self.sigmas.dtype)

    def sample_batch(self, x0: Tensor) -> Tensor:
        """One level per example of the batch x0, uniform over the schedule, shaped (batch,) [6.S183 Q2]."""
        site = student_site(2)
        with _internal():
            index = torch.randint(len(self), (x0.shape[0],), generator=self._generator)
        sigma = self.sigmas[index].to(x0)
        if self._emit is not None:
            self._emit("sigma_draw", index=snap(index), value=snap(sigma), **_site_fields(site))
        return sigma


class ScheduleLogLinear(Schedule):
    """N log-spaced levels from sigma_min to sigma_max (the sigma core's) [6.S183 Q2]."""

    def __init__(self, N: int = 200, sigma_min: float = 0.005, sigma_max: float = 10.0):
        super().__init__(log_linear_sigmas(int(N), float(sigma_min), float(sigma_max)).float())


def probe_answer(x: Tensor, sigma) -> Tensor:
    """The probe network's answer: a fixed, smooth, non-linear function of (x, sigma), per example.

    Deterministic (the same input gives the same answer, so recomputing a prediction changes
    nothing) and far from any linear combination of its inputs (so a sampler's coefficients on its
    answers are identifiable from one run).
    """
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim and s.numel() == x.shape[0]:
        s = s.reshape(-1, *([1] * (x.ndim - 1)))
    elif s.numel() != 1:
        raise ValueError(
            f"eps_theta(x, sigma): sigma has {s.numel()} values of shape {tuple(s.shape)} for a batch "
            f"x of shape {tuple(x.shape)} (one level, or one per example)"
        )
    else:
        s = s.reshape(())
    ls = torch.log(s.abs().clamp_min(1e-12))
    return torch.sin(1.3 * x + 0.7 * x.roll(1, dims=-1) + 0.4 * ls + 0.3) + 0.5 * torch.cos(0.9 * x * x - 0.6 * ls)


class ProbeModel(nn.Module):
    """The network handed to the student's functions: eps_theta(x, sigma) answers, each call recorded."""

    def __init__(
        self,
        emit,
        generator: torch.Generator,
        *,
        input_dims=(2,),
        dtype=torch.float64,
        answer=None,
        record_tensors: bool = True,
        trainable: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.ones((), dtype=dtype))
        self.input_dims = tuple(input_dims)
        self._emit, self._generator, self._dtype = emit, generator, dtype
        self._answer = answer or probe_answer
        self._record, self._trainable = record_tensors, trainable
        self._calls = count()

    def rand_input(self, batchsize: int) -> Tensor:
        """batchsize draws of N(0, I) of shape input_dims, from the verifier's generator (recorded)."""
        site = student_site(2)
        with _internal():
            z = torch.randn((int(batchsize), *self.input_dims), generator=self._generator, dtype=self._dtype)
        self._emit("rand_input", batchsize=int(batchsize), value=snap(z), **_site_fields(site))
        return z

    def predict_eps(self, x, sigma, cond=None):
        return self(x, sigma)

    def forward(self, x, sigma, cond=None):
        site = student_site(2)
        i = next(self._calls)
        if not isinstance(x, Tensor):
            raise TypeError(f"eps_theta(x, sigma): x must be a tensor, got {type(x).__name__}")
        s = sigma if isinstance(sigma, Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
        out = self._answer(x, sigma)
        if self._trainable:
            out = self.weight.to(out.dtype) * out
        fields = dict(call=i, x_shape=list(x.shape), sigma_shape=list(s.shape), **_site_fields(site))
        if self._record:
            fields.update(x=snap(x), sigma=snap(s, torch.float64), out=snap(out))
            self._emit("net", **fields)
        elif i < 64:  # the law runs: only the samples are used; a per-example loop must not flood the channel
            fields.update(sigma=snap(s.reshape(-1)[:1], torch.float64))
            self._emit("net", **fields)
        if self._trainable and out.requires_grad:
            out.register_hook(lambda g, i=i: self._emit("grad", call=i, grad=snap(g)))
        return out


class ProbeLoader:
    """A loader of the verifier's batches x0; each batch handed out is recorded."""

    def __init__(self, batches: list[Tensor], emit):
        self.batches, self._emit = batches, emit
        self.batch_size = batches[0].shape[0] if batches else 0
        self.dataset = torch.cat(batches) if batches else torch.zeros(0)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for i, x0 in enumerate(self.batches):
            self._emit("batch", index=i, x0=snap(x0))
            yield x0.clone()


_draw_ids = count()


@contextlib.contextmanager
def recorded_draws(generator: torch.Generator, emit, seed: int = 0):
    """Route the student's draws (torch.randn, randn_like, normal, rand, randint, Tensor.normal_, numpy's)
    through the verifier's generator and record each with its value, function and cell and line.

    A draw made outside the student's code (no notebook frame on the stack) is left alone.
    """
    import numpy as np

    np_rng = np.random.default_rng(seed)
    originals: dict[str, Callable[..., Any]] = {}  # torch's and numpy's own draw functions, by patch key

    def record(fn, value, **extra):
        site = student_site(3)
        emit(
            "draw",
            id=next(_draw_ids),
            fn=fn,
            value=snap(value) if isinstance(value, Tensor) else value,
            **extra,
            **_site_fields(site),
        )
        return value

    def mine() -> bool:
        return not _INTERNAL[0] and student_site(3) is not None

    def _shape(args, kwargs):
        size = kwargs.pop("size", None)
        if size is None:
            size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
        return tuple(int(s) for s in size)

    def randn(*args, **kwargs):
        if not mine():
            return originals["randn"](*args, **kwargs)
        own = kwargs.pop("generator", None) is not None
        kwargs.pop("out", None)
        shape = _shape(args, kwargs)
        return record("torch.randn", originals["randn"](shape, generator=generator, **kwargs), own_generator=own)

    def rand(*args, **kwargs):
        if not mine():
            return originals["rand"](*args, **kwargs)
        own = kwargs.pop("generator", None) is not None
        kwargs.pop("out", None)
        shape = _shape(args, kwargs)
        return record("torch.rand", originals["rand"](shape, generator=generator, **kwargs), own_generator=own)

    def like(name, base):
        def draw(x, *args, **kwargs):
            if not mine():
                return originals[name](x, *args, **kwargs)
            own = kwargs.pop("generator", None) is not None
            kwargs.pop("memory_format", None)
            kw = dict(dtype=kwargs.get("dtype") or x.dtype, device=kwargs.get("device") or x.device)
            value = originals[base](tuple(x.shape), generator=generator, **kw)
            if kwargs.get("requires_grad"):
                value.requires_grad_(True)
            return record(f"torch.{name}", value, own_generator=own)

        return draw

    def normal(*args, **kwargs):
        if not mine():
            return originals["normal"](*args, **kwargs)
        own = kwargs.pop("generator", None) is not None
        value = originals["normal"](*args, generator=generator, **kwargs)
        mean = args[0] if args else kwargs.get("mean", 0.0)
        std = args[1] if len(args) > 1 else kwargs.get("std", 1.0)
        simple = lambda v: float(v) if not isinstance(v, Tensor) or v.numel() == 1 else None  # noqa: E731
        return record("torch.normal", value, own_generator=own, mean=simple(mean), std=simple(std))

    def randint(*args, **kwargs):
        if not mine():
            return originals["randint"](*args, **kwargs)
        own = kwargs.pop("generator", None) is not None
        return record("torch.randint", originals["randint"](*args, generator=generator, **kwargs), own_generator=own)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        if not mine():
            return originals["normal_"](self, mean, std, generator=generator)
        originals["normal_"](self, mean, std, generator=globals_generator[0])
        return record("Tensor.normal_", self, own_generator=generator is not None, mean=float(mean), std=float(std))

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        if not mine():
            return originals["uniform_"](self, a, b, generator=generator)
        originals["uniform_"](self, a, b, generator=globals_generator[0])
        return record("Tensor.uniform_", self, own_generator=generator is not None)

    def np_draw(name, make):
        def draw(*args, **kwargs):
            if not mine():
                return originals[f"np.{name}"](*args, **kwargs)
            value = make(*args, **kwargs)
            record(f"numpy.random.{name}", torch.as_tensor(np.asarray(value)), own_generator=False)
            return value

        return draw

    globals_generator = [generator]
    patches = {
        (torch, "randn"): randn,
        (torch, "rand"): rand,
        (torch, "randn_like"): like("randn_like", "randn"),
        (torch, "rand_like"): like("rand_like", "rand"),
        (torch, "normal"): normal,
        (torch, "randint"): randint,
        (torch.Tensor, "normal_"): normal_,
        (torch.Tensor, "uniform_"): uniform_,
        (np.random, "randn"): np_draw("randn", lambda *s: np_rng.standard_normal(s)),
        (np.random, "standard_normal"): np_draw("standard_normal", lambda size=None: np_rng.standard_normal(size)),
        (np.random, "normal"): np_draw("normal", lambda loc=0.0, scale=1.0, size=None: np_rng.normal(loc, scale, size)),
        (np.random, "rand"): np_draw("rand", lambda *s: np_rng.random(s)),
    }
    for owner, name in patches:
        key = f"np.{name}" if owner is np.random else name
        originals[key] = getattr(owner, name)
    try:
        for (owner, name), fn in patches.items():
            setattr(owner, name, fn)
        yield
    finally:
        for owner, name in patches:
            key = f"np.{name}" if owner is np.random else name
            setattr(owner, name, originals[key])


def _module(name: str, attrs: dict, fallback) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    # The namespace a package's own code would define: its public names, a module __getattr__ (PEP 562)
    # for every other name.
    module.__dict__.update(
        __all__=[k for k in attrs if not k.startswith("_")],
        __getattr__=lambda attr: (
            (_ for _ in ()).throw(AttributeError(attr)) if attr.startswith("__") else fallback(f"{name}.{attr}")
        ),
    )
    module.__path__ = []  # a package, so that its submodules import
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    return module


class _LibraryFunction:
    """smalldiffusion's own ``training_loop`` or ``samples``: calling it raises :class:`StandInUsed`.

    ``__s183_library__`` (its name) marks it for the observer, which tells the notebook's own
    definitions from the library's.
    """

    def __init__(self, name: str):
        self.__s183_library__ = name

    def __call__(self, *args, **kwargs):
        name = self.__s183_library__
        raise StandInUsed(f"smalldiffusion.{name}: the library's own {name}, not one the notebook defines")


class ModelMixin:
    """smalldiffusion's ModelMixin as a model class of the notebook may build on it."""

    input_dims: tuple = (2,)
    __call__: Callable[..., Tensor]  # the nn.Module the notebook's class also derives from: eps_theta(x, sigma)

    def rand_input(self, batchsize):
        return torch.randn((batchsize, *self.input_dims))

    def predict_eps(self, x, sigma, cond=None):
        return self(x, sigma) if cond is None else self(x, sigma, cond)


def get_sigma_embeds(batches, sigma, *args, **kwargs):
    """[sin(log sigma / 2), cos(log sigma / 2)] per example, as smalldiffusion encodes sigma [6.S183 Q2]."""
    sigma = torch.as_tensor(sigma).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(batches)
    return torch.stack([torch.sin(torch.log(sigma) / 2), torch.cos(torch.log(sigma) / 2)], dim=1)


@contextlib.contextmanager
def skip_dynamo_import():
    """Spare torch.optim's first call the import of torch._dynamo (seconds), made only to disable it.

    Optimizer methods are wrapped by ``torch._compile._disable_dynamo``, which imports torch._dynamo on
    the first call unless the function already carries its disabled twin; nothing in the verifier
    compiles, so within the block the function itself is that twin.
    """
    import torch.optim

    spared = []
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            continue
        for klass in cls.__mro__:
            for value in vars(klass).values():
                code, fn = getattr(value, "__code__", None), getattr(value, "__wrapped__", None)
                if (
                    code is not None
                    and fn is not None
                    and code.co_filename.endswith("_compile.py")
                    and getattr(fn, "__dynamo_disable", None) is None
                ):
                    fn.__dynamo_disable = fn
                    spared.append(fn)
    try:
        yield
    finally:
        for wrapped in spared:
            if getattr(wrapped, "__dynamo_disable", None) is wrapped:
                delattr(wrapped, "__dynamo_disable")  # not `del wrapped.x`: mypy narrows by `is` to Optional


class LightOptimizer(torch.optim.Optimizer):
    """What the student's ``torch.optim.AdamW(model.parameters(), lr=lr)`` builds in the verifier.

    Plain SGD steps.

    The probe network's one parameter does not need Adam, and torch's own optimisers import torch._dynamo
    on their first step (seconds a notebook). It is an ``Optimizer`` (param_groups, state_dict, lr
    schedulers work), with any keyword the real ones take accepted and kept in its defaults.
    """

    def __init__(self, params, lr=1e-3, *args, **kwargs):
        super().__init__(params, dict(kwargs, lr=float(lr) if not isinstance(lr, Tensor) else lr))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-float(group["lr"]))
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()


@contextlib.contextmanager
def light_optimizers():
    """Every optimiser class of torch.optim replaced by a :class:`LightOptimizer` of the same name.

    For the block.
    """
    import torch.optim

    saved = {}
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            saved[name] = cls
    try:
        for name in saved:
            setattr(torch.optim, name, type(name, (LightOptimizer,), {}))
        yield
    finally:
        for name, cls in saved.items():
            setattr(torch.optim, name, cls)


STANDIN_MODULES = ("smalldiffusion", "accelerate", "tqdm", "matplotlib", "IPython")


def install_modules() -> dict:
    """Bind the stood-in packages in sys.modules (installed or not); returns the entries they replace."""
    unavailable = Unavailable
    anything = lambda name: _Anything()  # noqa: E731
    sd = {
        "Schedule": Schedule,
        "ScheduleLogLinear": ScheduleLogLinear,
        "ModelMixin": ModelMixin,
        "get_sigma_embeds": get_sigma_embeds,
        "training_loop": _LibraryFunction("training_loop"),
        "samples": _LibraryFunction("samples"),
    }
    tq = {"tqdm": _Tqdm, "trange": _trange}
    modules = {
        "smalldiffusion": _module("smalldiffusion", sd, unavailable),
        "accelerate": _module("accelerate", {"Accelerator": Accelerator}, unavailable),
        "tqdm": _module("tqdm", tq, anything),
        "tqdm.auto": _module("tqdm.auto", tq, anything),
        "tqdm.notebook": _module("tqdm.notebook", tq, anything),
        "tqdm.autonotebook": _module("tqdm.autonotebook", tq, anything),
    }
    for name in (
        "matplotlib",
        "matplotlib.pyplot",
        "matplotlib.animation",
        "matplotlib.cm",
        "matplotlib.colors",
        "IPython",
        "IPython.display",
        "IPython.core",
        "IPython.core.display",
    ):
        modules[name] = _module(name, {}, anything)
    for sub in ("diffusion", "model", "data", "utils"):
        modules[f"smalldiffusion.{sub}"] = _module(f"smalldiffusion.{sub}", sd, unavailable)
    old = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    for name, module in modules.items():
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(modules[parent], child, module)
    return old
