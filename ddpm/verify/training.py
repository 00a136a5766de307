"""Algorithm 1 read off the records of a student's code [Ho20 alg. 1, eqs. 4, 14].

The records are those of ``negative_elbo`` and ``loss``.

Runs in the parent, on records only. Each round holds two calls of ``negative_elbo`` under the same
global seed, so both drew the same t and eps: once at x_0 = 0 with the network answering 0, which
recorded the noise part of x_t alone, and once at a chosen x_0 with the network answering a chosen
eps_theta. Their difference is the mean of q(x_t | x_0), exactly: its factor on x_0 names the step t
of every sample (sqrt(alpha_bar_t) is one-to-one in t), and with t known the noise part gives eps, and
eps the returned value's target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture
from ddpm.verify.adapter import describe_step
from ddpm.verify.coefficients import RTOL, Monomial, explain, explain_all, values
from ddpm.verify.dtu.specs import ROUNDS, Config, train_inputs
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome
from ddpm.verify.stats import binomial_ok, mc

__all__ = ["TrainingFacts", "decide_training", "encoding_of_calls", "ENC_RTOL", "LAW_DATA", "TRAIN_SPECS"]

# Encodings of t come from the same float32 code for the same step; 1e-5 relative allows a
# different but equivalent expression (t / T computed in float64, then cast), and is far below
# the gap 1/T between adjacent steps' encodings.
ENC_RTOL = 1e-5
SQRT_ALPHA_BAR = Monomial(alpha_bar=0.5)
NOISE_SD = Monomial(one_minus_alpha_bar=0.5)
TRAIN_SPECS = ("forward_mean", "forward_noise", "train_t", "train_eps", "loss_value", "loss_mean")

# The known distribution of the end-to-end check: one Gaussian N((1.5, -0.5), 0.25 I) in 2-D.
LAW_DATA = GaussianMixture.isotropic([1.0], [[1.5, -0.5]], 0.5)

# A ``call`` record, read only: the child's ``ddpm.verify.dtu.observe.CallRecord``, or that record as the
# channel delivers it to the parent (a plain dict).
Record = Mapping[str, Any]


@dataclass
class TrainingFacts:
    """What the training records establish: outcomes, each step's encoding if consistent, the lines."""

    outcomes: list[Outcome] = field(default_factory=list)
    encoding: dict[int, float] | None = None
    encoding_problem: str = ""
    network_sites: list[str] = field(default_factory=list)
    t_shapes: set = field(default_factory=set)


@dataclass
class _Draws:
    """The rounds' records, flattened over rounds.

    x_0, the network's answer, x_t's noise part, x_t, t's encoding.
    """

    x0: Tensor
    answer: Tensor
    noise: Tensor
    xt: Tensor
    enc: Tensor
    value: Tensor | None  # per sample, over all rounds; None unless each call returned one value a sample
    value_shape: tuple[int, ...]
    first_mean: float  # negative_elbo(x).mean() in round 0, for loss()


def _sites(calls: list[dict], pick) -> list[str]:
    seen: list[str] = []
    for call in calls:
        for s in pick(call):
            if s and s not in seen:
                seen.append(s)
    return seen


def net_sites(calls: list[dict]) -> list[str]:
    """The student's lines that called the network, in order of first use."""
    return _sites(calls, lambda c: [n["site"] for n in c.get("net", [])])


def draw_sites(calls: list[dict], keep=lambda d: True) -> list[str]:
    """The student's lines that drew random numbers (those ``keep`` accepts)."""
    return _sites(calls, lambda c: [d["site"] for d in c.get("draws", []) if keep(d)])


def _pairs(c: Config, calls: Sequence[Record]) -> list[tuple[Record, Record]]:
    by = {(k["role"], k["round"]): k for k in calls if k["method"] == "negative_elbo"}
    return [(by[("zero", r)], by[("answer", r)]) for r in range(ROUNDS) if ("zero", r) in by and ("answer", r) in by]


def _assemble(c: Config, pairs: list[tuple[Record, Record]]) -> _Draws:
    B, D = c.batch, c.dim
    x0, answer = train_inputs(c)
    flat = lambda v: torch.stack(v).reshape(ROUNDS * B, -1).to(torch.float64)  # noqa: E731
    noise = [z["net"][0]["x"].reshape(B, D) for z, _ in pairs]
    xt = [a["net"][0]["x"].reshape(B, D) for _, a in pairs]
    enc = torch.cat([a["net"][0]["t"] for _, a in pairs])
    value = [a["out"].double() if a["out"] is not None else torch.full((0,), float("nan")) for _, a in pairs]
    per_sample = torch.cat([v.reshape(-1) for v in value]) if all(v.numel() == B for v in value) else None
    return _Draws(
        x0.reshape(-1, D).double(),
        answer.reshape(-1, D).double(),
        flat(noise),
        flat(xt),
        enc,
        per_sample,
        tuple(value[0].shape),
        float(value[0].mean()) if value[0].numel() else float("nan"),
    )


def _steps(d: _Draws, c: Config, lines: tuple) -> tuple[Tensor | None, Outcome]:
    """Each sample's step t, read off the factor of x_0 in x_t [Ho20 eq. 4]."""
    s = c.schedule
    diff = d.xt - d.noise
    a = (diff * d.x0).sum(1) / (d.x0**2).sum(1)
    resid = (diff - a[:, None] * d.x0).norm(dim=1)
    if (resid > RTOL * (d.xt.norm(dim=1) + d.noise.norm(dim=1))).any():
        return None, Outcome(
            "forward_mean",
            FAIL,
            "the mean of x_t is not a multiple of x_0 (x_t at x_0 minus x_t at "
            "x_0 = 0, with the same t and eps, is not proportional to x_0); eq. 4 has "
            "sqrt(alpha_bar_t) x_0",
            lines=lines,
        )
    ref = values(s, SQRT_ALPHA_BAR)[1:]
    rel = (a[:, None] - ref[None, :]).abs() / ref[None, :]
    if (rel.min(1).values <= RTOL).all():
        return rel.argmin(1) + 1, Outcome("forward_mean", PASS)
    keys = [float(f"{v:.5g}") for v in a.tolist()]  # one key a step: the float32 noise is ~1e-7 relative
    distinct = sorted(set(keys))
    index = torch.tensor([distinct.index(k) for k in keys])
    found = explain_all(distinct, s, SQRT_ALPHA_BAR)
    if found is None:
        value = float(a[(rel.min(1).values > RTOL).nonzero()[0]])
        return None, Outcome(
            "forward_mean",
            FAIL,
            f"x_t has mean {value:.5g} x_0, which is sqrt(alpha_bar_t) x_0 for no t in 1..{s.T} [eq. 4]",
            lines=lines,
        )
    m, steps = found
    t = torch.tensor(steps)[index]
    i = int((rel.min(1).values > RTOL).nonzero()[0])
    step = int(t[i])
    return t, Outcome(
        "forward_mean",
        FAIL,
        f"x_t has mean {m} x_0 where eq. 4 has sqrt(alpha_bar_t) x_0 (at "
        f"{describe_step(step)}: {float(a[i]):.5g} x_0 instead of {float(s.alpha_bar[step].sqrt()):.5g} "
        "x_0)",
        lines=lines,
    )


def _check_noise(eps: Tensor, t: Tensor, c: Config, lines: tuple) -> Outcome:
    """x_t's noise part, divided by sqrt(1 - alpha_bar_t), is eps ~ N(0, I) [Ho20 eq. 4]."""
    s, fa = c.schedule, c.false_alarm
    sd = s.one_minus_alpha_bar.sqrt()[t]
    n, D = eps.shape
    steps = t.unique()
    # Standardised within each step, so that a wrong scale (checked last) does not pass for a wrong shape.
    w = (eps**2).mean(1)
    counts = torch.bincount(t, minlength=s.T + 1).double()
    per_step = torch.zeros(s.T + 1, dtype=torch.float64).index_add_(0, t, w) / counts.clamp(min=1)
    unit = eps / per_step.sqrt()[t][:, None]
    kurtosis = unit.pow(4).mean()
    ok, _ = mc("train: noise kurtosis", kurtosis, (24 / (n * D)) ** 0.5, 3.0, n * D, fa)
    if not ok:
        return Outcome(
            "forward_noise",
            FAIL,
            f"the noise in x_t is not Gaussian: E[eps^4] / E[eps^2]^2 = "
            f"{float(kurtosis):.3g} where N(0, 1) gives 3 (torch.randn_like draws it, torch.rand_like not)",
            lines=lines,
        )
    ok, worst = mc("train: noise mean", unit.mean(0), 1 / n**0.5, 0.0, n, fa)
    if not ok:
        return Outcome(
            "forward_noise",
            FAIL,
            f"the noise in x_t has mean {float(unit.mean(0)[worst]):.3g} "
            f"(in units of its scale) in coordinate {worst}; eq. 4's noise has mean 0",
            lines=lines,
        )
    counts = counts[steps]
    ratio = per_step[steps]
    ok, worst = mc("train: noise variance by step", ratio, (2 / D / counts).sqrt(), 1.0, n, fa)
    if not ok:
        u = int(steps[worst])
        got = float((ratio[worst] * s.one_minus_alpha_bar[u]).sqrt())
        hint = explain(got, s, NOISE_SD, u, rtol=3 * float((2 / D / counts[worst]).sqrt()), at_t_only=True)
        like = f": {hint[0]} where eq. 4 has sqrt(1 - alpha_bar_t)" if hint and hint[0] != NOISE_SD else ""
        return Outcome(
            "forward_noise",
            FAIL,
            f"the noise in x_t has standard deviation {got:.4g} at "
            f"{describe_step(u)}, not sqrt(1 - alpha_bar_t) = {float(sd[t == u][0]):.4g}{like}",
            lines=lines,
        )
    return Outcome("forward_noise", PASS)


def _check_t(t: Tensor, c: Config, lines: tuple) -> Outcome:
    """t ~ Uniform{1..T}, independently for each sample [Ho20 alg. 1 l. 3]: exact binomial tails."""
    n, p = t.numel(), 1 / c.T
    pairs = t.reshape(ROUNDS, -1)[:, : c.batch // 2 * 2].reshape(-1, 2)
    same = int((pairs[:, 0] == pairs[:, 1]).sum())
    ok, _ = binomial_ok(same, len(pairs), p, c.false_alarm)
    if not ok:
        one = " (one t for the whole batch)" if same == len(pairs) else ""
        return Outcome(
            "train_t",
            FAIL,
            f"two samples of a batch share t with frequency {same / len(pairs):.3g}{one}, "
            f"not 1/T = {p:.3g}: Algorithm 1 draws t for each sample",
            lines=lines,
        )
    counts = torch.bincount(t - 1, minlength=c.T)
    ok, worst = binomial_ok(counts, n, p, c.false_alarm)
    if not ok:
        never = [u + 1 for u in range(c.T) if counts[u] == 0]
        if never:
            named = ", ".join(describe_step(u) for u in never[:3]) + (" ..." if len(never) > 3 else "")
            return Outcome(
                "train_t",
                FAIL,
                f"t is never {named} in {n} draws; Algorithm 1 draws t uniformly from "
                f"all of 1..T, and the template's index i is step i + 1",
                lines=lines,
            )
        return Outcome(
            "train_t",
            FAIL,
            f"t = {worst + 1} is drawn with frequency {float(counts[worst]) / n:.3g}; "
            f"Algorithm 1 draws each of the T = {c.T} steps with frequency {p:.3g}",
            lines=lines,
        )
    return Outcome("train_t", PASS)


def _check_eps(eps: Tensor, c: Config, lines: tuple) -> Outcome:
    """eps is drawn afresh for each sample and at each call [Ho20 alg. 1 l. 4]."""
    e = eps.reshape(ROUNDS, c.batch, -1)
    e = e - e.mean((0, 1))  # correlations of the centred noise: a wrong mean is forward_noise's to report
    scale = (e**2).mean()
    pairs = e[:, : c.batch // 2 * 2].reshape(ROUNDS, -1, 2, e.shape[-1])
    corr = (pairs[:, :, 0] * pairs[:, :, 1]).mean() / scale
    n = pairs[:, :, 0].numel()
    ok, _ = mc("train: eps independent across samples", corr, 1 / n**0.5, 0.0, n, c.false_alarm)
    if not ok:
        return Outcome(
            "train_eps",
            FAIL,
            f"the eps of different samples are correlated ({float(corr):.3g}); "
            "Algorithm 1 draws eps ~ N(0, I) for each sample (torch.randn_like(x), not one row for all)",
            lines=lines,
        )
    corr = (e[0] * e[1]).mean() / scale
    ok, _ = mc("train: eps fresh across calls", corr, 1 / e[0].numel() ** 0.5, 0.0, e[0].numel(), c.false_alarm)
    if not ok:
        return Outcome(
            "train_eps",
            FAIL,
            "eps repeats between calls of negative_elbo (correlation "
            f"{float(corr):.3g}): "
            "it is fixed once (a stored tensor or a seed set inside), not drawn afresh at each call",
            lines=lines,
        )
    return Outcome("train_eps", PASS)


def _check_value(d: _Draws, t: Tensor, eps: Tensor, c: Config, lines: tuple) -> Outcome:
    """negative_elbo returns c ||eps - eps_theta||^2 per sample, one c > 0 for all [Ho20 eq. 14]."""
    n, D = eps.shape
    v = d.value
    if v is None:
        if math.prod(d.value_shape) == 1:
            return Outcome(
                "loss_value",
                FAIL,
                "negative_elbo returns one number for the whole batch; eq. 14 "
                "(Algorithm 1) gives one value per sample, shape (batch,), and loss() takes the mean",
                lines=lines,
            )
        return Outcome(
            "loss_value",
            FAIL,
            f"negative_elbo returns shape {d.value_shape}; eq. 14 gives one value per sample, shape ({c.batch},)",
            lines=lines,
        )
    o = d.answer

    def proportional(target: Tensor) -> tuple[bool, Tensor]:
        ratio = v / target
        return bool((ratio > 0).all() and ratio.max() - ratio.min() <= RTOL * ratio.max()), ratio

    ok, ratio = proportional(((eps - o) ** 2).sum(1))
    if ok:
        factor = float(ratio.median())
        words = (
            "a sum over dimensions"
            if abs(factor - 1) <= RTOL
            else f"a mean over the {D} dimensions"
            if abs(factor * D - 1) <= RTOL
            else f"factor c = {factor:.6g}"
        )
        return Outcome("loss_value", PASS, f"||eps - eps_theta||^2 times c = {factor:.6g}: {words}")
    alternatives = {
        "||eps - eps_theta|| (the norm, not squared)": (eps - o).norm(dim=1),
        "||x_0 - eps_theta||^2: it regresses x_0 instead of eps": ((d.x0 - o) ** 2).sum(1),
        "||x_t - eps_theta||^2: it regresses x_t instead of eps": ((d.xt - o) ** 2).sum(1),
        "||sqrt(1 - alpha_bar_t) eps - eps_theta||^2: the scaled noise, not eps": ((d.noise - o) ** 2).sum(1),
        "||eps + eps_theta||^2: a sign error": ((eps + o) ** 2).sum(1),
    }
    for name, target in alternatives.items():
        if proportional(target)[0]:
            return Outcome(
                "loss_value",
                FAIL,
                f"negative_elbo returns {name}; eq. 14 is ||eps - eps_theta(x_t, t)||^2",
                lines=lines,
            )
    by_step = [ratio[t == u] for u in t.unique()]
    if all(r.max() - r.min() <= RTOL * r.abs().max() for r in by_step):
        return Outcome(
            "loss_value",
            FAIL,
            "negative_elbo weights ||eps - eps_theta||^2 by a factor that depends on t; "
            "eq. 14 drops the weights (one constant factor for every t)",
            lines=lines,
        )
    return Outcome(
        "loss_value",
        FAIL,
        f"negative_elbo is not c ||eps - eps_theta(x_t, t)||^2 per sample: its ratio to "
        f"it ranges over [{float(ratio.min()):.4g}, {float(ratio.max()):.4g}]",
        lines=lines,
    )


def _check_loss(loss_call: Record | None, first: Record | None, c: Config) -> Outcome:
    """loss(x) is negative_elbo(x).mean() under the same draws (the template's ``loss``)."""
    lines = tuple(filter(None, [loss_call and loss_call.get("return_site")]))
    if loss_call is None or first is None:
        return Outcome("loss_mean", UNDECIDED, "not decided: loss(x) was not observed")
    if loss_call["error"]:
        return Outcome("loss_mean", FAIL, loss_call["error"], lines=tuple(filter(None, [loss_call["error_site"]])))
    if first["error"] or first["out"] is None:
        return Outcome("loss_mean", UNDECIDED, "not decided: negative_elbo(x) gave no value to compare with")
    if loss_call["out"] is None:
        return Outcome("loss_mean", FAIL, f"loss(x) returns {loss_call['out_desc']}, not a number", lines=lines)
    got_t, want = loss_call["out"], float(first["out"].double().mean())
    if got_t.numel() != 1:
        return Outcome("loss_mean", FAIL, f"loss(x) returns shape {tuple(got_t.shape)}, not a number", lines=lines)
    got = float(got_t)
    if not abs(got - want) <= RTOL * abs(want):
        return Outcome(
            "loss_mean",
            FAIL,
            f"loss(x) = {got:.6g} but negative_elbo(x).mean() = {want:.6g} with the same draws",
            lines=lines,
        )
    return Outcome("loss_mean", PASS)


def _encoding(enc: Tensor, t: Tensor) -> tuple[dict[int, float] | None, str]:
    """The encoding of each step t the network is given in training, if it is a one-to-one function of t."""
    found = {}
    for u in t.unique().tolist():
        e = enc[t == u]
        if e.max() - e.min() > ENC_RTOL * max(1.0, float(e.abs().max())):
            return None, (
                f"in training the network is given different t ({float(e.min()):.4g} and "
                f"{float(e.max()):.4g})"
                f" for the same step {describe_step(u)}"
            )
        found[u] = float(e[0])
    steps = sorted(found)
    for a, b in zip(steps, steps[1:]):
        if abs(found[a] - found[b]) <= ENC_RTOL * max(1.0, abs(found[a])):
            return None, (
                f"in training the network is given the same t = {found[a]:.4g} for steps t = {a} and "
                f"t = {b}: "
                "it cannot tell the steps apart (integer division?)"
            )
    return found, ""


def _usable(c: Config, pairs: list[tuple[Record, Record]]) -> str:
    """Why the training pairs cannot be read (empty when they can)."""
    B, D = c.batch, c.dim
    shape = list(c.shape(B, D))
    if len(pairs) != ROUNDS:
        return "negative_elbo was not observed in every round"
    for z, a in pairs:
        for call in (z, a):
            if call["error"]:
                return call["error"]
            if len(call["net"]) != 1:
                return f"negative_elbo calls the network {len(call['net'])} times"
            net = call["net"][0]
            if net["x_shape"] != shape or net["t"] is None or net["x"] is None:
                return (
                    f"negative_elbo gives the network x of shape {tuple(net['x_shape'])} for data of shape "
                    f"{tuple(shape)}"
                )
    return ""


def encoding_of_calls(config: Config | dict, calls: Sequence[Record]) -> dict[int, float] | None:
    """The training encoding {step t: code} the records show, or None: what the law probe decodes t with."""
    c = Config.from_dict(config)
    pairs = _pairs(c, calls)
    if _usable(c, pairs) or any(not torch.equal(z["net"][0]["t"], a["net"][0]["t"]) for z, a in pairs):
        return None
    d = _assemble(c, pairs)
    t, _ = _steps(d, c, ())
    return None if t is None else _encoding(d.enc, t)[0]


def decide_training(c: Config, calls: list[dict]) -> TrainingFacts:
    """Every Algorithm 1 spec of ``negative_elbo`` and ``loss`` from the training call records."""
    facts = TrainingFacts()
    out = facts.outcomes
    pairs = _pairs(c, calls)
    elbo_calls = [k for k in calls if k["method"] == "negative_elbo"]
    loss_call = next((k for k in calls if k["method"] == "loss"), None)
    first = pairs[0][1] if pairs else None
    facts.network_sites = net_sites(elbo_calls)
    facts.t_shapes = {(tuple(n["t_shape"]), n["t_kind"]) for k in elbo_calls for n in k["net"]}
    net_lines = tuple(facts.network_sites[:2])
    problem = _usable(c, pairs)
    if problem:
        error_call = next((k for k in elbo_calls if k["error"]), None)
        lines = tuple(filter(None, [error_call and error_call["error_site"]])) or net_lines
        out.append(Outcome("forward_mean", FAIL, problem, lines=lines))
        why = "not decided: negative_elbo could not be observed (see forward_mean)"
        out += [Outcome(s, UNDECIDED, why) for s in ("forward_noise", "train_t", "train_eps", "loss_value")]
        out.append(_check_loss(loss_call, first, c))
        facts.encoding_problem = why
        return facts
    assert first is not None  # _usable passed: there are ROUNDS pairs
    d = _assemble(c, pairs)
    data_numel = c.batch * c.dim
    eps_lines = tuple(
        draw_sites(elbo_calls, lambda k: math.prod(k["shape"]) in (data_numel, c.dim) and "randint" not in k["fn"])[:2]
    )
    t_lines = tuple(
        draw_sites(
            elbo_calls, lambda k: "randint" in k["fn"] or len(k["shape"]) <= 1 and math.prod(k["shape"]) in (1, c.batch)
        )[:2]
    )
    value_lines = tuple(filter(None, [first.get("return_site")])) + net_lines[:1]
    t, outcome = _steps(d, c, net_lines + eps_lines)
    out.append(outcome)
    if t is None:
        why = "not decided: the step t of each sample cannot be read off x_t (see forward_mean)"
        out += [Outcome(s, UNDECIDED, why) for s in ("forward_noise", "train_t", "train_eps", "loss_value")]
        out.append(_check_loss(loss_call, first, c))
        facts.encoding_problem = why
        return facts
    eps = d.noise / c.schedule.one_minus_alpha_bar.sqrt()[t][:, None]
    independent = _check_eps(eps, c, eps_lines)
    if independent.status == PASS:
        noise = _check_noise(eps, t, c, net_lines[:1] + eps_lines)
    else:
        noise = Outcome(
            "forward_noise",
            UNDECIDED,
            "not decided: the law of the noise needs eps independent across samples (see train_eps)",
        )
    value = _check_value(d, t, eps, c, value_lines)
    about_shape = "shape" in value.detail or "one number" in value.detail
    if value.status == FAIL and noise.status != PASS and not about_shape:
        value = Outcome(
            "loss_value",
            UNDECIDED,
            "not decided: eps cannot be read off x_t while its noise is wrong (see forward_noise)",
        )
    out += [noise, _check_t(t, c, t_lines), independent, value, _check_loss(loss_call, first, c)]
    facts.encoding, facts.encoding_problem = _encoding(d.enc, t)
    return facts
