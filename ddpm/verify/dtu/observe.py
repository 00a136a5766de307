"""The child side of the 02460 plug-in: run the student's DDPM on probes and emit raw records only.

``observe(path, config, emit)`` loads the file (standing in stubs for missing imports), builds the
DDPM around probe networks and calls its methods under replayable seeds:

- training: ``ROUNDS`` pairs of ``negative_elbo`` calls under one seed each, once at x_0 = 0 with the
  network answering 0 and once at a chosen x_0 with the network answering chosen tensors, and one
  ``loss`` call (falling back to image-shaped data when the file only runs on images);
- sampling: two ``sample`` runs under one seed, the first with the network answering 0, the second
  answering chosen tensors U_j *and* starting from a chosen state (x_T moved by a chosen delta: the
  first draw of the run is shifted), so that the parent can solve every step's coefficients exactly;
- the law: one ``sample`` run whose network answers the exact eps* of a known Gaussian, with t
  decoded through the training encoding (read off the training records by the parent's own function).

Every call is one ``call`` record: the probe's calls (x, t as given, the student's line), the draws
the code made (function, shape, line, own generator or not), what the method returned (or raised, with
the student's line) and the line it returned from. Uses of a stand-in for a missing package are
``stub_touch`` records. This module decides nothing: no verdict is computed here.
"""

from __future__ import annotations

import linecache
import random
import sys
import traceback
from pathlib import Path
from typing import TypedDict

import torch

from ddpm.verify import loader
from ddpm.verify.dtu.specs import ROUNDS, Config, sample_answers, start_shift, train_inputs
from ddpm.verify.dtu.trace import Draw, DrawTracer, restored, site
from ddpm.verify.probes import NetCall, Probe

__all__ = ["observe", "describe_returned", "CallRecord"]

MAX_TOUCHES = 64
MAX_TENSORS = 16


def describe_returned(value) -> tuple[torch.Tensor | None, str]:
    """What a method returned, as a CPU float tensor the channel can carry (or None), and in words."""
    if isinstance(value, torch.Tensor):
        words = f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}, on device {value.device.type}"
        if value.device.type == "meta" or value.is_sparse or value.is_complex() or value.is_quantized:
            return None, words
        try:
            out = value.detach().as_subclass(torch.Tensor).to("cpu")
            out = out.to(torch.float32) if out.dtype not in (torch.float32, torch.float64) else out
            return out.clone(), words
        except Exception:  # noqa: BLE001 - whatever the tensor is, it is described, not read
            return None, words
    try:
        out = torch.as_tensor(value, dtype=torch.float64)
        return out, f"a {type(value).__name__} (not a tensor) of shape {tuple(out.shape)}"
    except Exception:  # noqa: BLE001
        return None, f"a {type(value).__name__}, not a tensor"


class CallRecord(TypedDict):
    """The fields of a ``call`` record: one method called under a seed, and all it did."""

    method: str  # "negative_elbo", "loss" or "sample"
    role: str  # what the probe answered: "zero", "answer", "loss", "law"
    round: int
    seed: int
    image: bool  # the data were image-shaped
    out: torch.Tensor | None  # what the method returned, as ``describe_returned`` carries it
    out_desc: str
    error: str | None  # what the constructor or the method raised, in words
    error_site: str
    return_site: str  # the student's line the method returned from
    built: bool  # the constructor ran
    net: list[NetCall]
    draws: list[Draw]


def _error_site(exc: BaseException, path: str) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    if not frames:
        return ""
    return f"{Path(path).name}:{frames[-1].lineno}  {(frames[-1].line or '').strip()}"


class _Driver:
    """Builds the student's DDPM around a probe and calls one method under a seed, recording everything."""

    def __init__(self, cls: type, path: str, config: Config, tracer: DrawTracer):
        self.cls, self.path, self.config, self.tracer = cls, path, config, tracer

    def _seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy

            numpy.random.seed(seed % 2**32)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass

    def call(
        self, method: str, probe: Probe, arg, seed: int, role: str, round: int = 0, shift: torch.Tensor | None = None
    ) -> CallRecord:
        """``DDPM(probe, ...).method(arg)`` with the global generators seeded.

        The fields of a ``call`` record.
        """
        c = self.config
        out: torch.Tensor | None = None
        error: str | None = None
        out_desc = error_site = return_site = ""
        built = True
        returns: list[tuple[int, str]] = []
        path = self.path

        def profile(frame, event, arg):
            if event == "return" and frame.f_code.co_filename == path:
                returns.append((frame.f_lineno, frame.f_code.co_name))

        self.tracer.on_draw = lambda: len(probe.calls)
        try:
            model = self.cls(probe, beta_1=c.beta_1, beta_T=c.beta_T, T=c.T)
        except BaseException as exc:  # noqa: BLE001 - the student's failure, recorded
            if isinstance(exc, KeyboardInterrupt):
                raise
            built = False
            error = f"DDPM(network, beta_1, beta_T, T) raised {loader.describe_exception(exc, path)}"
            error_site = _error_site(exc, path)
            model = None
        self.tracer.shift = shift  # the method's first draw (x_T in sample) moved by this chosen delta
        with self.tracer.recording() as draws:
            if model is not None:
                self._seed(seed)
                own_profiler = sys.getprofile() is None  # never displace a profiler someone else runs
                if own_profiler:
                    sys.setprofile(profile)
                try:
                    with torch.no_grad():
                        value = getattr(model, method)(arg)
                    out, out_desc = describe_returned(value)
                except BaseException as exc:  # noqa: BLE001 - SystemExit too: the student's failure, recorded
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    error = f"{method} raised {loader.describe_exception(exc, path)}"
                    error_site = _error_site(exc, path)
                finally:
                    if own_profiler:
                        sys.setprofile(None)
        self.tracer.shift = None
        mine = [line for line, name in returns if name == method]
        if mine:
            return_site = f"{Path(path).name}:{mine[-1]}  " + _source_line(path, mine[-1])
        return CallRecord(
            method=method,
            role=role,
            round=round,
            seed=seed,
            image=c.image,
            out=out,
            out_desc=out_desc,
            error=error,
            error_site=error_site,
            return_site=return_site,
            built=built,
            net=probe.calls,
            draws=list(draws),
        )


def _source_line(path: str, lineno: int) -> str:
    return linecache.getline(path, lineno).strip()


def _schedule_tensors(model, T: int) -> dict[str, torch.Tensor]:
    """The model's 1-D float tensors of length T or T + 1 (attributes, parameters, buffers), by name."""
    found: dict[str, torch.Tensor] = {}
    items = list(vars(model).items())
    if isinstance(model, torch.nn.Module):
        items += list(model.named_parameters(recurse=False)) + list(model.named_buffers(recurse=False))
    for name, value in items:
        if (
            isinstance(value, torch.Tensor)
            and value.dim() == 1
            and value.numel() in (T, T + 1)
            and value.is_floating_point()
            and value.device.type != "meta"
            and len(found) < MAX_TENSORS
        ):
            found[str(name)] = value.detach().to("cpu", torch.float64).clone()
    return found


def _training(d: _Driver, c: Config, rounds: range) -> list[CallRecord]:
    x0, answer = train_inputs(c)
    B, D = c.batch, c.dim
    shape = c.shape(B, D)
    calls: list[CallRecord] = []
    for k in rounds:
        seed = c.replay_seed(k)
        calls.append(d.call("negative_elbo", Probe(d.path), torch.zeros(shape), seed, "zero", k))
        respond = lambda x, t, j, k=k: answer[k]  # noqa: E731
        calls.append(d.call("negative_elbo", Probe(d.path, respond), x0[k].reshape(shape), seed, "answer", k))
        if k == 0:
            respond0 = lambda x, t, j: answer[0]  # noqa: E731
            calls.append(d.call("loss", Probe(d.path, respond0), x0[0].reshape(shape), seed, "loss", 0))
    return calls


def observe(path, config: dict, emit) -> None:
    """Run the file's DDPM on the verifier's probes and ``emit`` what it did; decides nothing."""
    c = Config.from_dict(config)
    path = str(Path(path).resolve())
    with restored():
        torch.set_num_threads(1)
        tracer = DrawTracer(path)
        tracer.install()
        hook, running = loader.on_touch, [False]
        touched: set[tuple[str, str]] = set()  # (package, the student's line): one stub_touch record each

        def on_touch(name: str, what: str) -> None:
            where = site(path, sys._getframe(1)) or ""
            key = (name.split(".")[0], where)
            if running[0] and key not in touched and len(touched) < MAX_TOUCHES:
                touched.add(key)
                emit("stub_touch", module=name, what=what, site=where)

        loader.on_touch = on_touch
        try:
            _observe(path, c, emit, tracer, running)
        finally:
            loader.on_touch = hook
            tracer.uninstall()


def _observe(path: str, c: Config, emit, tracer: DrawTracer, running: list) -> None:
    try:
        cls, stubbed = loader.load_ddpm_class(path)
    except loader.LoadError as exc:
        emit("load_error", error=str(exc))
        return
    emit("loaded", file=Path(path).name, stubbed=list(stubbed))
    running[0] = True
    d = _Driver(cls, path, c, tracer)

    # What the constructor stores: a hint for the schedule spec, never its evidence.
    try:
        model = cls(Probe(path), beta_1=c.beta_1, beta_T=c.beta_T, T=c.T)
    except BaseException as exc:  # noqa: BLE001 - the student's failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        emit("load_error", error=f"DDPM(network, beta_1, beta_T, T) raised {loader.describe_exception(exc, path)}")
        return
    emit("built", tensors=_schedule_tensors(model, c.T))

    first = _training(d, c, range(1))
    flat_shape = list(c.shape(c.batch, c.dim))
    if any(f["error"] or any(n["x_shape"] != flat_shape for n in f["net"]) for f in first):
        image = Config.from_dict(dict(c.to_dict(), image=True))
        d_image = _Driver(cls, path, image, tracer)
        trial = _training(d_image, image, range(1))
        image_shape = list(image.shape(c.batch, c.dim))
        if not any(f["error"] or any(n["x_shape"] != image_shape for n in f["net"]) for f in trial):
            flat_error = next((f["error"] for f in first if f["error"]), None) or next(
                f"negative_elbo gives the network x of shape {tuple(n['x_shape'])}"
                for f in first
                for n in f["net"]
                if n["x_shape"] != flat_shape
            )
            emit("shape_fallback", error=flat_error, shape=list(image.shape(c.batch, c.dim)))
            c, d, first = image, d_image, trial
    train_calls = first + _training(d, c, range(1, ROUNDS))
    for fields in train_calls:
        emit("call", **fields)

    B, D = c.batch, c.dim
    shape = c.shape(B, D)
    answers, shift = sample_answers(c), start_shift(c)
    seed = c.replay_seed(100)
    emit("call", **d.call("sample", Probe(path), shape, seed, "zero"))
    respond = lambda x, t, j: answers[j % len(answers)]  # noqa: E731
    emit("call", **d.call("sample", Probe(path, respond), shape, seed, "answer", shift=shift.reshape(shape)))

    _law(d, c, train_calls, emit)


def _law(d: _Driver, c: Config, train_calls: list[CallRecord], emit) -> None:
    """The end-to-end run.

    eps* of a Gaussian answers, t decoded by the training encoding the records show.

    The encoding is read off the training records with the parent's own function
    (:func:`ddpm.verify.training.encoding_of_calls`); the plan is emitted so that the parent can check
    it against the one it reads itself.
    """
    from ddpm.oracles import OptimalEps
    from ddpm.verify.training import LAW_DATA, encoding_of_calls

    encoding = encoding_of_calls(c, train_calls)
    if not encoding:
        emit("law_plan", steps=[], codes=[])
        return
    steps = torch.tensor(sorted(encoding))
    codes = torch.tensor([encoding[int(t)] for t in steps], dtype=torch.float64)
    emit("law_plan", steps=steps.tolist(), codes=codes.tolist())
    eps_star = OptimalEps(LAW_DATA, c.schedule)
    N, D = c.law_samples, LAW_DATA.dim
    shape = c.shape(N, D)

    def respond(x: torch.Tensor, enc: torch.Tensor | None, j: int) -> torch.Tensor | None:
        if enc is None or x.numel() != N * D:
            return None
        t = steps[(enc[:, None] - codes[None, :]).abs().argmin(1)]  # the trained step nearest the code
        return eps_star(x.reshape(N, D).double(), t).float()

    emit("call", **d.call("sample", Probe(d.path, respond, keep_x=False), shape, c.replay_seed(200), "law"))
