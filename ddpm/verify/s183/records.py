"""The records of ``ddpm verify --course 6.S183`` as types: the schema the child's stream is held to.

Each kind of record the observer (``ddpm.verify.s183.observe``) writes is a frozen dataclass below; its
fields, in order, with their types, are the schema. :func:`group` reads a stream of records (channel
:class:`~ddpm.verify.channel.Record` objects, ``(kind, fields)`` pairs or dicts), holds each record to its
class and groups them: the notebook's three head records, then the training and the sampling runs, each
with the events that followed its start record. Anything the observer does not write — an unknown kind, a
missing, extra or mistyped field, a tensor of an exotic dtype — is :class:`Malformed`: the run cannot be
verified, and nothing is decided from it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, Union

import torch
from torch import Tensor

from ddpm.verify.channel import Record

__all__ = [
    "Malformed",
    "KINDS",
    "as_float64",
    "group",
    "Grouped",
    "Run",
    "Event",
    "CellRecord",
    "FunctionInfo",
    "Law",
    "NotebookRecord",
    "PlanRecord",
    "DefinitionsRecord",
    "TrainRun",
    "TrainReturned",
    "Batch",
    "SigmaDraw",
    "Draw",
    "Net",
    "Grad",
    "Yield",
    "Error",
    "RunEnd",
    "SampleRun",
    "RandInput",
    "LawOutput",
    "Crash",
]

STANDARD_NORMAL = {"torch.randn", "torch.randn_like", "numpy.random.randn", "numpy.random.standard_normal"}
# The verifier's stand-ins: an AttributeError on one of them is a stand-in's limit, not the code's maths.
STANDIN_TYPES = ("ProbeModel", "Schedule", "Accelerator", "ProbeLoader", "_Tqdm")


class Malformed(ValueError):
    """A record the observer does not write: the run cannot be verified."""


def left_out(*, or_none: bool = False) -> Any:
    """A field the observer may leave out; read as None then. ``or_none``: it may also be written as None."""
    return field(default=None, metadata={"left_out": True, "or_none": or_none})


# ---------------------------------------------------------------- the notebook's head records
@dataclass(frozen=True, kw_only=True)
class CellRecord:
    """One code cell as the child read it (``ddpm.verify.s183.notebook.Cell`` without its run source)."""

    number: int
    text: str
    first_line: int
    dropped: list[str]


@dataclass(frozen=True, kw_only=True)
class FunctionInfo:
    """What the notebook's name ``training_loop`` or ``samples`` is: ``status`` "notebook" (a function it
    defines, at ``cell``, ``line``), "library" (smalldiffusion's), "other" (of ``type``) or "missing"."""

    status: str
    cell: int | None = left_out()
    line: int | None = left_out()
    name: str | None = left_out()
    generator: bool | None = left_out()
    type: str | None = left_out()
    module: str | None = left_out(or_none=True)

    def __post_init__(self) -> None:
        if self.status == "notebook" and (self.cell is None or self.line is None or self.name is None):
            raise Malformed("a function of the notebook's without its cell, line or name")


@dataclass(frozen=True, kw_only=True)
class NotebookRecord:
    """The notebook's name, its form ("ipynb", "cells" or "script") and its code cells."""

    name: str
    form: str
    cells: list[CellRecord]


@dataclass(frozen=True, kw_only=True)
class PlanRecord:
    """What runs: the names defined, the statements skipped (the first few as (cell, line, words)) and the
    cells that do not parse, as (cell, line, message)."""

    defines: dict[str, object]
    skipped: int
    skipped_first: list[tuple[int, int, str]]
    syntax_errors: list[tuple[int, int, str]]


@dataclass(frozen=True, kw_only=True)
class DefinitionsRecord:
    """The definitions that raised, as (cell, line, message), and what the two answers' names are."""

    errors: list[tuple[int, int, str]]
    functions: dict[str, FunctionInfo]


# ---------------------------------------------------------------- a training run
@dataclass(frozen=True, kw_only=True)
class TrainRun:
    """Starts a training run: ``training_loop`` on batches of ``sizes`` for ``epochs`` epochs."""

    run: int
    sizes: list[object]
    epochs: int


@dataclass(frozen=True, kw_only=True)
class TrainReturned:
    """What calling ``training_loop`` returned: a generator or not."""

    run: int
    generator: bool


@dataclass(frozen=True, kw_only=True)
class Batch:
    """A batch x_0 the loader handed out."""

    index: int
    x0: Tensor


@dataclass(frozen=True, kw_only=True)
class SigmaDraw:
    """Levels drawn through the schedule stand-in: their indices and values sigma."""

    index: Tensor
    value: Tensor
    cell: int | None
    line: int | None


@dataclass(frozen=True, kw_only=True)
class Draw:
    """A random draw the code made.

    The function, its value (left out when it holds no tensor), whether the code passed a generator of its
    own, and beyond these fields what the function was told (torch.normal's ``mean`` and ``std``) in ``extra``.
    """

    id: int
    fn: str
    value: Tensor | float | None = left_out(or_none=True)
    own_generator: bool
    cell: int | None
    line: int | None
    extra: dict[str, object] = field(default_factory=dict)

    def standard_normal(self) -> bool:
        """Whether the draw is N(0, I) by its function and arguments."""
        if self.fn in STANDARD_NORMAL:
            return True
        if self.fn in ("torch.normal", "Tensor.normal_", "numpy.random.normal"):
            return self.extra.get("mean") in (0, 0.0) and self.extra.get("std") in (1, 1.0)
        return False


@dataclass(frozen=True, kw_only=True)
class Net:
    """A call of the probe network eps_theta(x, sigma): ``x`` and ``out`` are left out where the observer
    keeps no tensors (the law runs)."""

    call: int
    x_shape: list[object]
    sigma_shape: list[object]
    sigma: Tensor
    x: Tensor | None = left_out()
    out: Tensor | None = left_out()
    cell: int | None
    line: int | None


@dataclass(frozen=True, kw_only=True)
class Grad:
    """The loss's gradient with respect to the network's answer of call ``call``."""

    call: int
    grad: Tensor


@dataclass(frozen=True, kw_only=True)
class Yield:
    """A value the function yielded: its ``type``; ``value`` a float or a tensor where it holds one."""

    phase: str
    run: int
    index: int
    type: str
    value: Tensor | float | None = left_out(or_none=True)
    shape: list[object] | None = left_out()
    dtype: str | None = left_out()


@dataclass(frozen=True, kw_only=True)
class Error:
    """An exception the code raised during a run, where it was raised, and, as ``unrun``, what the code
    needed that the verifier does not run (a name set by a top-level statement)."""

    phase: str
    run: int
    type: str
    message: str
    cell: int | None
    line: int | None
    unrun: str | None = left_out()

    def verifier_limit(self) -> str | None:
        """The reason to say "cannot verify": the code failed in a stand-in, not in its own maths. Or None."""
        kind, msg = self.type, self.message
        if self.unrun:
            return f"the code needs something the verifier cannot give it: {self.unrun}"
        if kind == "StandInUsed":
            return (
                f"the code uses {msg}; the verifier stands in for smalldiffusion, accelerate and tqdm only as far as "
                "the sheet's training_loop and samples need them"
            )
        if kind == "AttributeError" and any(f"'{t}' object" in msg for t in STANDIN_TYPES):
            return f"the code uses something the verifier's stand-in does not have ({msg})"
        return None


@dataclass(frozen=True, kw_only=True)
class RunEnd:
    """A run ended: the yields counted against the limit the observer set."""

    phase: str
    run: int
    yields: int
    limit: int


# ---------------------------------------------------------------- a sampling run
@dataclass(frozen=True, kw_only=True)
class Law:
    """The Gaussian N(m, c I) whose exact eps* drives a law run."""

    m: list[float | int]
    c: float | int


@dataclass(frozen=True, kw_only=True)
class SampleRun:
    """Starts a run of ``samples``.

    Its kind (``probe``: "probe", "start" or "law"), gam, the batch size, the levels ``sigmas``, the start
    ``xt`` where one is given and, for a law run, the law.
    """

    run: int
    probe: str
    gam: float | int
    batchsize: int
    sigmas: Tensor
    xt: Tensor | None
    law: Law | None


@dataclass(frozen=True, kw_only=True)
class RandInput:
    """``model.rand_input(batchsize)`` called: its value z."""

    batchsize: int
    value: Tensor
    cell: int | None
    line: int | None


@dataclass(frozen=True, kw_only=True)
class LawOutput:
    """The last yield of a law run: the samples."""

    run: int
    type: str
    value: Tensor | float | None = left_out(or_none=True)
    shape: list[object] | None = left_out()
    dtype: str | None = left_out()


@dataclass(frozen=True, kw_only=True)
class Crash:
    """The child's observer itself failed: the notebook could not be run."""

    error: str
    traceback: str | None = left_out()


# kind: its record, in the observer's order.
KINDS: dict[str, type] = {
    "notebook": NotebookRecord,
    "plan": PlanRecord,
    "definitions": DefinitionsRecord,
    "train_run": TrainRun,
    "train_returned": TrainReturned,
    "batch": Batch,
    "sigma_draw": SigmaDraw,
    "draw": Draw,
    "net": Net,
    "grad": Grad,
    "yield": Yield,
    "error": Error,
    "run_end": RunEnd,
    "sample_run": SampleRun,
    "rand_input": RandInput,
    "law_output": LawOutput,
    "crash": Crash,
}
# What follows a run's start record.
Event = TrainReturned | Batch | SigmaDraw | Draw | Net | Grad | Yield | Error | RunEnd | RandInput | LawOutput


def as_float64(value: object, name: str) -> Tensor:
    """A field read as a tensor, in float64; anything else is :class:`Malformed`."""
    if not isinstance(value, Tensor):
        raise Malformed(f"{name} is {type(value).__name__}, not a tensor")
    return value.detach().to(torch.float64)


# ---------------------------------------------------------------- holding a record to its class
def _alternatives(hint: object) -> tuple[object, ...]:
    """The types a hint allows: ``A | B`` is (A, B), anything else is itself."""
    return typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)


def _runtime_type(hint: object) -> type:
    """What ``isinstance`` checks of a hint: a container's kind (list, dict, tuple); a record is a dict."""
    origin = typing.get_origin(hint)
    if isinstance(origin, type):
        return origin
    if isinstance(hint, type):
        return dict if dataclasses.is_dataclass(hint) else hint
    raise TypeError(f"no runtime type for {hint!r}")


def _is(value: object, hints: tuple[object, ...]) -> bool:
    """Whether ``value`` is of one of the hints' kinds.

    An ``int`` field takes no bool (an ``int | None`` field does, as the observer's schema always had it).
    """
    allowed = tuple(_runtime_type(h) for h in hints)
    return isinstance(value, allowed) and not (allowed == (int,) and isinstance(value, bool))


def _content(value: object, hint: object, what: str) -> object:
    """``value`` (already of the hint's kind) with what it holds held to the hint.

    A record class's fields, a list's or a dict's items; anything else as it is.
    """
    for h in _alternatives(hint):
        origin, args = typing.get_origin(h), typing.get_args(h)
        if isinstance(h, type) and dataclasses.is_dataclass(h) and isinstance(value, dict):
            return _record(h, value, what)
        if origin is list and isinstance(value, list):
            return [_item(v, args[0], f"{what}[{i}]") for i, v in enumerate(value)]
        if origin is dict and isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise Malformed(f"{what} has a key that is not text")
            return {k: _item(v, args[1], f"{what}[{k!r}]") for k, v in value.items()}
    return value


def _item(value: object, hint: object, what: str) -> object:
    """An item of a list or a dict, held to its hint; a tuple's entries one by one."""
    if hint is object:
        return value
    if typing.get_origin(hint) is tuple:
        entries = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(entries):
            raise Malformed(f"{what} is not {len(entries)} entries")
        return tuple(_item(v, h, f"{what}[{i}]") for i, (v, h) in enumerate(zip(value, entries)))
    if not _is(value, _alternatives(hint)):
        raise Malformed(f"{what} is {type(value).__name__}")
    return _content(value, hint, what)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _record(cls: type, f: object, what: str) -> object:
    """A ``cls`` from the fields ``f`` the observer wrote, else :class:`Malformed` naming ``what`` it is.

    In this order: each declared field present (unless it may be left out) and of its kind; no undeclared
    field (a draw keeps them in ``extra``) and no tensor of a dtype other than floating or int64; then
    what the containers hold.
    """
    if not isinstance(f, dict):
        raise Malformed(f"{what} whose fields are {type(f).__name__}")
    hints = _hints(cls)
    declared = [d for d in dataclasses.fields(cls) if d.name != "extra"]
    takes_extra = len(declared) < len(dataclasses.fields(cls))
    for d in declared:
        if d.name not in f:
            if d.metadata.get("left_out"):
                continue
            raise Malformed(f"{what} without {d.name!r}")
        allowed = _alternatives(hints[d.name])
        if d.metadata.get("left_out") and not d.metadata.get("or_none"):
            allowed = tuple(h for h in allowed if h is not type(None))  # None stands for "left out"
        if not _is(f[d.name], allowed):
            raise Malformed(f"{what} whose {d.name!r} is {type(f[d.name]).__name__}")
    names = {d.name for d in declared}
    for name, value in f.items():
        if name not in names and not takes_extra:
            raise Malformed(f"{what} with an unknown field {name!r}")
        if isinstance(value, Tensor) and not (value.dtype.is_floating_point or value.dtype == torch.int64):
            raise Malformed(f"{what} whose {name!r} has dtype {value.dtype}")
    values = {d.name: _content(f[d.name], hints[d.name], f"{what}'s {d.name}") for d in declared if d.name in f}
    if takes_extra:
        values["extra"] = {k: v for k, v in f.items() if k not in names}
    return cls(**values)


def parse(kind: str, fields: object) -> object:
    """The record of ``kind`` (one of :data:`KINDS`) from its fields, else :class:`Malformed`."""
    return _record(KINDS[kind], fields, f"a {kind!r} record")


# ---------------------------------------------------------------- the stream, grouped
Info = TypeVar("Info", TrainRun, SampleRun)
E = TypeVar("E")


@dataclass
class Run(Generic[Info]):
    """A run's start record and the events after it, in order."""

    info: Info
    events: list[Event] = field(default_factory=list)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Grouped:
    """The stream: the notebook's head records (None where missing), the runs, the observer's crashes."""

    notebook: NotebookRecord | None = None
    plan: PlanRecord | None = None
    definitions: DefinitionsRecord | None = None
    train: list[Run[TrainRun]] = field(default_factory=list)
    sample: list[Run[SampleRun]] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)


def _kind_fields(r: object) -> tuple[object, object]:
    if isinstance(r, Record):
        return r.kind, r.fields
    if isinstance(r, dict) and "kind" in r:
        return r["kind"], r.get("fields", {k: v for k, v in r.items() if k != "kind"})
    if isinstance(r, (tuple, list)) and len(r) == 2:
        return r[0], r[1]
    raise Malformed(f"a record of type {type(r).__name__}")


def group(records: Iterable[object]) -> Grouped:
    """The records held to their classes and grouped, else :class:`Malformed`.

    A record is a channel ``Record``, a ``(kind, fields)`` pair or a dict with ``kind``.
    """
    pairs = [_kind_fields(r) for r in records]
    g = Grouped()
    current: Run[TrainRun] | Run[SampleRun] | None = None
    for kind, f in pairs:
        if not isinstance(kind, str) or kind not in KINDS:
            raise Malformed(f"an unexpected record {kind!r}")
        record = parse(kind, f)
        if isinstance(record, (NotebookRecord, PlanRecord, DefinitionsRecord)):
            if getattr(g, kind) is not None:
                raise Malformed(f"a second {kind!r} record")
            setattr(g, kind, record)
        elif isinstance(record, Crash):
            g.crashes.append(record)
        elif isinstance(record, TrainRun):
            g.train.append(train := Run(record))
            current = train
        elif isinstance(record, SampleRun):
            g.sample.append(sample := Run(record))
            current = sample
        elif current is None:
            raise Malformed(f"a {kind!r} record before any run")
        elif isinstance(record, Event):
            current.events.append(record)
    return g
