"""The child side of ``ddpm verify --course 6.S183``.

Run the notebook's two answers, emit what they do.

:func:`observe` reads the notebook, runs only its imports and definitions (``notebook.plan``), and
drives the student's ``training_loop`` and ``samples`` on inputs the verifier chooses, with the
stand-ins of ``standins.py``. It emits raw records only — the cells, the batches handed out, every
draw with its value and cell and line, every network call with its input, sigma and answer (and the
gradient of the loss with respect to that answer), every yield, every exception with the student's
line — and decides nothing: ``decide.py`` computes every outcome in the parent.

The runs, in order (``config`` may change their sizes):
- ``train`` run 0: three batches of 32, two epochs (fresh noise across batches and epochs);
- ``train`` run 1: batches of 8 and 56, one epoch (a mean, not a sum: the loss's scale against B);
- ``sample`` runs 0-2: gam = 1, 1.5, 2 from a given xt over 9 levels, the probe network;
- ``sample`` run 3: xt = None, batchsize = 5, over 4 levels (the start);
- ``sample`` runs 4-5: gam = 1 and 2, xt = None, the exact eps* of N(m, c I) (the law).
"""

from __future__ import annotations

import builtins
import inspect
import sys
import traceback
import types
from pathlib import Path

import torch

from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas
from ddpm.verify.s183.notebook import STUDENT_FUNCTIONS, NotRun, cell_of_filename, plan, read_cells, run_definitions
from ddpm.verify.s183.standins import (
    ProbeLoader,
    ProbeModel,
    Schedule,
    install_modules,
    light_optimizers,
    recorded_draws,
    skip_dynamo_import,
    snap,
)

__all__ = ["observe", "default_config", "TRAIN_RUNS", "SAMPLE_RUNS"]

TRAIN_RUNS = ({"sizes": [32, 32, 32], "epochs": 2}, {"sizes": [8, 56], "epochs": 1})
SAMPLE_RUNS = (
    {"kind": "probe", "gam": 1.0, "xt": True, "batchsize": 24, "steps": 8},
    {"kind": "probe", "gam": 1.5, "xt": True, "batchsize": 24, "steps": 8},
    {"kind": "probe", "gam": 2.0, "xt": True, "batchsize": 24, "steps": 8},
    {"kind": "start", "gam": 1.0, "xt": False, "batchsize": 5, "steps": 3},
    {"kind": "law", "gam": 1.0, "xt": False, "batchsize": 20000, "steps": 10},
    {"kind": "law", "gam": 2.0, "xt": False, "batchsize": 20000, "steps": 10},
)
LAW_GAUSSIAN = {"m": [0.6, -0.4], "c": 0.25}


def default_config() -> dict:
    """The 6.S183 run's settings (all JSON): the seed, the runs, the Gaussian of the law check."""
    return {
        "seed": 0,
        "lr": 1e-3,
        "N": 200,
        "sigma_min": 0.005,
        "sigma_max": 10.0,
        "train_runs": [dict(r) for r in TRAIN_RUNS],
        "sample_runs": [dict(r) for r in SAMPLE_RUNS],
        "law": dict(LAW_GAUSSIAN),
    }


def _site_of(exc: BaseException) -> tuple[int | None, int | None]:
    cell = line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        c = cell_of_filename(frame.f_code.co_filename)
        if c is not None:
            cell, line = c, lineno
    return cell, line


_UNRUN: dict[str, str] = {}  # names the notebook sets only in statements not run -> where


def _error(emit, phase: str, run: int, exc: BaseException) -> None:
    from ddpm.verify.channel import ChannelError

    if isinstance(exc, ChannelError):  # the verifier's own record could not travel: its bug, never the student's
        raise exc
    cell, line = _site_of(exc)
    fields = {}
    name = getattr(exc, "name", None) if isinstance(exc, NameError) else None
    if isinstance(exc, NotRun):
        fields["unrun"] = str(exc)[:300]
    elif name and name in _UNRUN:
        fields["unrun"] = (
            f"{name} is set by a top-level statement the verifier does not run ({_UNRUN[name]}; only "
            "imports and definitions run)"
        )
    emit("error", phase=phase, run=run, type=type(exc).__name__, message=str(exc)[:500], cell=cell, line=line, **fields)


ALIASES = {
    "loader": ("loader", "dataloader", "data_loader", "data", "dl"),
    "model": ("model", "net", "network", "eps_model"),
    "schedule": ("schedule", "sched", "noise_schedule"),
    "epochs": ("epochs", "n_epochs", "num_epochs", "epoch"),
    "lr": ("lr", "learning_rate"),
    "sigmas": ("sigmas", "sigma", "levels"),
    "xt": ("xt", "x_t", "x", "xT", "x_T", "x_init", "x0", "init"),
    "gam": ("gam", "gamma", "g"),
    "batchsize": ("batchsize", "batch_size", "n", "num_samples", "bs"),
}


def bind(fn, template: list[tuple[str, object]]) -> tuple[list, dict]:
    """Arguments for ``fn`` from the template's (name, value) pairs.

    By name (or a usual alias), the rest by place.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [v for _, v in template], {}
    names = {p.name for p in params}
    kwargs, rest = {}, []
    for name, value in template:
        match = next((a for a in ALIASES.get(name, (name,)) if a in names and a not in kwargs), None)
        if match is not None:
            kwargs[match] = value
        else:
            rest.append((name, value))
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in kwargs]
    args = []
    for p, (_, value) in zip(positional, rest):
        if p.kind == p.POSITIONAL_OR_KEYWORD:
            kwargs[p.name] = value
        else:
            args.append(value)
    return args, kwargs


def _iterate(result, limit: int):
    """Up to ``limit`` items of what the function returned.

    It returns a generator, as the sheet asks, or any iterable.
    """
    if not hasattr(result, "__iter__") or isinstance(result, torch.Tensor):
        raise TypeError(f"it returned {type(result).__name__}, not a generator (the sheet's function yields)")
    it = iter(result)
    for _ in range(limit):
        try:
            yield next(it)
        except StopIteration:
            return


def _observe_training(fn, config: dict, emit) -> None:
    seed = int(config["seed"])
    for run, spec in enumerate(config["train_runs"]):
        gen = torch.Generator().manual_seed(seed * 7919 + 11 * run + 1)
        sizes, epochs = [int(b) for b in spec["sizes"]], int(spec["epochs"])
        batches = [(0.8 * torch.randn(b, 2, generator=gen) + torch.tensor([0.3, -0.2])).float() for b in sizes]
        emit("train_run", run=run, sizes=sizes, epochs=epochs)
        model = ProbeModel(emit, gen, dtype=torch.float32, trainable=True)
        sigmas = log_linear_sigmas(int(config["N"]), float(config["sigma_min"]), float(config["sigma_max"]))
        schedule = Schedule(sigmas.float(), gen, emit)
        loader = ProbeLoader(batches, emit)
        limit = len(sizes) * epochs + 8
        count = 0
        with recorded_draws(gen, emit, seed), light_optimizers(), skip_dynamo_import():
            try:
                args, kwargs = bind(
                    fn,
                    [
                        ("loader", loader),
                        ("model", model),
                        ("schedule", schedule),
                        ("epochs", epochs),
                        ("lr", float(config["lr"])),
                    ],
                )
                result = fn(*args, **kwargs)
                emit("train_returned", run=run, generator=isinstance(result, types.GeneratorType))
                for value in _iterate(result, limit):
                    emit("yield", phase="train", run=run, index=count, **_value_fields(value, keep=False))
                    count += 1
            except Exception as exc:  # noqa: BLE001 - the student's exception is a fact to report
                _error(emit, "train", run, exc)
        emit("run_end", phase="train", run=run, yields=count, limit=limit)


def _value_fields(value, keep: bool) -> dict[str, object]:
    if isinstance(value, bool) or value is None:
        return {"type": type(value).__name__, "value": None}
    if isinstance(value, (int, float)):
        return {"type": type(value).__name__, "value": float(value)}
    if isinstance(value, torch.Tensor):
        fields: dict[str, object] = {
            "type": "Tensor",
            "shape": list(value.shape),
            "dtype": str(value.dtype).replace("torch.", ""),
        }
        if value.numel() == 1 and not keep:
            fields["value"] = float(value.detach().reshape(()))
        elif keep and value.dtype.is_floating_point and not value.is_complex():
            fields["value"] = snap(value, torch.float64)
        else:
            fields["value"] = None
        return fields
    try:
        import numpy as np

        if isinstance(value, np.generic) and np.ndim(value) == 0:
            return {"type": type(value).__name__, "value": float(value)}
    except (ImportError, TypeError, ValueError):
        pass
    return {"type": type(value).__name__, "value": None}


def _law_answer(m, c):
    from ddpm.oracles import SigmaOptimalEps

    eps_star = SigmaOptimalEps.gaussian(m, c)

    def answer(x, sigma):
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        s = s.expand(x.shape[0]) if s.numel() == 1 else s
        return eps_star(x.to(torch.float64), s).to(x.dtype)

    return answer


def _observe_sampling(fn, config: dict, emit) -> None:
    seed = int(config["seed"])
    base = log_linear_sigmas(int(config["N"]), float(config["sigma_min"]), float(config["sigma_max"]))
    law = config["law"]
    for run, spec in enumerate(config["sample_runs"]):
        gen = torch.Generator().manual_seed(seed * 7919 + 101 * run + 5)
        sigmas = sample_sigmas(base, int(spec["steps"]))
        kind, gam, batchsize = spec["kind"], float(spec["gam"]), int(spec["batchsize"])
        xt = (torch.randn(batchsize, 2, generator=gen, dtype=torch.float64) * sigmas[0]) if spec["xt"] else None
        emit(
            "sample_run",
            run=run,
            probe=kind,
            gam=gam,
            batchsize=batchsize,
            sigmas=sigmas.clone(),
            xt=None if xt is None else xt.clone(),
            law=dict(law) if kind == "law" else None,
        )
        answer = _law_answer(law["m"], float(law["c"])) if kind == "law" else None
        model = ProbeModel(emit, gen, dtype=torch.float64, answer=answer, record_tensors=kind != "law")
        limit = len(sigmas) + 8
        count, last = 0, None
        with recorded_draws(gen, emit, seed):
            try:
                args, kwargs = bind(
                    fn,
                    [
                        ("model", model),
                        ("sigmas", sigmas.clone()),
                        ("xt", None if xt is None else xt.clone()),
                        ("gam", gam),
                        ("batchsize", batchsize),
                    ],
                )
                result = fn(*args, **kwargs)
                for value in _iterate(result, limit):
                    keep = kind != "law"
                    emit("yield", phase="sample", run=run, index=count, **_value_fields(value, keep=keep))
                    last = value
                    count += 1
            except Exception as exc:  # noqa: BLE001 - the student's exception is a fact to report
                _error(emit, "sample", run, exc)
        if kind == "law" and last is not None:
            emit("law_output", run=run, **_value_fields(last, keep=True))
        emit("run_end", phase="sample", run=run, yields=count, limit=limit)


def _describe(fn) -> dict:
    if fn is None:
        return {"status": "missing"}
    if getattr(fn, "__s183_library__", None):
        return {"status": "library"}
    inner = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(inner, "__code__", None)
    cell = cell_of_filename(code.co_filename) if code else None
    if not code or cell is None:
        return {"status": "other", "type": type(fn).__name__, "module": getattr(fn, "__module__", None)}
    return {
        "status": "notebook",
        "cell": cell,
        "line": code.co_firstlineno,
        "name": inner.__name__,
        "generator": inspect.isgeneratorfunction(inner),
    }


def observe(path: Path, config: dict, emit) -> None:
    """Run the notebook's definitions and drive its training_loop and samples [6.S183 Q2].

    Emit raw records.
    """
    config = {**default_config(), **(config or {})}
    torch.set_num_threads(1)
    try:
        nb = read_cells(Path(path))
    except Exception as exc:  # noqa: BLE001 - a file that is no notebook: said in one line, as a crash of loading
        raise ValueError(
            f"cannot read {Path(path).name} as a notebook or script: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    emit(
        "notebook",
        name=nb.name,
        form=nb.kind,
        cells=[
            {"number": c.number, "text": c.text, "first_line": c.first_line, "dropped": list(c.dropped)}
            for c in nb.cells
        ],
    )
    p = plan(nb)
    _UNRUN.clear()
    _UNRUN.update({k: nb.where(*v) for k, v in p.unrun.items()})
    emit(
        "plan",
        defines={k: list(v) for k, v in p.defines.items()},
        skipped=len(p.skipped),
        skipped_first=[list(s) for s in p.skipped[:5]],
        syntax_errors=[list(s) for s in p.syntax_errors],
    )
    old = install_modules()
    try:
        namespace = {"__name__": "__notebook__", "__builtins__": builtins}
        errors = run_definitions(p, namespace)
        functions = {name: _describe(namespace.get(name)) for name in STUDENT_FUNCTIONS}
        emit("definitions", errors=[list(e) for e in errors], functions=functions)
        if functions["training_loop"]["status"] == "notebook":
            _observe_training(namespace["training_loop"], config, emit)
        if functions["samples"]["status"] == "notebook":
            _observe_sampling(namespace["samples"], config, emit)
    finally:  # in the child this hardly matters; in-process (tests) the real packages come back
        for name, module in old.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
