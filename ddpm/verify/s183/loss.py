"""The loss specs of ``ddpm verify --course 6.S183``, decided from the training runs' records alone.

L(theta) = E||eps_theta(x_0 + sigma eps, sigma) - eps||^2, sigma drawn per example from the schedule
[6.S183 Q2]. Each batch shows: the network's input, regressed example by example on each draw the code
made (x_in - x_0 = a_i eps_i, a_i = sigma_i); the loss's gradient with respect to the network's answer, on
eps_theta - T for candidate targets T; and the yielded value, against mean((eps_theta - eps)^2) over
batches of different sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ddpm.sigma.schedule import log_linear_sigmas
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome
from ddpm.verify.s183.records import (
    Batch,
    Draw,
    Error,
    Grad,
    Malformed,
    Net,
    Run,
    SigmaDraw,
    TrainRun,
    Yield,
    as_float64,
)
from ddpm.verify.s183.source import Source
from ddpm.verify.s183.wording import num, outcome, raised, vec

__all__ = ["decide_loss", "LOSS_RTOL"]

LOSS_RTOL = 1e-4  # float32 training: values agree to ~1e-6 relative; every planted mistake is off by O(1)


@dataclass
class Step:
    """One batch of a training run: what was handed out and what the code did with it."""

    run: int
    index: int
    x0: Tensor
    sigma_draws: list[SigmaDraw] = field(default_factory=list)
    draws: list[Draw] = field(default_factory=list)
    nets: list[Net] = field(default_factory=list)
    grads: dict[int, Tensor] = field(default_factory=dict)
    yields: list[Yield] = field(default_factory=list)
    yield_before_net: bool = False

    @property
    def where(self) -> str:
        return f"batch {self.index + 1} of run {self.run + 1}"


def _steps(run: Run[TrainRun], r: int) -> tuple[list[Step], list[Draw]]:
    """The run's batches, and the draws made before the first."""
    steps: list[Step] = []
    preamble: list[Draw] = []
    for e in run.events:
        if isinstance(e, Batch):
            steps.append(Step(r, len(steps), as_float64(e.x0, "batch.x0")))
        elif not steps:
            if isinstance(e, Draw):
                preamble.append(e)
            elif isinstance(e, Yield):
                raise Malformed("a yield before any batch")
        elif isinstance(e, SigmaDraw):
            steps[-1].sigma_draws.append(e)
        elif isinstance(e, Draw):
            steps[-1].draws.append(e)
        elif isinstance(e, Net):
            steps[-1].nets.append(e)
        elif isinstance(e, Grad):
            steps[-1].grads[e.call] = as_float64(e.grad, "grad")
        elif isinstance(e, Yield):
            if not steps[-1].nets:
                steps[-1].yield_before_net = True
            steps[-1].yields.append(e)
    return steps, preamble


def _fit_noise(d: Tensor, e: Tensor) -> tuple[Tensor, float]:
    """a_i with d_i = a_i e_i per example (least squares), and the relative residual."""
    a = (d * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-30)
    resid = (d - a[:, None] * e).norm() / d.norm().clamp_min(1e-30)
    return a, float(resid)


def _close(a: Tensor, b: Tensor, rtol: float = LOSS_RTOL) -> bool:
    a, b = torch.broadcast_tensors(a, b)
    return bool(((a - b).abs() <= rtol * (1 + b.abs())).all())


def _scale_name(a: Tensor, s: Tensor) -> str | None:
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
        return f"one value ({num(float(a[0]))}) for the whole batch, not each example's sigma"
    return None


@dataclass(frozen=True)
class Noise:
    """The draw that reaches the network's input, x_in = x_0 + a eps: the draw, eps (its value, float64)
    and a per example; ``expanded``: one draw broadcast over the batch."""

    draw: Draw
    eps: Tensor
    scale: Tensor
    expanded: bool


@dataclass
class LossFacts:
    """What one batch shows, from the network call the loss is taken on; each spec reads its part."""

    step: Step
    net: Net
    x_in: Tensor
    sigma_net: Tensor | None = None
    sigma_ref: Tensor | None = None
    noise: Noise | None = None


def _net_line(src: Source, f: LossFacts) -> str:
    return src.line(f.net.cell, f.net.line)


def _in_levels(v: Tensor | None, levels: Tensor) -> bool:
    """Every value is one of the schedule's levels.

    to 1e-3 relative (a noise scale fitted from float32 data at
    sigma = 0.005 carries ~1e-5; neighbouring levels are 4% apart)."""
    if v is None or not v.numel():
        return False
    gap = (v.reshape(-1, 1) - levels.reshape(1, -1)).abs().min(1).values
    return bool((gap <= 1e-3 * v.abs().reshape(-1)).all())


def _loss_facts(step: Step, all_draws: list[Draw], levels: Tensor) -> LossFacts | None:
    """The batch's facts; None where the network never saw an input in it."""
    nets = [n for n in step.nets if isinstance(n.x, Tensor)]
    if not nets:
        return None
    with_grad = [n for n in nets if n.call in step.grads]
    net = (with_grad or nets)[-1]
    x0, x_in = step.x0, as_float64(net.x, "net.x")
    B = x0.shape[0]
    s = as_float64(net.sigma, "net.sigma").reshape(-1)
    facts = LossFacts(step, net, x_in)
    facts.sigma_net = s if s.numel() == B else s.expand(B) if s.numel() == 1 else None
    if step.sigma_draws:
        facts.sigma_ref = as_float64(step.sigma_draws[-1].value, "sigma_draw.value").reshape(-1)
    else:  # drawn by the code itself (randint on schedule.sigmas, ...): the network's sigma if it is a level
        facts.sigma_ref = facts.sigma_net if _in_levels(facts.sigma_net, levels) else None
    if x_in.shape != x0.shape:
        return facts
    d = x_in - x0
    best: Noise | None = None
    best_resid = math.inf
    if float(d.norm()) <= 1e-6 * float(x0.norm()):
        return facts  # no noise reaches the network
    for draw in reversed(all_draws):
        e = as_float64(draw.value, "draw.value")
        try:
            e_full = e.expand_as(x0)
        except RuntimeError:
            continue
        a, resid = _fit_noise(d, e_full)
        if best is None or resid < best_resid:
            best, best_resid = Noise(draw, e, a, e.shape != x0.shape), resid
    if best is not None and best_resid < 1e-3:
        facts.noise = best
    return facts


def _schedule_levels(config: Mapping[str, Any]) -> Tensor:
    """The levels of the schedule handed to training_loop (the observer's: float32, as the notebook's)."""
    return (
        log_linear_sigmas(
            int(config.get("N", 200)), float(config.get("sigma_min", 0.005)), float(config.get("sigma_max", 10.0))
        )
        .float()
        .double()
    )


def decide_loss(
    src: Source, train: list[Run[TrainRun]], config: Mapping[str, Any]
) -> tuple[list[Outcome], list[str], str | None]:
    """The six loss specs from the training runs [6.S183 Q2: L(theta)]; their notes; and the reason to say
    "cannot verify" instead, where the code failed in a stand-in."""
    fn_lines = src.update_lines("training_loop")
    levels = _schedule_levels(config)
    notes: list[str] = []
    batches: list[LossFacts | None] = []
    errors: list[Error] = []
    runs_steps = []
    for r, run in enumerate(train):
        steps, preamble = _steps(run, r)
        runs_steps.append((run, steps))
        seen = list(preamble)
        for step in steps:
            seen = seen + step.draws
            batches.append(_loss_facts(step, [d for d in seen if isinstance(d.value, Tensor)], levels))
        errors += run.of(Error)
    for e in errors:
        why = e.verifier_limit()
        if why:
            return [], notes, why
    err = errors[0] if errors else None
    with_net = [f for f in batches if f is not None]

    def no_evidence(spec: str) -> Outcome:
        if err is not None:
            return outcome(spec, FAIL, raised(src, err, "training_loop"), [src.line(err.cell, err.line)])
        return outcome(
            spec,
            FAIL if batches else UNDECIDED,
            "training_loop never called the network on a batch"
            if batches
            else "not decided: training_loop handed out no batch",
            fn_lines,
        )

    out = []
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


def _loss_input(src: Source, facts: list[LossFacts], levels: Tensor) -> Outcome:
    for f in facts:
        x0, x_in = f.step.x0, f.x_in
        if x_in.shape != x0.shape:
            return outcome(
                "loss_input",
                FAIL,
                f"{f.step.where}: the network's x has shape {tuple(x_in.shape)}, the batch x_0 {tuple(x0.shape)}",
                [_net_line(src, f)],
            )
        if f.noise is None:
            if _close(x_in, x0, 1e-6):
                detail = "the network sees x_0 itself, no noise added"
            else:
                i = 0
                detail = (
                    f"x_in is not x_0 plus a multiple of any draw the code made: example {i} x_0 = "
                    f"{vec(x0[i])}, "
                    f"x_in = {vec(x_in[i])}"
                )
            return outcome("loss_input", FAIL, f"{f.step.where}: {detail}", [_net_line(src, f)])
        s, a, draw = f.sigma_ref, f.noise.scale, f.noise.draw
        if s is None and _in_levels(a, levels) and not _close(a, a[:1]):
            continue  # levels the code drew itself, one per example, and told the network something else (loss_sigma)
        if s is None or not _close(a, s):
            name = _scale_name(a, s) if s is not None else None
            got = f"x_in = x_0 + a eps with a = {vec(a)} (eps from {draw.fn} at {src.where(draw.cell, draw.line)})"
            want = f"a = sigma = {vec(s)}" if s is not None else "a = sigma"
            detail = f"{f.step.where}: {got}; expected {want}" + (f": the noise is scaled by {name}" if name else "")
            return outcome("loss_input", FAIL, detail, [_net_line(src, f), src.line(draw.cell, draw.line)])
    return outcome("loss_input", PASS)


def _loss_sigma(src: Source, facts: list[LossFacts], levels: Tensor) -> Outcome:
    for f in facts:
        where = f.step.where
        sig = as_float64(f.net.sigma, "net.sigma")
        B = f.step.x0.shape[0]
        lines = [_net_line(src, f)] + [src.line(d.cell, d.line) for d in f.step.sigma_draws[-1:]]
        if sig.numel() not in (1, B):
            return outcome(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told {sig.numel()} levels of shape {tuple(sig.shape)} for a batch of {B}",
                lines,
            )
        if sig.numel() == 1 and B > 1:
            return outcome(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told one level, {num(float(sig))}, for the whole "
                f"batch of {B}; each example has its own sigma",
                lines,
            )
        s_net = sig.reshape(-1)
        if B >= 8 and bool((s_net == s_net[0]).all()):
            return outcome(
                "loss_sigma",
                FAIL,
                f"{where}: every example of the batch of {B} gets the same sigma "
                f"{num(float(s_net[0]))}: one level drawn per batch, not per example",
                lines,
            )
        if f.step.sigma_draws:
            ref = as_float64(f.step.sigma_draws[-1].value, "sigma").reshape(-1)
            if ref.numel() == B and not _close(s_net, ref):
                name = next(
                    (
                        n
                        for n, w in (("sigma^2", ref * ref), ("log sigma", ref.log()), ("sqrt(sigma)", ref.sqrt()))
                        if _close(s_net, w)
                    ),
                    None,
                )
                return outcome(
                    "loss_sigma",
                    FAIL,
                    f"{where}: eps_theta is told {vec(s_net)} for examples whose levels "
                    f"are sigma = {vec(ref)}" + (f": it is told {name}" if name else ""),
                    lines,
                )
        if not f.step.sigma_draws and not _in_levels(s_net, levels):
            scale = f" (the noise added has scale {vec(f.noise.scale)})" if f.noise is not None else ""
            return outcome(
                "loss_sigma",
                FAIL,
                f"{where}: eps_theta is told {vec(s_net)}, which are not levels of the schedule{scale}",
                lines,
            )
    return outcome("loss_sigma", PASS)


def _loss_eps(src: Source, facts: list[LossFacts]) -> Outcome:
    used: dict[int, LossFacts] = {}
    own = False
    for f in facts:
        where = f.step.where
        if f.noise is None:
            return outcome(
                "loss_eps",
                UNDECIDED,
                f"not decided: in {where} no draw of the code's reaches the network's input (see loss_input)",
                [_net_line(src, f)],
            )
        d = f.noise.draw
        line = [src.line(d.cell, d.line)]
        if not d.standard_normal():
            extra = f" (mean {d.extra.get('mean')}, std {d.extra.get('std')})" if "mean" in d.extra else ""
            return outcome("loss_eps", FAIL, f"{where}: eps is drawn by {d.fn}{extra}, not N(0, I)", line)
        if f.noise.expanded:
            return outcome(
                "loss_eps",
                FAIL,
                f"{where}: eps has shape {tuple(f.noise.eps.shape)}, one draw shared by the "
                f"batch of shape {tuple(f.step.x0.shape)} (broadcast): each example and coordinate needs its "
                "own",
                line,
            )
        if d.id in used:
            first = used[d.id]
            return outcome(
                "loss_eps",
                FAIL,
                f"{where} reuses the eps of batch {first.step.index + 1} of run "
                f"{first.step.run + 1} (drawn once at {src.where(d.cell, d.line)}): eps must be "
                "fresh for every batch",
                line,
            )
        used[d.id] = f
        own = own or d.own_generator
    return outcome(
        "loss_eps", PASS, "" if not own else "eps drawn with the file's own generator (the verifier drew it)"
    )


def _candidates(f: LossFacts) -> dict[str, Tensor]:
    """The targets T the gradient is held to: eps and the usual mistakes."""
    x0 = f.step.x0
    c = {}
    eps: Draw | None = f.noise.draw if f.noise is not None else None
    if eps is None:  # no noise in the network's input: eps is still the batch's last standard normal draw
        eps = next(
            (
                d
                for d in reversed(f.step.draws)
                if d.standard_normal() and isinstance(d.value, Tensor) and tuple(d.value.shape) == tuple(x0.shape)
            ),
            None,
        )
    if eps is not None:
        e = as_float64(eps.value, "eps").expand_as(x0)
        c["eps"] = e
        c["-eps"] = -e
        if f.sigma_ref is not None:
            c["sigma eps"] = f.sigma_ref[:, None] * e
    c["x_0"] = x0
    c["x_0 + sigma eps (the network's input)"] = f.x_in
    c["0"] = torch.zeros_like(x0)
    return c


def _loss_target(src: Source, facts: list[LossFacts]) -> tuple[Outcome, dict[int, str | None]]:
    """The target T from the gradient g = k (eps_theta - T), k > 0, in every batch.

    Undecided without a gradient.
    """
    targets: dict[int, str | None] = {}
    failure: Outcome | None = None
    for f in facts:
        where = f.step.where
        out = as_float64(f.net.out, "net.out")
        g = f.step.grads.get(f.net.call)
        if g is None:
            continue
        if g.norm() == 0:
            failure = failure or outcome(
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
            failure = outcome(
                "loss_target",
                FAIL,
                f"{where}: the loss's gradient with respect to eps_theta is not "
                "proportional to eps_theta - T for any target T (eps, x_0, ...): not a squared error "
                f"(best: T = {name}, residual {resid:.2g})",
                [_net_line(src, f)],
            )
        elif name != "eps" or k <= 0:
            what = f"the target is {name}" if name != "eps" else "the loss decreases as eps_theta moves away from eps"
            failure = outcome(
                "loss_target",
                FAIL,
                f"{where}: {what}, not eps (the gradient is {num(k)} (eps_theta - {name}))",
                [_net_line(src, f)],
            )
    if failure is not None:
        return failure, targets
    if not targets:
        return outcome(
            "loss_target",
            UNDECIDED,
            "not decided: the loss was never backpropagated to the network's answer (no gradient reached it)",
            [_net_line(src, facts[0])],
        ), targets
    return outcome("loss_target", PASS), targets


def _loss_reduction(src: Source, facts: list[LossFacts], targets: dict[int, str | None], notes: list[str]) -> Outcome:
    """L = c mean((eps_theta - T)^2) with one c > 0 over batches of different sizes."""
    cs = []
    for f in facts:
        value = f.step.yields[0].value if f.step.yields else None
        if value is None:
            continue
        T = _candidates(f).get(targets.get(id(f)) or "eps")
        if T is None:
            continue
        out = as_float64(f.net.out, "net.out")
        m = float(((out - T) ** 2).mean())
        cs.append((float(value) / m if m > 0 else math.nan, f))
    if not cs:
        return outcome(
            "loss_reduction",
            UNDECIDED,
            "not decided: no yielded loss value to compare (see loss_yields)",
            [_net_line(src, facts[0])],
        )
    c0, f0 = cs[0]
    for c, f in cs:
        B = f.step.x0.shape[0]
        if not (c > 0) or not math.isfinite(c):
            return outcome(
                "loss_reduction",
                FAIL,
                f"{f.step.where}: the loss is {num(c)} times mean((eps_theta - eps)^2); the scale must be positive",
                [_net_line(src, f)],
            )
        if abs(c - c0) > LOSS_RTOL * (1 + abs(c0)) * 10:
            B0 = f0.step.x0.shape[0]
            hint = (
                " (it grows with the batch size: a sum over the batch, not a mean)"
                if abs(c / c0 - B / B0) < 1e-3
                else ""
            )
            return outcome(
                "loss_reduction",
                FAIL,
                f"the loss is {num(c0)} mean((eps_theta - eps)^2) on a batch of {B0} "
                f"but {num(c)} times it on a batch of {B}{hint}",
                [_net_line(src, f)],
            )
    if abs(c0 - 1) > 1e-4:
        D = f0.step.x0.shape[1] if f0.step.x0.ndim > 1 else 1
        why = " (the squared norm over the D = 2 coordinates, averaged over the batch)" if abs(c0 - D) < 1e-3 else ""
        notes.append(
            f"loss_reduction: the loss is {num(c0)} times mse_loss's mean of squares{why}; a constant scale "
            "c > 0 gives the same minimiser"
        )
    return outcome("loss_reduction", PASS)


def _loss_yields(src: Source, runs_steps: list[tuple[Run[TrainRun], list[Step]]], err: Error | None) -> Outcome:
    lines = src.yield_lines("training_loop")
    for run, steps in runs_steps:
        r = run.info.run + 1
        want = len(run.info.sizes) * run.info.epochs
        run_err = next(iter(run.of(Error)), None)
        for s in steps:
            if len(s.yields) != 1:
                why, at = "", []
                if run_err is not None and not s.yields:
                    why, at = f" ({raised(src, run_err, 'training_loop')})", [src.line(run_err.cell, run_err.line)]
                return outcome(
                    "loss_yields",
                    FAIL,
                    f"run {r}: batch {s.index + 1} of size {s.x0.shape[0]} gives {len(s.yields)} yields, not one{why}",
                    lines + at,
                )
            if s.yield_before_net:
                return outcome(
                    "loss_yields",
                    FAIL,
                    f"run {r}: batch {s.index + 1}'s yield comes before the network "
                    "sees the batch: it is not this batch's loss",
                    lines,
                )
            if s.yields[0].value is None:
                return outcome(
                    "loss_yields",
                    FAIL,
                    f"run {r}: the yield is a {s.yields[0].type}, not the loss's value (loss.item())",
                    lines,
                )
        if len(steps) != want:
            why = f"; {raised(src, err, 'training_loop')}" if err else ""
            return outcome(
                "loss_yields",
                FAIL,
                f"run {r}: {len(steps)} batches handed out for {len(run.info.sizes)} "
                f"batches x {run.info.epochs} epochs{why}",
                lines,
            )
    return outcome("loss_yields", PASS)
