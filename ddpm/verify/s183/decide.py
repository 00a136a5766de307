"""The parent side of ``ddpm verify --course 6.S183``: every outcome from the child's records alone.

Nothing of the student's is imported here: the records carry the notebook's text, the batches, the
draws, the network's inputs and answers, the loss's gradient with respect to those answers and the
yields; the expected values come from the sigma core (``ddpm.sigma_schedule``, ``ddpm.sigma_sampler``),
never from a copy. Each spec is decided on its own evidence:

- the loss: the network's input is regressed, example by example, on each draw the code made
  (x_in - x_0 = a_i eps_i, a_i = sigma_i), the gradient on eps_theta - T for candidate targets T,
  and the yielded value against mean((eps_theta - eps)^2) over batches of different sizes;
- the sampler: it is deterministic and linear in the network's answers, so every tensor it makes
  (the network's inputs, the yields) is a combination of the start and the answers so far, with
  coefficients recovered exactly by least squares over the batch. Each step is held, from the
  code's own state, to ``gam_mu_step(x, sigma_t, sigma_{t-1}, eps_bar(eps, eps_prev, gam))``
  applied to coefficient vectors — the core's own functions;
- the law: the samples driven by the exact eps* of N(m, c I) against ``gaussian_gam_law``
  (``ddpm.stats.check_mc``, false-alarm rate 1e-6 per check).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

import torch

from ddpm.sigma_sampler import eps_bar, gam_mu_step, gaussian_gam_law
from ddpm.sigma_schedule import log_linear_sigmas
from ddpm.stats import check_mc
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome
from ddpm.verify.s183.notebook import where as _where
from ddpm.verify.s183.specs import LOSS_SPECS, SAMPLE_SPECS, SPECS_S183

__all__ = ["decide", "EXPECTED_KINDS"]

EXPECTED_KINDS = {
    "notebook",
    "plan",
    "definitions",
    "train_run",
    "train_returned",
    "batch",
    "sigma_draw",
    "draw",
    "net",
    "grad",
    "yield",
    "error",
    "run_end",
    "sample_run",
    "rand_input",
    "law_output",
    "crash",
}
RTOL = 1e-4  # float32 training: values agree to ~1e-6 relative; every planted mistake is off by O(1)
COEF_TOL = 2e-5  # sampler coefficients (float64 inputs; float32 arithmetic in the file stays far below this)
STANDIN_TYPES = ("ProbeModel", "Schedule", "Accelerator", "ProbeLoader", "_Tqdm")


class Malformed(ValueError):
    """A record the observer does not write: the run cannot be verified."""


def _kind_fields(r) -> tuple[str, dict]:
    if hasattr(r, "kind") and hasattr(r, "fields"):
        return r.kind, r.fields
    if isinstance(r, dict) and "kind" in r:
        return r["kind"], r.get("fields", {k: v for k, v in r.items() if k != "kind"})
    if isinstance(r, (tuple, list)) and len(r) == 2:
        return r[0], r[1]
    raise Malformed(f"a record of type {type(r).__name__}")


def _t(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Malformed(f"{name} is {type(value).__name__}, not a tensor")
    return value.detach().to(torch.float64)


def _f(x: float) -> str:
    return f"{x:.6g}"


def _vec(t: torch.Tensor, k: int = 3) -> str:
    v = t.reshape(-1)[:k].tolist()
    return "[" + ", ".join(_f(x) for x in v) + (", ...]" if t.numel() > k else "]")


# ---------------------------------------------------------------- the notebook's text
class Source:
    """The notebook's cells as the child read them: line texts, places and the AST of the two functions."""

    def __init__(self, nb: dict, plan: dict, definitions: dict):
        self.form, self.name = nb.get("form", "ipynb"), nb.get("name", "")
        self.cells = {int(c["number"]): c for c in nb.get("cells", [])}
        self.plan, self.definitions = plan, definitions

    def where(self, cell, line) -> str:
        if cell is None:
            return "outside the notebook"
        return _where(self.form, list(self.cells.values()), int(cell), int(line))

    def line(self, cell, line) -> str:
        if cell is None or line is None:
            return ""
        text = self.cells.get(int(cell), {}).get("text", "").split("\n")
        body = text[int(line) - 1].strip() if 0 < int(line) <= len(text) else ""
        return f"{self.where(cell, line)}:  {body}"

    def function(self, name: str) -> ast.FunctionDef | None:
        info = self.definitions.get("functions", {}).get(name, {})
        if info.get("status") != "notebook":
            return None
        text = self.cells.get(int(info["cell"]), {}).get("text", "")
        try:
            tree = ast.parse(_blank_magics(text))
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == info.get("name"):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if first <= info["line"] <= (node.end_lineno or node.lineno):
                    node.cell = int(info["cell"])
                    return node
        return None

    def yield_lines(self, name: str) -> list[str]:
        fn = self.function(name)
        if fn is None:
            return []
        lines = {n.lineno for n in ast.walk(fn) if isinstance(n, (ast.Yield, ast.YieldFrom))}
        for loop in [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While))]:
            if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(loop)):
                lines.add(loop.lineno)  # the loop that decides how many yields
        return [self.line(fn.cell, n) for n in sorted(lines)]

    def update_lines(self, name: str) -> list[str]:
        """The lines that compute what the function's yields read: inside its loops, the assignments to the
        yielded names and, transitively, to the names those read (the update, eps_bar, the loss, its input);
        before the loops, the assignments that set a name those lines read (eps_prev = None)."""
        fn = self.function(name)
        if fn is None:
            return []
        yielded = {
            n.id
            for y in ast.walk(fn)
            if isinstance(y, (ast.Yield, ast.YieldFrom)) and y.value is not None
            for n in ast.walk(y.value)
            if isinstance(n, ast.Name)
        }
        in_loops = {
            id(node) for loop in ast.walk(fn) if isinstance(loop, (ast.For, ast.While)) for node in ast.walk(loop)
        }
        assigns = []
        for node in ast.walk(fn):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                wrote = {t.id for tt in targets for t in ast.walk(tt) if isinstance(t, ast.Name)}
                read = {t.id for t in ast.walk(node.value) if isinstance(t, ast.Name)}
                assigns.append((node.lineno, wrote, read, id(node) in in_loops))
        names, lines, grew = set(yielded), set(), True
        while grew:
            grew = False
            for lineno, wrote, read, looped in assigns:
                if looped and lineno not in lines and wrote & names:
                    lines.add(lineno)
                    names |= read
                    grew = True
        lines |= {lineno for lineno, wrote, _, looped in assigns if not looped and wrote & (names - yielded)}
        return [self.line(fn.cell, n) for n in sorted(lines)]

    def start_lines(self, name: str) -> list[str]:
        """The lines before the function's loops that set what it yields (the start x_T)."""
        fn = self.function(name)
        if fn is None:
            return []
        yielded = {
            n.id
            for y in ast.walk(fn)
            if isinstance(y, (ast.Yield, ast.YieldFrom)) and y.value is not None
            for n in ast.walk(y.value)
            if isinstance(n, ast.Name)
        }
        in_loops = {
            id(node) for loop in ast.walk(fn) if isinstance(loop, (ast.For, ast.While)) for node in ast.walk(loop)
        }
        lines = sorted(
            {
                node.lineno
                for node in ast.walk(fn)
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                and id(node) not in in_loops
                and any(
                    isinstance(t, ast.Name) and t.id in yielded
                    for tt in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    for t in ast.walk(tt)
                )
            }
        )
        return [self.line(fn.cell, n) for n in lines]


def _blank_magics(text: str) -> str:
    from ddpm.verify.s183.notebook import _clean

    return _clean(text)[0]


# ---------------------------------------------------------------- grouping the records
@dataclass
class Run:
    phase: str
    info: dict
    events: list[tuple[str, dict]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict]:
        return [f for k, f in self.events if k == kind]


_T, _I, _N, _S = torch.Tensor, int, (int, float), str
_OPT_I = (int, type(None))
# kind: {field: type(s)} the observer always writes; "?name" is a field it may leave out.
SCHEMA = {
    "notebook": {"name": _S, "form": _S, "cells": list},
    "plan": {"defines": dict, "skipped": _I, "skipped_first": list, "syntax_errors": list},
    "definitions": {"errors": list, "functions": dict},
    "train_run": {"run": _I, "sizes": list, "epochs": _I},
    "train_returned": {"run": _I, "generator": bool},
    "batch": {"index": _I, "x0": _T},
    "sigma_draw": {"index": _T, "value": _T, "cell": _OPT_I, "line": _OPT_I},
    "draw": {
        "id": _I,
        "fn": _S,
        "?value": (_T, float, type(None)),
        "own_generator": bool,
        "cell": _OPT_I,
        "line": _OPT_I,
    },
    "net": {
        "call": _I,
        "x_shape": list,
        "sigma_shape": list,
        "sigma": _T,
        "?x": _T,
        "?out": _T,
        "cell": _OPT_I,
        "line": _OPT_I,
    },
    "grad": {"call": _I, "grad": _T},
    "yield": {
        "phase": _S,
        "run": _I,
        "index": _I,
        "type": _S,
        "?value": (_T, float, type(None)),
        "?shape": list,
        "?dtype": _S,
    },
    "error": {"phase": _S, "run": _I, "type": _S, "message": _S, "cell": _OPT_I, "line": _OPT_I, "?unrun": _S},
    "run_end": {"phase": _S, "run": _I, "yields": _I, "limit": _I},
    "sample_run": {
        "run": _I,
        "probe": _S,
        "gam": _N,
        "batchsize": _I,
        "sigmas": _T,
        "xt": (_T, type(None)),
        "law": (dict, type(None)),
    },
    "rand_input": {"batchsize": _I, "value": _T, "cell": _OPT_I, "line": _OPT_I},
    "law_output": {"run": _I, "type": _S, "?value": (_T, float, type(None)), "?shape": list, "?dtype": _S},
    "crash": {"error": _S, "?traceback": _S},
}


def _check(kind: str, f) -> None:
    """A record as the observer writes it, else :class:`Malformed` (the run cannot be verified)."""
    if not isinstance(f, dict):
        raise Malformed(f"a {kind!r} record whose fields are {type(f).__name__}")
    schema = SCHEMA[kind]
    for key, types in schema.items():
        name = key.lstrip("?")
        if name not in f:
            if key.startswith("?"):
                continue
            raise Malformed(f"a {kind!r} record without {name!r}")
        if not isinstance(f[name], types) or (types is _I and isinstance(f[name], bool)):
            raise Malformed(f"a {kind!r} record whose {name!r} is {type(f[name]).__name__}")
    for name, value in f.items():
        if name not in schema and f"?{name}" not in schema and kind not in ("draw",):
            raise Malformed(f"a {kind!r} record with an unknown field {name!r}")
        if isinstance(value, torch.Tensor) and not (value.dtype.is_floating_point or value.dtype == torch.int64):
            raise Malformed(f"a {kind!r} record whose {name!r} has dtype {value.dtype}")


def _runs(records: list[tuple[str, dict]]) -> tuple[dict, list[Run], list[Run], list[dict]]:
    head, train, sample, crashes = {}, [], [], []
    current = None
    for kind, f in records:
        if kind not in EXPECTED_KINDS:
            raise Malformed(f"an unexpected record {kind!r}")
        _check(kind, f)
        if kind in ("notebook", "plan", "definitions"):
            if kind in head:
                raise Malformed(f"a second {kind!r} record")
            head[kind] = f
        elif kind == "crash":
            crashes.append(f)
        elif kind == "train_run":
            current = Run("train", f)
            train.append(current)
        elif kind == "sample_run":
            current = Run("sample", f)
            sample.append(current)
        elif current is None:
            raise Malformed(f"a {kind!r} record before any run")
        else:
            current.events.append((kind, f))
    return head, train, sample, crashes


def _cannot(error: dict | None) -> str | None:
    """The reason to say "cannot verify" when the code failed inside a stand-in.

    The failure is in a stand-in rather than in the code's own maths.
    """
    if not error:
        return None
    kind, msg = error.get("type", ""), error.get("message", "")
    if error.get("unrun"):
        return f"the code needs something the verifier cannot give it: {error['unrun']}"
    if kind == "StandInUsed":
        return (
            f"the code uses {msg}; the verifier stands in for smalldiffusion, accelerate and tqdm only as far as "
            "the sheet's training_loop and samples need them"
        )
    if kind == "AttributeError" and any(f"'{t}' object" in msg for t in STANDIN_TYPES):
        return f"the code uses something the verifier's stand-in does not have ({msg})"
    return None


def _raised(src: Source, error: dict, fn: str) -> str:
    return f"{fn} raised {error['type']}: {error['message']} (at {src.where(error.get('cell'), error.get('line'))})"


# ---------------------------------------------------------------- the loss
@dataclass
class Step:
    """One batch of a training run: what was handed out and what the code did with it."""

    run: int
    index: int
    x0: torch.Tensor
    sigma_draws: list[dict] = field(default_factory=list)
    draws: list[dict] = field(default_factory=list)
    nets: list[dict] = field(default_factory=list)
    grads: dict = field(default_factory=dict)
    yields: list[dict] = field(default_factory=list)
    yield_before_net: bool = False


def _steps(run: Run, r: int) -> tuple[list[Step], list[dict]]:
    steps, preamble = [], []
    for kind, f in run.events:
        if kind == "batch":
            steps.append(Step(r, len(steps), _t(f["x0"], "batch.x0")))
        elif not steps:
            if kind == "draw":
                preamble.append(f)
            elif kind == "yield":
                raise Malformed("a yield before any batch")
        elif kind == "sigma_draw":
            steps[-1].sigma_draws.append(f)
        elif kind == "draw":
            steps[-1].draws.append(f)
        elif kind == "net":
            steps[-1].nets.append(f)
        elif kind == "grad":
            steps[-1].grads[int(f["call"])] = _t(f["grad"], "grad")
        elif kind == "yield":
            if not steps[-1].nets:
                steps[-1].yield_before_net = True
            steps[-1].yields.append(f)
    return steps, preamble


STANDARD_NORMAL = {"torch.randn", "torch.randn_like", "numpy.random.randn", "numpy.random.standard_normal"}


def _standard(draw: dict) -> bool:
    if draw["fn"] in STANDARD_NORMAL:
        return True
    if draw["fn"] in ("torch.normal", "Tensor.normal_", "numpy.random.normal"):
        return draw.get("mean") in (0, 0.0) and draw.get("std") in (1, 1.0)
    return False


def _fit_noise(d: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, float]:
    """a_i with d_i = a_i e_i per example (least squares), and the relative residual."""
    a = (d * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-30)
    resid = (d - a[:, None] * e).norm() / d.norm().clamp_min(1e-30)
    return a, float(resid)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = RTOL) -> bool:
    a, b = torch.broadcast_tensors(a, b)
    return bool(((a - b).abs() <= rtol * (1 + b.abs())).all())


def _scale_name(a: torch.Tensor, s: torch.Tensor) -> str | None:
    for name, want in (
        ("sigma^2", s * s),
        ("-sigma (x_0 - sigma eps: the wrong sign)", -s),
        ("1 (no sigma)", torch.ones_like(s)),
        ("sqrt(sigma)", s.sqrt()),
        ("sigma / 2", s / 2),
        ("2 sigma", 2 * s),
    ):
        if _close(a, want):
            return name
    if a.numel() > 1 and _close(a, a[:1].expand_as(a)):
        return f"one value ({_f(float(a[0]))}) for the whole batch, not each example's sigma"
    return None


@dataclass
class LossFacts:
    """What one batch shows; each spec reads its part."""

    step: Step
    net: dict | None = None
    sigma_ref: torch.Tensor | None = None
    sigma_net: torch.Tensor | None = None
    noise: dict | None = None
    noise_scale: torch.Tensor | None = None
    noise_resid: float = math.inf
    expanded: bool = False


def _in_levels(v: torch.Tensor | None, levels: torch.Tensor) -> bool:
    """Every value is one of the schedule's levels.

    to 1e-3 relative (a noise scale fitted from float32 data at
    sigma = 0.005 carries ~1e-5; neighbouring levels are 4% apart)."""
    if v is None or not v.numel():
        return False
    gap = (v.reshape(-1, 1) - levels.reshape(1, -1)).abs().min(1).values
    return bool((gap <= 1e-3 * v.abs().reshape(-1)).all())


def _loss_facts(step: Step, all_draws: list[dict], levels: torch.Tensor) -> LossFacts:
    facts = LossFacts(step)
    nets = [n for n in step.nets if isinstance(n.get("x"), torch.Tensor)]
    if not nets:
        return facts
    with_grad = [n for n in nets if int(n["call"]) in step.grads]
    facts.net = net = (with_grad or nets)[-1]
    x0, x_in = step.x0, _t(net["x"], "net.x")
    B = x0.shape[0]
    s = _t(net["sigma"], "net.sigma").reshape(-1)
    facts.sigma_net = s if s.numel() == B else s.expand(B) if s.numel() == 1 else None
    if step.sigma_draws:
        facts.sigma_ref = _t(step.sigma_draws[-1]["value"], "sigma_draw.value").reshape(-1)
    else:  # drawn by the code itself (randint on schedule.sigmas, ...): the network's sigma if it is a level
        facts.sigma_ref = facts.sigma_net if _in_levels(facts.sigma_net, levels) else None
    if x_in.shape != x0.shape:
        return facts
    d = x_in - x0
    best = None
    if float(d.norm()) <= 1e-6 * float(x0.norm()):
        return facts  # no noise reaches the network
    for draw in reversed(all_draws):
        e = _t(draw["value"], "draw.value")
        try:
            e_full = e.expand_as(x0)
        except RuntimeError:
            continue
        a, resid = _fit_noise(d, e_full)
        if best is None or resid < best[2]:
            best = (draw, a, resid, e.shape != x0.shape)
    if best is not None and best[2] < 1e-3:
        facts.noise, facts.noise_scale, facts.noise_resid, facts.expanded = best
    return facts


def _decide_loss(
    src: Source, train: list[Run], fn_lines: list[str], levels: torch.Tensor
) -> tuple[list[Outcome], list[str], str | None]:
    notes: list[str] = []
    facts: list[LossFacts] = []
    errors = []
    runs_steps = []
    for r, run in enumerate(train):
        steps, preamble = _steps(run, r)
        runs_steps.append((run, steps, preamble))
        seen = list(preamble)
        for step in steps:
            seen = seen + step.draws
            facts.append(_loss_facts(step, [d for d in seen if isinstance(d.get("value"), torch.Tensor)], levels))
        errors += run.of("error")
    for e in errors:
        why = _cannot(e)
        if why:
            return [], notes, why
    err = errors[0] if errors else None
    with_net = [f for f in facts if f.net is not None]

    def no_evidence(spec: str) -> Outcome:
        if err is not None:
            return _out(spec, FAIL, _raised(src, err, "training_loop"), [src.line(err.get("cell"), err.get("line"))])
        return _out(
            spec,
            FAIL if facts else UNDECIDED,
            "training_loop never called the network on a batch"
            if facts
            else "not decided: training_loop handed out no batch",
            fn_lines,
        )

    out = []
    # loss_input -------------------------------------------------------------------------------------------------
    if not with_net:
        out += [no_evidence(k) for k in ("loss_input", "loss_sigma", "loss_eps", "loss_target", "loss_reduction")]
    else:
        out.append(_loss_input(src, with_net, levels))
        out.append(_loss_sigma(src, with_net, levels))
        out.append(_loss_eps(src, with_net))
        target, targets = _loss_target(src, with_net)
        out.append(target)
        out.append(_loss_reduction(src, with_net, targets, notes))
    out.append(_loss_yields(src, runs_steps, err))
    return out, notes, None


def _out(spec: str, status: str, detail: str = "", lines=()) -> Outcome:
    """An outcome; the student's lines are shown where something is wrong or undecided, not on a pass."""
    shown = () if status == PASS else tuple(dict.fromkeys(x for x in lines if x))
    return Outcome(spec, status, detail, SPECS_S183[spec][1], shown)


def _net_line(src: Source, f: LossFacts) -> str:
    return src.line(f.net.get("cell"), f.net.get("line"))


def _loss_input(src: Source, facts: list[LossFacts], levels: torch.Tensor) -> Outcome:
    for f in facts:
        x0, x_in = f.step.x0, _t(f.net["x"], "net.x")
        where = f"batch {f.step.index + 1} of run {f.step.run + 1}"
        if x_in.shape != x0.shape:
            return _out(
                "loss_input",
                FAIL,
                f"{where}: the network's x has shape {tuple(x_in.shape)}, the batch x_0 {tuple(x0.shape)}",
                [_net_line(src, f)],
            )
        if f.noise is None:
            if _close(x_in, x0, 1e-6):
                detail = "the network sees x_0 itself, no noise added"
            else:
                i = 0
                detail = (
                    f"x_in is not x_0 plus a multiple of any draw the code made: example {i} x_0 = "
                    f"{_vec(x0[i])}, "
                    f"x_in = {_vec(x_in[i])}"
                )
            return _out("loss_input", FAIL, f"{where}: {detail}", [_net_line(src, f)])
        s = f.sigma_ref
        if s is None and _in_levels(f.noise_scale, levels) and not _close(f.noise_scale, f.noise_scale[:1]):
            continue  # levels the code drew itself, one per example, and told the network something else (loss_sigma)
        if s is None or not _close(f.noise_scale, s):
            draw_at = src.where(f.noise.get("cell"), f.noise.get("line"))
            name = _scale_name(f.noise_scale, s) if s is not None else None
            got = f"x_in = x_0 + a eps with a = {_vec(f.noise_scale)} (eps from {f.noise['fn']} at {draw_at})"
            want = f"a = sigma = {_vec(s)}" if s is not None else "a = sigma"
            detail = f"{where}: {got}; expected {want}" + (f": the noise is scaled by {name}" if name else "")
            return _out(
                "loss_input", FAIL, detail, [_net_line(src, f), src.line(f.noise.get("cell"), f.noise.get("line"))]
            )
    f = facts[0]
    return _out("loss_input", PASS, lines=[_net_line(src, f)])


def _schedule_levels(config: dict) -> torch.Tensor:
    """The levels of the schedule handed to training_loop (the observer's: float32, as the notebook's)."""
    return (
        log_linear_sigmas(
            int(config.get("N", 200)), float(config.get("sigma_min", 0.005)), float(config.get("sigma_max", 10.0))
        )
        .float()
        .double()
    )


def _loss_sigma(src: Source, facts: list[LossFacts], levels: torch.Tensor) -> Outcome:
    for f in facts:
        where = f"batch {f.step.index + 1} of run {f.step.run + 1}"
        sig = _t(f.net["sigma"], "net.sigma")
        B = f.step.x0.shape[0]
        lines = [_net_line(src, f)] + [src.line(d.get("cell"), d.get("line")) for d in f.step.sigma_draws[-1:]]
        if sig.numel() not in (1, B):
            return _out(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told {sig.numel()} levels of shape {tuple(sig.shape)} for a batch of {B}",
                lines,
            )
        if sig.numel() == 1 and B > 1:
            return _out(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told one level, {_f(float(sig))}, for the whole "
                f"batch of {B}; each example has its own sigma",
                lines,
            )
        s_net = sig.reshape(-1)
        if B >= 8 and bool((s_net == s_net[0]).all()):
            return _out(
                "loss_sigma",
                FAIL,
                f"{where}: every example of the batch of {B} gets the same sigma "
                f"{_f(float(s_net[0]))}: one level drawn per batch, not per example",
                lines,
            )
        if f.step.sigma_draws:
            ref = _t(f.step.sigma_draws[-1]["value"], "sigma").reshape(-1)
            if ref.numel() == B and not _close(s_net, ref):
                name = next(
                    (
                        n
                        for n, w in (("sigma^2", ref * ref), ("log sigma", ref.log()), ("sqrt(sigma)", ref.sqrt()))
                        if _close(s_net, w)
                    ),
                    None,
                )
                return _out(
                    "loss_sigma",
                    FAIL,
                    f"{where}: eps_theta is told {_vec(s_net)} for examples whose levels "
                    f"are sigma = {_vec(ref)}" + (f": it is told {name}" if name else ""),
                    lines,
                )
        if not f.step.sigma_draws and not _in_levels(s_net, levels):
            scale = f" (the noise added has scale {_vec(f.noise_scale)})" if f.noise_scale is not None else ""
            return _out(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told {_vec(s_net)}, which are not levels of the schedule{scale}",
                lines,
            )
    return _out("loss_sigma", PASS, lines=[_net_line(src, facts[0])])


def _loss_eps(src: Source, facts: list[LossFacts]) -> Outcome:
    used: dict[int, LossFacts] = {}
    for f in facts:
        where = f"batch {f.step.index + 1} of run {f.step.run + 1}"
        if f.noise is None:
            return _out(
                "loss_eps",
                UNDECIDED,
                f"not decided: in {where} no draw of the code's reaches the network's input (see loss_input)",
                [_net_line(src, f)],
            )
        d = f.noise
        line = [src.line(d.get("cell"), d.get("line"))]
        if not _standard(d):
            extra = f" (mean {d.get('mean')}, std {d.get('std')})" if "mean" in d else ""
            return _out("loss_eps", FAIL, f"{where}: eps is drawn by {d['fn']}{extra}, not N(0, I)", line)
        if f.expanded:
            return _out(
                "loss_eps",
                FAIL,
                f"{where}: eps has shape {tuple(d['value'].shape)}, one draw shared by the "
                f"batch of shape {tuple(f.step.x0.shape)} (broadcast): each example and coordinate needs its "
                "own",
                line,
            )
        if int(d["id"]) in used:
            first = used[int(d["id"])]
            return _out(
                "loss_eps",
                FAIL,
                f"{where} reuses the eps of batch {first.step.index + 1} of run "
                f"{first.step.run + 1} (drawn once at {src.where(d.get('cell'), d.get('line'))}): eps must be "
                "fresh for every batch",
                line,
            )
        used[int(d["id"])] = f
    own = [f for f in facts if f.noise is not None and f.noise.get("own_generator")]
    return _out(
        "loss_eps",
        PASS,
        "" if not own else "eps drawn with the file's own generator (the verifier drew it)",
        [src.line(facts[0].noise.get("cell"), facts[0].noise.get("line"))],
    )


def _candidates(f: LossFacts) -> dict[str, torch.Tensor]:
    x0, x_in = f.step.x0, _t(f.net["x"], "net.x")
    c = {}
    noise = f.noise
    if noise is None:  # no noise in the network's input: eps is still the batch's last standard normal draw
        noise = next(
            (
                d
                for d in reversed(f.step.draws)
                if _standard(d)
                and isinstance(d.get("value"), torch.Tensor)
                and tuple(d["value"].shape) == tuple(x0.shape)
            ),
            None,
        )
    if noise is not None:
        e = _t(noise["value"], "eps").expand_as(x0)
        c["eps"] = e
        c["-eps"] = -e
        if f.sigma_ref is not None:
            c["sigma eps"] = f.sigma_ref[:, None] * e
    c["x_0"] = x0
    c["x_0 + sigma eps (the network's input)"] = x_in
    c["0"] = torch.zeros_like(x0)
    return c


def _loss_target(src: Source, facts: list[LossFacts]) -> tuple[Outcome, dict]:
    """The target T from the gradient g = k (eps_theta - T), k > 0, in every batch.

    Undecided without a gradient.
    """
    targets, failure = {}, None
    for f in facts:
        where = f"batch {f.step.index + 1} of run {f.step.run + 1}"
        out = _t(f.net["out"], "net.out")
        g = f.step.grads.get(int(f.net["call"]))
        if g is None:
            continue
        if g.norm() == 0:
            failure = failure or _out(
                "loss_target",
                FAIL,
                f"{where}: the loss does not depend on the network's answer (zero gradient)",
                [_net_line(src, f)],
            )
            continue
        fits = []
        for name, T in _candidates(f).items():
            r = out - T
            k = float((g * r).sum() / (r * r).sum().clamp_min(1e-30))
            fits.append((float((g - k * r).norm() / g.norm()), name, k))
        resid, name, k = min(fits)
        targets[id(f)] = name if resid < 1e-3 else None
        if failure is not None:
            continue
        if resid >= 1e-3:
            failure = _out(
                "loss_target",
                FAIL,
                f"{where}: the loss's gradient with respect to eps_theta is not "
                "proportional to eps_theta - T for any target T (eps, x_0, ...): not a squared error "
                f"(best: T = {name}, residual {resid:.2g})",
                [_net_line(src, f)],
            )
        elif name != "eps" or k <= 0:
            what = f"the target is {name}" if name != "eps" else "the loss decreases as eps_theta moves away from eps"
            failure = _out(
                "loss_target",
                FAIL,
                f"{where}: {what}, not eps (the gradient is {_f(k)} (eps_theta - {name}))",
                [_net_line(src, f)],
            )
    if failure is not None:
        return failure, targets
    if not targets:
        return _out(
            "loss_target",
            UNDECIDED,
            "not decided: the loss was never backpropagated to the network's answer (no gradient reached it)",
            [_net_line(src, facts[0])],
        ), targets
    return _out("loss_target", PASS, lines=[_net_line(src, facts[0])]), targets


def _loss_reduction(src: Source, facts: list[LossFacts], targets: dict, notes: list[str]) -> Outcome:
    """L = c mean((eps_theta - T)^2) with one c > 0 over batches of different sizes."""
    cs = []
    for f in facts:
        ys = f.step.yields
        if not ys or ys[0].get("value") is None:
            continue
        name = targets.get(id(f)) or "eps"
        T = _candidates(f).get(name)
        if T is None:
            continue
        out = _t(f.net["out"], "net.out")
        m = float(((out - T) ** 2).mean())
        cs.append((float(ys[0]["value"]) / m if m > 0 else math.nan, f))
    if not cs:
        return _out(
            "loss_reduction",
            UNDECIDED,
            "not decided: no yielded loss value to compare (see loss_yields)",
            [_net_line(src, facts[0])],
        )
    c0, f0 = cs[0]
    for c, f in cs:
        B = f.step.x0.shape[0]
        if not (c > 0) or not math.isfinite(c):
            return _out(
                "loss_reduction",
                FAIL,
                f"batch {f.step.index + 1} of run {f.step.run + 1}: the loss is "
                f"{_f(c)} times mean((eps_theta - eps)^2); the scale must be positive",
                [_net_line(src, f)],
            )
        if abs(c - c0) > RTOL * (1 + abs(c0)) * 10:
            B0 = f0.step.x0.shape[0]
            hint = (
                " (it grows with the batch size: a sum over the batch, not a mean)"
                if abs(c / c0 - B / B0) < 1e-3
                else ""
            )
            return _out(
                "loss_reduction",
                FAIL,
                f"the loss is {_f(c0)} mean((eps_theta - eps)^2) on a batch of {B0} "
                f"but {_f(c)} times it on a batch of {B}{hint}",
                [_net_line(src, f)],
            )
    if abs(c0 - 1) > 1e-4:
        D = f0.step.x0.shape[1] if f0.step.x0.ndim > 1 else 1
        why = " (the squared norm over the D = 2 coordinates, averaged over the batch)" if abs(c0 - D) < 1e-3 else ""
        notes.append(
            f"loss_reduction: the loss is {_f(c0)} times mse_loss's mean of squares{why}; a constant scale "
            "c > 0 gives the same minimiser"
        )
    return _out("loss_reduction", PASS, lines=[_net_line(src, f0)])


def _loss_yields(src: Source, runs_steps, err) -> Outcome:
    lines = src.yield_lines("training_loop")
    for run, steps, _ in runs_steps:
        r = run.info["run"] + 1
        want = len(run.info["sizes"]) * int(run.info["epochs"])
        run_err = next(iter(run.of("error")), None)
        for s in steps:
            if len(s.yields) != 1:
                why = f" ({_raised(src, run_err, 'training_loop')})" if run_err and not s.yields else ""
                return _out(
                    "loss_yields",
                    FAIL,
                    f"run {r}: batch {s.index + 1} of size {s.x0.shape[0]} gives {len(s.yields)} yields, not one{why}",
                    lines + ([src.line(run_err.get("cell"), run_err.get("line"))] if why else []),
                )
            if s.yield_before_net:
                return _out(
                    "loss_yields",
                    FAIL,
                    f"run {r}: batch {s.index + 1}'s yield comes before the network "
                    "sees the batch: it is not this batch's loss",
                    lines,
                )
            if s.yields[0].get("value") is None:
                return _out(
                    "loss_yields",
                    FAIL,
                    f"run {r}: the yield is a {s.yields[0].get('type')}, not the loss's value (loss.item())",
                    lines,
                )
        if len(steps) != want:
            why = f"; {_raised(src, err, 'training_loop')}" if err else ""
            return _out(
                "loss_yields",
                FAIL,
                f"run {r}: {len(steps)} batches handed out for {len(run.info['sizes'])} "
                f"batches x {run.info['epochs']} epochs{why}",
                lines,
            )
    return _out("loss_yields", PASS, lines=lines[:1])


# ---------------------------------------------------------------- the sampler
@dataclass
class Eval:
    x: torch.Tensor
    sigma: torch.Tensor
    out: torch.Tensor
    cell: int | None
    line: int | None
    order: int  # its place among the run's events


@dataclass
class SampleFacts:
    run: Run
    gam: float
    sigmas: torch.Tensor
    start: torch.Tensor | None
    evals: list[Eval]
    yields: list[tuple[int, torch.Tensor | None, dict]]
    draws: list[tuple[int, dict]]
    basis: list[tuple[str, torch.Tensor, int]]  # (label, tensor, order at which it exists)
    error: dict | None
    per_level: list[int] = field(default_factory=list)  # the evaluation taken as level k's, k = 0, 1, ...

    @property
    def level_evals(self) -> list[Eval]:
        return [self.evals[j] for j in self.per_level]

    def slot(self, k: int) -> int | None:
        """The basis index of level k's answer."""
        n_start = sum(1 for b in self.basis if b[0] in ("x_T", "z"))
        return n_start + self.per_level[k] if 0 <= k < len(self.per_level) else None


def _sample_facts(run: Run) -> SampleFacts:
    info = run.info
    sigmas = _t(info["sigmas"], "sigmas")
    start = None
    evals: list[Eval] = []
    yields, draws = [], []
    start_draw = None
    for i, (kind, f) in enumerate(run.events):
        if kind == "rand_input" and start_draw is None:
            start_draw = (i, f)
        elif kind == "draw" and isinstance(f.get("value"), torch.Tensor):
            draws.append((i, f))
        elif kind == "net" and isinstance(f.get("x"), torch.Tensor):
            x, s, o = _t(f["x"], "x"), _t(f["sigma"], "sigma"), _t(f["out"], "out")
            if not any(e.x.shape == x.shape and torch.equal(e.x, x) and _same_level(e.sigma, s) for e in evals):
                evals.append(Eval(x, s, o, f.get("cell"), f.get("line"), i))
        elif kind == "yield":
            v = f.get("value")
            yields.append((i, _t(v, "yield") if isinstance(v, torch.Tensor) else None, f))
    basis = []
    if info.get("xt") is not None:
        start = _t(info["xt"], "xt")
        basis.append(("x_T", start, -1))
    if start_draw is not None:  # drawn, or (a mistake) drawn although xt was given
        basis.append(("z", _t(start_draw[1]["value"], "rand_input"), start_draw[0]))
    basis += [(f"eps{j}", e.out, e.order) for j, e in enumerate(evals)]
    basis += [(f"{d['fn']} at {d.get('cell')}:{d.get('line')}", _t(d["value"], "draw"), i) for i, d in draws]
    errors = run.of("error")
    return SampleFacts(
        run,
        float(info["gam"]),
        sigmas,
        start,
        evals,
        yields,
        draws,
        basis,
        errors[0] if errors else None,
        _per_level(evals, sigmas),
    )


def _at_level(s: torch.Tensor, level: float) -> bool:
    s = s.reshape(-1)
    return bool(s.numel()) and bool(((s - level).abs() <= 1e-6 * abs(level)).all())


def _per_level(evals: list[Eval], sigmas: torch.Tensor) -> list[int]:
    """Which evaluation is level k's.

    The first at sigma_k after level k-1's when every level has one (extra
    evaluations elsewhere are then extras); otherwise the evaluations in order (a wrong level shows there)."""
    K = len(sigmas) - 1
    chosen, start = [], 0
    for k in range(K):
        j = next((j for j in range(start, len(evals)) if _at_level(evals[j].sigma, float(sigmas[k]))), None)
        if j is None:
            break
        chosen.append(j)
        start = j + 1
    return chosen if len(chosen) == K else list(range(min(len(evals), K)))


def _same_level(a: torch.Tensor, b: torch.Tensor) -> bool:
    """One level told two ways (a 0-d tensor, a float, one per example) counts as the same evaluation."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.shape == b.shape:
        return torch.equal(a, b)
    return bool((a == a[0]).all() and (b == b[0]).all() and a[0] == b[0]) if a.numel() and b.numel() else False


def _coefs(y: torch.Tensor, basis: list[tuple[str, torch.Tensor, int]], before: int) -> tuple[torch.Tensor, float]:
    """Coefficients of y on the basis tensors that exist before ``before`` (all of them, zero-padded).

    Residual.
    """
    usable = [j for j, (_, t, order) in enumerate(basis) if order < before and t.shape == y.shape]
    coef = torch.zeros(len(basis), dtype=torch.float64)
    if not usable:
        return coef, float(y.norm() > 0)
    A = torch.stack([basis[j][1].reshape(-1) for j in usable], dim=1)
    sol = torch.linalg.lstsq(A, y.reshape(-1, 1), driver="gelsd").solution.reshape(-1)
    resid = float((A @ sol - y.reshape(-1)).norm() / y.norm().clamp_min(1e-30))
    coef[usable] = sol
    return coef, resid


def _unit(n: int, j: int | None) -> torch.Tensor | None:
    if j is None or j < 0:
        return None
    u = torch.zeros(n, dtype=torch.float64)
    if j < n:
        u[j] = 1.0
    return u


def _expected_delta(n: int, slot, k: int, s: torch.Tensor, gam: float) -> torch.Tensor:
    """The step x_{t-1} - x_t in coefficients.

    gam_mu_step(0, sigma_k, sigma_{k+1}, eps_bar(u_k, u_{k-1}, gam)).
    """
    prev = _unit(n, slot(k - 1)) if k > 0 else None
    eb = eps_bar(_unit(n, slot(k)), prev, gam)
    return gam_mu_step(torch.zeros(n, dtype=torch.float64), float(s[k]), float(s[k + 1]), eb)


def _alternatives(n: int, slot, k: int, s: torch.Tensor, gam: float) -> list[tuple[str, torch.Tensor]]:
    """Coefficients of the usual mistakes at step k, built with the same core functions."""
    z = torch.zeros(n, dtype=torch.float64)
    u, up = _unit(n, slot(k)), (_unit(n, slot(k - 1)) if k > 0 else None)
    u0 = _unit(n, slot(0))
    sk, sn = float(s[k]), float(s[k + 1])
    eb = eps_bar(u, up, gam)
    alts = [
        ("x does not move: the step's size is 0 (is sigma_{t-1} overwritten before the step?)", z),
        ("the step has the wrong sign (x_t + (sigma_t - sigma_{t-1}) eps_bar)", gam_mu_step(z, sn, sk, eb)),
        ("the step is sigma_t eps_bar, not (sigma_t - sigma_{t-1}) eps_bar", gam_mu_step(z, sk, 0.0, eb)),
        ("the step is sigma_{t-1} eps_bar, not (sigma_t - sigma_{t-1}) eps_bar", gam_mu_step(z, sn, 0.0, eb)),
        (
            "the step is (sigma_t^2 - sigma_{t-1}^2) eps_bar, not (sigma_t - sigma_{t-1}) eps_bar",
            gam_mu_step(z, sk * sk, sn * sn, eb),
        ),
    ]
    if k + 2 < len(s):
        alts.append(
            ("the step size is the next step's, sigma_{t-1} - sigma_{t-2}", gam_mu_step(z, sn, float(s[k + 2]), eb))
        )
    if k > 0:
        alts.append(
            ("the step size is the previous step's, sigma_{t+1} - sigma_t", gam_mu_step(z, float(s[k - 1]), sk, eb))
        )
        alts.append(
            (
                "gam weighs the previous prediction: eps_bar = gam eps_{t+1} + (1 - gam) eps_t",
                gam_mu_step(z, sk, sn, eps_bar(up, u, gam)),
            )
        )
        alts.append(
            (
                "gam is off by one: eps_bar = eps_t + gam (eps_t - eps_{t+1})",
                gam_mu_step(z, sk, sn, eps_bar(u, up, gam + 1.0)),
            )
        )
        alts.append(
            (
                "gam is ignored (the DDIM step eps_bar = eps_theta(x_t, sigma_t))",
                gam_mu_step(z, sk, sn, eps_bar(u, up, 1.0)),
            )
        )
        alts.append(
            (
                "eps_{t+1} is never updated: it stays the first level's prediction",
                gam_mu_step(z, sk, sn, eps_bar(u, u0, gam)),
            )
        )
        prev_bar = None
        for j in range(k + 1):  # eps_prev set to the previous eps_bar instead of the previous prediction
            prev_bar = eps_bar(_unit(n, slot(j)), prev_bar, gam)
        alts.append(
            (
                "eps_{t+1} is the previous eps_bar, not the previous prediction eps_theta(x_{t+1}, sigma_{t+1})",
                gam_mu_step(z, sk, sn, prev_bar),
            )
        )
    else:
        alts.append(("the first step uses gam eps_theta with eps_{t+1} = 0", gam_mu_step(z, sk, sn, gam * u)))
    return alts


def _label(sf: SampleFacts, j: int, k: int) -> str:
    if j == sf.slot(k):
        return "eps_theta(x_t, sigma_t)"
    if j == sf.slot(k - 1):
        return "eps_theta(x_{t+1}, sigma_{t+1})"
    name = sf.basis[j][0]
    if name.startswith("eps") and name[3:].isdigit():
        return f"the prediction at sigma = {_f(float(sf.evals[int(name[3:])].sigma.reshape(-1)[0]))}"
    return name


def _combo(sf: SampleFacts, v: torch.Tensor, k: int) -> str:
    terms = [f"{_f(float(v[j]))} {_label(sf, j, k)}" for j in range(len(v)) if abs(float(v[j])) > 1e-9]
    return " + ".join(terms).replace("+ -", "- ") or "0"


def _tol(v: torch.Tensor) -> float:
    return COEF_TOL * (1 + float(v.abs().max()) if v.numel() else 1)


def _stale(sf: SampleFacts) -> int | None:
    """The first step whose network call sees the x of the step before.

    That x is x_{t+1}, although the code has yielded
    a new x_t since, if any."""
    evals, ys = sf.level_evals, [y for _, y, _ in sf.yields]
    return next(
        (
            k
            for k in range(1, len(evals))
            if same_as(evals[k].x, evals[k - 1].x)
            and k - 1 < len(ys)
            and ys[k - 1] is not None
            and not same_as(ys[k - 1], evals[k].x)
        ),
        None,
    )


def _states(sf: SampleFacts) -> tuple[list[tuple[torch.Tensor, int]] | None, str]:
    """The code's state before each step it took.

    The network's inputs, one per level, unless the network sees a
    stale x (then the start and the yields); the start and the yields when there is no input per level."""
    K = len(sf.sigmas) - 1
    ys = [(y, i) for i, y, _ in sf.yields if y is not None]
    from_yields = None
    if len(ys) == K and sf.basis and sf.basis[0][0] in ("x_T", "z"):
        first = sf.basis[0]
        from_yields = [(first[1] * (float(sf.sigmas[0]) if first[0] == "z" else 1.0), first[2] + 1)] + ys[:-1]
    evals = sf.level_evals
    if evals and (
        len(sf.evals) <= K
        or len(sf.per_level) == K
        and all(_at_level(e.sigma, float(sf.sigmas[k])) for k, e in enumerate(evals))
    ):
        if _stale(sf) is None or from_yields is None:
            return [(e.x, e.order) for e in evals], "network inputs"
    if from_yields is not None:
        return from_yields, "yields"
    return None, ""


def _decide_sampler_steps(src: Source, facts: list[SampleFacts], lines_update: list[str]) -> tuple[Outcome, Outcome]:
    first_fail = update_fail = None
    decided_first = decided_update = False
    for sf in facts:
        K = len(sf.sigmas) - 1
        states, how = _states(sf)
        if states is None:
            continue
        ys = [(y, i) for i, y, _ in sf.yields if y is not None]
        n = len(sf.basis)
        slot = sf.slot
        m = len(states)
        # the yields are the states after each step when they agree with the next step's input
        yields_ok = all(same_as(ys[j][0], states[j + 1][0]) for j in range(min(len(ys), m - 1)))
        for k in range(min(m, K)):
            x_k, order_k = states[k]
            if k + 1 < m:
                x_next, order_next = states[k + 1]
            elif k < len(ys) and yields_ok:
                x_next, order_next = ys[k]
            else:
                continue
            c_k, r_k = _coefs(x_k, sf.basis, order_k)
            c_n, r_n = _coefs(x_next, sf.basis, order_next)
            spec_first = k == 0
            where = (
                f"gam = {_f(sf.gam)}, step {k + 1} of {K} (sigma_t = {_f(float(sf.sigmas[k]))} -> "
                f"sigma_{{t-1}} = "
                f"{_f(float(sf.sigmas[k + 1]))})"
            )
            if max(r_k, r_n) > 1e-5:
                detail = (
                    f"{where}: x_{{t-1}} is not x_t plus a combination of the network's answers (residual "
                    f"{max(r_k, r_n):.2g}): the step is not linear in eps_theta's answers"
                )
                bad = (detail, lines_update)
            else:
                delta = c_n - c_k
                want = _expected_delta(n, slot, k, sf.sigmas, sf.gam)
                if float((delta - want).abs().max()) <= _tol(want):
                    if spec_first:
                        decided_first = True
                    else:
                        decided_update = True
                    continue
                name = next(
                    (
                        nm
                        for nm, alt in _alternatives(n, slot, k, sf.sigmas, sf.gam)
                        if float((delta - alt).abs().max()) <= _tol(alt)
                    ),
                    None,
                )
                detail = f"{where}: x_{{t-1}} - x_t = {_combo(sf, delta, k)}; expected {_combo(sf, want, k)}" + (
                    f": {name}" if name else ""
                )
                bad = (detail, lines_update)
            if spec_first:
                decided_first = True
                first_fail = first_fail or bad
            else:
                decided_update = True
                update_fail = update_fail or bad
    out = []
    for spec, fail, decided in (
        ("sample_first_step", first_fail, decided_first),
        ("sample_update", update_fail, decided_update),
    ):
        if fail:
            out.append(_out(spec, FAIL, fail[0], fail[1]))
        elif decided:
            out.append(_out(spec, PASS, lines=lines_update[:1]))
        else:
            out.append(None)
    return out[0], out[1]


def _decide_network_call(src: Source, facts: list[SampleFacts], notes: list[str]) -> Outcome | None:
    for sf in facts:
        K = len(sf.sigmas) - 1
        if not sf.evals:
            continue
        lines = [src.line(sf.evals[0].cell, sf.evals[0].line)]
        for j, e in enumerate(sf.level_evals):
            s = e.sigma.reshape(-1)
            want = float(sf.sigmas[j])
            if s.numel() not in (1, e.x.shape[0]) or not _at_level(s, want):
                which = " (sigma_{t-1})" if j + 1 < len(sf.sigmas) and _at_level(s, float(sf.sigmas[j + 1])) else ""
                if not which and j > 0 and _at_level(s, float(sf.sigmas[j - 1])):
                    which = " (sigma_{t+1})"
                return _out(
                    "sample_network_call",
                    FAIL,
                    f"gam = {_f(sf.gam)}, step {j + 1}: eps_theta is called at "
                    f"sigma = {_vec(s)}{which}; expected sigma_t = {_f(want)}",
                    [src.line(e.cell, e.line)],
                )
        k = _stale(sf)
        if k is not None:
            e = sf.level_evals[k]
            return _out(
                "sample_network_call",
                FAIL,
                f"gam = {_f(sf.gam)}, step {k + 1}: eps_theta is called at the x "
                "of the step before (x_{t+1}), not at the current x_t",
                [src.line(e.cell, e.line)],
            )
        if len(sf.per_level) < K:
            levels = [float(e.sigma.reshape(-1)[0]) for e in sf.evals]
            return _out(
                "sample_network_call",
                FAIL,
                f"gam = {_f(sf.gam)}: eps_theta is evaluated at {len(sf.evals)} "
                f"distinct points for {K} steps (levels {', '.join(_f(v) for v in levels)})",
                lines,
            )
        extras = [j for j in range(len(sf.evals)) if j not in sf.per_level]
        if extras:
            n_start = sum(1 for b in sf.basis if b[0] in ("x_T", "z"))
            used = []
            for order, y, _ in sf.yields:
                if y is not None:
                    c, resid = _coefs(y, sf.basis, order)
                    used += [j for j in extras if resid < 1e-5 and abs(float(c[n_start + j])) > COEF_TOL]
            e = sf.evals[(used or extras)[0]]
            where = f"sigma = {_f(float(e.sigma.reshape(-1)[0]))}"
            if used or any(y is None for _, y, _ in sf.yields):
                return _out(
                    "sample_network_call",
                    FAIL,
                    f"gam = {_f(sf.gam)}: eps_theta is evaluated at "
                    f"{len(sf.evals)} distinct points for {K} steps, and the answer at the extra point "
                    f"({where}) enters the samples",
                    [src.line(e.cell, e.line)],
                )
            notes.append(
                f"sample_network_call: eps_theta is also called at {len(extras)} other point(s) (first at "
                f"{where}, {src.where(e.cell, e.line)}); their answers do not enter the samples"
            )
    if not any(sf.evals for sf in facts):
        return None
    e = next(sf.evals[0] for sf in facts if sf.evals)
    return _out("sample_network_call", PASS, lines=[src.line(e.cell, e.line)])


def _decide_yields(src: Source, facts: list[SampleFacts]) -> Outcome | None:
    lines = src.yield_lines("samples")
    decided = False
    for sf in facts:
        K = len(sf.sigmas) - 1
        ys = sf.yields
        where = f"gam = {_f(sf.gam)}, {K} steps"
        if any(y is None for _, y, _ in ys):
            f = next(f for _, y, f in ys if y is None)
            return _out(
                "sample_yields", FAIL, f"{where}: a yield is a {f.get('type')}, not the tensor x_{{t-1}}", lines
            )
        if len(ys) != K:
            hint = ""
            if len(ys) == K + 1 and sf.start is not None and torch.equal(ys[0][1], sf.start):
                hint = ": the start x_T is yielded too"
            return _out("sample_yields", FAIL, f"{where}: {len(ys)} yields; expected one per step, {K}{hint}", lines)
        if _stale(sf) is not None:
            decided = True  # the network sees stale states (sample_network_call); the yields are the states
        elif len(sf.per_level) == K:
            evals = sf.level_evals
            for j in range(K):
                order, y, _ = ys[j]
                if j + 1 < K:
                    want = evals[j + 1].x
                    if not same_as(y, want):
                        same = same_as(y, evals[j].x)
                        hint = ": it is x_t before the step (yielded one step early)" if same else ""
                        return _out(
                            "sample_yields",
                            FAIL,
                            f"{where}: yield {j + 1} is not the x_{{t-1}} the next step starts from{hint}",
                            lines,
                        )
                else:
                    moved = K < 2 or not same_as(evals[j].x, evals[j - 1].x)
                    if moved and same_as(y, evals[j].x):
                        return _out(
                            "sample_yields",
                            FAIL,
                            f"{where}: the last yield is x_t before the last step, not "
                            "x_0 after it (yielded one step early)",
                            lines,
                        )
            decided = True
    if not decided:
        return None
    return _out("sample_yields", PASS, lines=lines[:1])


def same_as(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same state, up to float32 rounding (a file may compute in float32).

    Every mistake is off by O(1).
    """
    return a.shape == b.shape and _close(a, b, 1e-5)


def _decide_start(src: Source, facts: list[SampleFacts], notes: list[str]) -> Outcome | None:
    decided = False
    start_lines = src.start_lines("samples")
    for sf in facts:
        run = sf.run
        rand = run.of("rand_input")
        B = int(run.info["batchsize"])
        s0 = float(sf.sigmas[0])
        first = sf.evals[0] if sf.evals else None
        if sf.start is not None:  # xt given: used as is
            if rand:
                r = rand[0]
                return _out(
                    "sample_start",
                    FAIL,
                    f"xt is given but samples draws model.rand_input({r['batchsize']}) anyway",
                    [src.line(r.get("cell"), r.get("line"))] + start_lines,
                )
            if first is not None:
                if same_as(first.x, sf.start):
                    decided = True
                elif same_as(first.x, sf.start * s0):
                    return _out(
                        "sample_start",
                        FAIL,
                        f"the given xt is multiplied by sigmas[0] = {_f(s0)}; xt is used as given",
                        start_lines + [src.line(first.cell, first.line)],
                    )
                else:
                    return _out(
                        "sample_start",
                        FAIL,
                        f"xt = {_vec(sf.start)} is given but the first network call sees x = {_vec(first.x)}",
                        start_lines + [src.line(first.cell, first.line)],
                    )
            continue
        if not rand:
            draws = [f for i, f in sf.draws]
            own = next(
                (
                    d
                    for d in draws
                    if _standard(d) and first is not None and same_as(first.x, _t(d["value"], "draw") * s0)
                ),
                None,
            )
            if own is not None:  # the same law by other means: a name is not maths
                notes.append(
                    f"sample_start: the start is sigmas[0] times a draw of {own['fn']} at "
                    f"{src.where(own.get('cell'), own.get('line'))}, not model.rand_input(batchsize)"
                )
                decided = True
                continue
            what = (
                f"; it draws with {draws[0]['fn']} at {src.where(draws[0].get('cell'), draws[0].get('line'))}"
                if draws
                else ""
            )
            return _out(
                "sample_start",
                FAIL,
                f"with xt = None, samples never calls model.rand_input(batchsize){what}",
                ([src.line(draws[0].get("cell"), draws[0].get("line"))] if draws else []) + start_lines,
            )
        r = rand[0]
        line = [src.line(r.get("cell"), r.get("line"))] + start_lines
        if int(r["batchsize"]) != B:
            return _out("sample_start", FAIL, f"model.rand_input({r['batchsize']}) for batchsize = {B}", line)
        if first is None:
            continue
        z = _t(r["value"], "rand_input")
        if same_as(first.x, z * s0):
            decided = True
            continue
        if same_as(first.x, z):
            return _out(
                "sample_start",
                FAIL,
                f"x_T = model.rand_input(batchsize), without sigmas[0]: the start has std 1, not sigmas[0] = {_f(s0)}",
                line,
            )
        if same_as(first.x, z * float(sf.sigmas[-1])):
            return _out(
                "sample_start",
                FAIL,
                f"x_T = model.rand_input(batchsize) * sigmas[-1] "
                f"({_f(float(sf.sigmas[-1]))})"
                f", not sigmas[0] ({_f(s0)})",
                line,
            )
        return _out(
            "sample_start",
            FAIL,
            f"the first network call sees x = {_vec(first.x)}; expected sigmas[0] z = {_vec(z * s0)}",
            line,
        )
    if not decided:
        return None
    return _out("sample_start", PASS)


def _decide_law(src: Source, runs: list[Run], lines: list[str]) -> Outcome | None:
    results = []
    for run in runs:
        info = run.info
        law = info.get("law") or {}
        outs = run.of("law_output")
        if not outs or not isinstance(outs[0].get("value"), torch.Tensor):
            continue
        x = _t(outs[0]["value"], "law_output")
        n = x.shape[0]
        if x.ndim != 2 or n != int(info["batchsize"]):
            return _out(
                "sample_law",
                FAIL,
                f"gam = {_f(float(info['gam']))}: the last yield has shape {tuple(x.shape)}"
                f"; expected ({info['batchsize']}, 2)",
            )
        sigmas = _t(info["sigmas"], "sigmas")
        expected = gaussian_gam_law(
            torch.tensor(law["m"], dtype=torch.float64), float(law["c"]), sigmas, float(info["gam"])
        )
        mean, var = x.mean(0), x.var(0)
        ev = float(expected.std) ** 2
        for name, est, se, want in (
            ("mean", mean, float(expected.std) / math.sqrt(n), expected.mean),
            ("variance", var, ev * math.sqrt(2 / (n - 1)), torch.full_like(var, ev)),
        ):
            if not torch.isfinite(est).all():
                return _out("sample_law", FAIL, f"gam = {_f(float(info['gam']))}: the samples are not finite")
            check = check_mc(f"sample {name}", est, se, want, n, raise_on_fail=False)
            results.append((check, name, est, want, info))
    if not results:
        return None
    for check, name, est, want, info in results:
        if not check.passed:
            return _out(
                "sample_law",
                FAIL,
                f"gam = {_f(float(info['gam']))}, eps* of N({info['law']['m']}, "
                f"{info['law']['c']} I), {len(info['sigmas']) - 1} steps: the samples' {name} is {_vec(est)}; "
                f"the closed form gives {_vec(want)} (z = {check.z:.1f} > {check.k:.1f}, n = {check.n})",
                lines,
            )
    return _out("sample_law", PASS)


def _decide_sampler(src: Source, sample: list[Run], notes: list[str]) -> tuple[list[Outcome], str | None]:
    errors = [f for run in sample for f in run.of("error")]
    for e in errors:
        why = _cannot(e)
        if why:
            return [], why
    probes = [_sample_facts(r) for r in sample if r.info.get("probe") == "probe"]
    starts = [_sample_facts(r) for r in sample if r.info.get("probe") in ("start", "probe")]
    laws = [r for r in sample if r.info.get("probe") == "law"]
    lines_update = src.update_lines("samples")
    err = errors[0] if errors else None

    def missing(spec: str, why: str) -> Outcome:
        if err is not None:
            return _out(spec, FAIL, _raised(src, err, "samples"), [src.line(err.get("cell"), err.get("line"))])
        return _out(spec, UNDECIDED, f"not decided: {why}", lines_update[:1])

    first, update = _decide_sampler_steps(src, probes, lines_update)
    decided = {
        "sample_start": _decide_start(src, starts, notes),
        "sample_network_call": _decide_network_call(src, probes, notes),
        "sample_first_step": first,
        "sample_update": update,
        "sample_yields": _decide_yields(src, probes),
        "sample_law": _decide_law(src, laws, lines_update),
    }
    why = {
        "sample_start": "no network call or rand_input to see the start",
        "sample_network_call": "samples never called the network",
        "sample_first_step": "the states of the sampler could not be followed "
        "(see sample_network_call and sample_yields)",
        "sample_update": "the states of the sampler could not be followed (see sample_network_call and sample_yields)",
        "sample_yields": "no probe run ended with one network evaluation per step",
        "sample_law": "no samples came out of the law runs",
    }
    return [decided[k] or missing(k, why[k]) for k in SAMPLE_SPECS], None


# ---------------------------------------------------------------- the whole decision
def _absent(spec_ids, reason: str, status: str = UNDECIDED, lines=()) -> list[Outcome]:
    return [_out(k, status, reason, lines) for k in spec_ids]


def _function_reason(src: Source, head: dict, name: str) -> str:
    info = head["definitions"].get("functions", {}).get(name, {})
    status = info.get("status")
    bad_cells = [
        (c, ln, m)
        for c, ln, m in head["plan"].get("syntax_errors", [])
        if f"def {name}" in src.cells.get(int(c), {}).get("text", "")
    ]
    if bad_cells:
        c, ln, m = bad_cells[-1]
        return f"not decided: the cell defining {name} does not parse ({src.where(c, ln)}: {m})"
    if status == "library":
        return f"not decided: {name} is smalldiffusion's, imported; the notebook defines no {name} of its own"
    if status == "other":
        return f"not decided: {name} is a {info.get('type')}, not a function the notebook defines"
    return f"not decided: the notebook defines no {name}"


def decide(records, config: dict | None = None) -> Decision:
    """Every 6.S183 spec's outcome from the child's records alone [6.S183 Q2; PY23 App. A].

    torch runs on one thread meanwhile (small least-squares problems; a thread pool on busy cores costs
    many times the CPU), restored after.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _decide(records, config)
    finally:
        torch.set_num_threads(threads)


def _decide(records, config: dict | None) -> Decision:
    try:
        normal = [_kind_fields(r) for r in records]
        head, train, sample, crashes = _runs(normal)
    except Malformed as e:
        return Decision([], [], None, f"malformed records from the child ({e})")
    if crashes:
        c = crashes[0]
        return Decision([], [], f"the notebook could not be run: {c.get('error')}", None)
    missing = [k for k in ("notebook", "plan", "definitions") if k not in head]
    if missing:
        if "notebook" in head and "plan" in head:
            return Decision([], [], "the notebook's definitions could not be run", None)
        return Decision([], [], "the notebook could not be read", None)
    # a run without its end record was cut (a hang, a kill): its counts would be false bugs, so it is not used
    cut_train, cut_sample = [r for r in train if not r.of("run_end")], [r for r in sample if not r.of("run_end")]
    train, sample = [r for r in train if r.of("run_end")], [r for r in sample if r.of("run_end")]
    src = Source(head["notebook"], head["plan"], head["definitions"])
    notes = _load_notes(src, head)
    outcomes: list[Outcome] = []
    cannot = None
    try:
        if head["definitions"]["functions"].get("training_loop", {}).get("status") == "notebook":
            fn_lines = src.update_lines("training_loop")
            loss, loss_notes, why = _decide_loss(src, train, fn_lines, _schedule_levels(config or {}))
            notes += loss_notes
            cannot = cannot or why
            outcomes += loss if not why else _absent(LOSS_SPECS, f"not decided: {why}")
        else:
            outcomes += _absent(LOSS_SPECS, _function_reason(src, head, "training_loop"))
        if head["definitions"]["functions"].get("samples", {}).get("status") == "notebook":
            samp, why = _decide_sampler(src, sample, notes)
            cannot = cannot or why
            outcomes += samp if not why else _absent(SAMPLE_SPECS, f"not decided: {why}")
        else:
            outcomes += _absent(SAMPLE_SPECS, _function_reason(src, head, "samples"))
    except Malformed as e:
        return Decision([], notes, None, f"malformed records from the child ({e})")
    outcomes = _held_to_complete_runs(outcomes, train, sample, config or {}, head)
    notes = list(dict.fromkeys(notes))
    if cut_train or cut_sample:
        notes.append("the record stream stops inside a run; only the runs that ended were used")
    return Decision(outcomes, notes, None, cannot)


def _held_to_complete_runs(
    outcomes: list[Outcome], train: list[Run], sample: list[Run], config: dict, head: dict
) -> list[Outcome]:
    """A pass needs every run of its answer to have ended.

    From a cut stream, what would pass is undecided.
    """
    from ddpm.verify.s183.observe import default_config

    want = {**default_config(), **config}
    functions = head["definitions"].get("functions", {})
    cut = {}
    for phase, runs, n, name in (
        ("loss_", train, len(want["train_runs"]), "training_loop"),
        ("sample_", sample, len(want["sample_runs"]), "samples"),
    ):
        if functions.get(name, {}).get("status") != "notebook":
            continue
        ended = sum(1 for r in runs if r.of("run_end"))
        if ended < n:
            cut[phase] = f"not decided: the record stream stops after {ended} of the {n} runs of {name}"
    return [
        Outcome(o.spec, UNDECIDED, cut[p], o.cites, o.lines)
        if o.status == PASS and (p := "loss_" if o.spec.startswith("loss_") else "sample_") in cut
        else o
        for o in outcomes
    ]


def _load_notes(src: Source, head: dict) -> list[str]:
    notes = []
    plan = head["plan"]
    if plan.get("skipped"):
        first = plan.get("skipped_first") or []
        eg = f", e.g. {src.where(first[0][0], first[0][1])}: {first[0][2]}" if first else ""
        notes.append(
            f"ran only the notebook's imports and definitions; {plan['skipped']} top-level statements "
            f"(calls, loops, plots) were not run{eg}"
        )
    dropped = [d for c in src.cells.values() for d in c.get("dropped", [])]
    if dropped:
        notes.append(f"dropped {len(dropped)} shell/magic line(s), e.g. {dropped[0][:60]!r}")
    for c, ln, m in plan.get("syntax_errors", []):
        notes.append(f"{src.where(c, ln)} does not parse ({m}); that cell's definitions are missing")
    for c, ln, m in head["definitions"].get("errors", []):
        notes.append(f"{src.where(c, ln)}: running this definition raised {m}")
    return notes
