"""Algorithm 1 read off a student's ``negative_elbo`` with probe networks [Ho20 alg. 1, eqs. 4, 14].

Each round calls ``negative_elbo`` twice under the same global seed, so both calls draw the same t
and eps: once at x_0 = 0 with the network answering 0, which records the noise part of x_t alone,
and once at a chosen x_0 with the network answering a chosen eps_theta. Their difference is the mean
of q(x_t | x_0), exactly: its factor on x_0 names the step t of every sample (sqrt(alpha_bar_t) is
one-to-one in t), and with t known the noise part gives eps, and eps the returned value's target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddpm.verify.adapter import describe_step
from ddpm.verify.coefficients import RTOL, Monomial, explain, explain_all, values
from ddpm.verify.harness import Harness, mc
from ddpm.verify.probes import Probe
from ddpm.verify.report import FAIL, PASS, SKIP, Outcome

__all__ = ["TrainingFacts", "check_training", "ENC_RTOL", "ROUNDS"]

ROUNDS = 3  # seeds, each a pair of calls: enough draws of t for the uniformity check at T = 20
# Encodings of t come from the same float32 code for the same step; 1e-5 relative allows a
# different but equivalent expression (t / T computed in float64, then cast), and is far below
# the gap 1/T between adjacent steps' encodings.
ENC_RTOL = 1e-5
SQRT_ALPHA_BAR = Monomial(alpha_bar=0.5)
NOISE_SD = Monomial(one_minus_alpha_bar=0.5)


@dataclass
class TrainingFacts:
    """What the training probes established: outcomes, and the encoding of each step t if consistent."""

    outcomes: list[Outcome] = field(default_factory=list)
    encoding: dict[int, float] | None = None
    encoding_problem: str = ""


@dataclass
class _Draws:
    """The rounds' records, flattened over rounds: x_0, the network's answer, x_t's noise part, x_t, t's encoding."""

    x0: Tensor
    answer: Tensor
    noise: Tensor
    xt: Tensor
    enc: Tensor
    value: Tensor | None  # per sample, over all rounds; None unless each call returned one value a sample
    value_shape: tuple[int, ...]
    first_mean: float  # negative_elbo(x).mean() in round 0, for loss()
    loss: Tensor
    t_shapes: set


def _record(h: Harness) -> tuple[_Draws | None, list[Outcome]]:
    c = h.config
    B, D = c.batch, c.dim
    shape = c.shape(B, D)
    gen = c.generator("train")
    x0 = (2 * torch.randn(ROUNDS, B, D, generator=gen)).float()
    answer = torch.randn(ROUNDS, B, D, generator=gen).float()
    noise, xt, enc, value, t_shapes = [], [], [], [], set()
    loss = None
    for k in range(ROUNDS):
        seed = c.replay_seed(k)
        zero_probe = Probe(shape)
        h.call("negative_elbo", zero_probe, torch.zeros(shape), seed)
        probe = Probe(shape, lambda x, t, j, k=k: answer[k].reshape(shape))
        value.append(h.call("negative_elbo", probe, x0[k].reshape(shape), seed))
        if k == 0:
            loss = h.call("loss", Probe(shape, lambda x, t, j: answer[0].reshape(shape)), x0[0].reshape(shape), seed)
        for p in (zero_probe, probe):
            if len(p.calls) != 1:
                return None, [Outcome("network_call", FAIL, f"negative_elbo calls the network {len(p.calls)} times; "
                                      "Algorithm 1 evaluates eps_theta(x_t, t) once")]
            t_shapes.add((p.calls[0].t_shape, p.calls[0].t_is_tensor))
        if not torch.equal(zero_probe.calls[0].t, probe.calls[0].t):
            return None, [Outcome("forward_mean", FAIL, "negative_elbo's draws do not repeat when torch's, numpy's "
                                  "and random's global seeds are reset, so the verifier cannot read x_t off: draw t "
                                  "and eps with torch (torch.randint, torch.randn_like)")]
        noise.append(zero_probe.calls[0].x.reshape(B, D))
        xt.append(probe.calls[0].x.reshape(B, D))
        enc.append(probe.calls[0].t)
    flat = lambda v: torch.stack(v).reshape(ROUNDS * B, -1).to(torch.float64)  # noqa: E731
    value = [torch.as_tensor(v).detach().double() for v in value]
    per_sample = torch.cat([v.reshape(-1) for v in value]) if all(v.numel() == B for v in value) else None
    return _Draws(x0.reshape(-1, D).double(), answer.reshape(-1, D).double(), flat(noise), flat(xt), torch.cat(enc),
                  per_sample, tuple(value[0].shape), float(value[0].mean()), torch.as_tensor(loss).detach(), t_shapes), []


def check_network_call(t_shapes: set, batch: int, where: str) -> Outcome:
    """The network's t is a tensor of shape (batch, 1), as the template's FcNetwork takes it."""
    bad = sorted({s for s, is_tensor in t_shapes if not is_tensor or s != (batch, 1)})
    if not bad and all(is_tensor for _, is_tensor in t_shapes):
        return Outcome("network_call", PASS)
    got = "a number" if not all(is_tensor for _, is_tensor in t_shapes) else f"t of shape {bad[0]}"
    return Outcome("network_call", FAIL, f"{where} gives the network {got}; the template's network takes t of "
                   f"shape (batch, 1) = ({batch}, 1)")


def _steps(d: _Draws, h: Harness) -> tuple[Tensor | None, Outcome]:
    """Each sample's step t, read off the factor of x_0 in x_t [Ho20 eq. 4]."""
    s = h.config.schedule
    diff = d.xt - d.noise
    a = (diff * d.x0).sum(1) / (d.x0**2).sum(1)
    resid = (diff - a[:, None] * d.x0).norm(dim=1)
    if (resid > RTOL * (d.xt.norm(dim=1) + d.noise.norm(dim=1))).any():
        return None, Outcome("forward_mean", FAIL, "the mean of x_t is not a multiple of x_0 (x_t at x_0 minus x_t at "
                             "x_0 = 0, with the same t and eps, is not proportional to x_0); eq. 4 has sqrt(alpha_bar_t) x_0")
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
        return None, Outcome("forward_mean", FAIL, f"x_t has mean {value:.5g} x_0, which is sqrt(alpha_bar_t) x_0 "
                             f"for no t in 1..{s.T} [eq. 4]")
    m, steps = found
    t = torch.tensor(steps)[index]
    i = int((rel.min(1).values > RTOL).nonzero()[0])
    step = int(t[i])
    return t, Outcome("forward_mean", FAIL, f"x_t has mean {m} x_0 where eq. 4 has sqrt(alpha_bar_t) x_0 (at "
                      f"{describe_step(step)}: {float(a[i]):.5g} x_0 instead of {float(s.alpha_bar[step].sqrt()):.5g} x_0)")


def _check_noise(eps: Tensor, t: Tensor, h: Harness) -> Outcome:
    """x_t's noise part, divided by sqrt(1 - alpha_bar_t), is eps ~ N(0, I) [Ho20 eq. 4]."""
    c, s = h.config, h.config.schedule
    sd = s.one_minus_alpha_bar.sqrt()[t]
    n, D = eps.shape
    steps = t.unique()
    # Standardised within each step, so that a wrong scale (checked last) does not pass for a wrong shape.
    unit = torch.empty_like(eps)
    for u in steps:
        unit[t == u] = eps[t == u] / eps[t == u].pow(2).mean().sqrt()
    kurtosis = unit.pow(4).mean()
    ok, _ = mc("train: noise kurtosis", kurtosis, (24 / (n * D)) ** 0.5, 3.0, n * D, c)
    if not ok:
        return Outcome("forward_noise", FAIL, f"the noise in x_t is not Gaussian: E[eps^4] / E[eps^2]^2 = "
                       f"{float(kurtosis):.3g} where N(0, 1) gives 3 (torch.randn_like draws it, torch.rand_like not)")
    ok, worst = mc("train: noise mean", unit.mean(0), 1 / n**0.5, 0.0, n, c)
    if not ok:
        return Outcome("forward_noise", FAIL, f"the noise in x_t has mean {float(unit.mean(0)[worst]):.3g} "
                       f"(in units of its scale) in coordinate {worst}; eq. 4's noise has mean 0")
    w = (eps**2).mean(1)
    counts = torch.stack([(t == u).sum() for u in steps]).double()
    ratio = torch.stack([w[t == u].mean() for u in steps])
    ok, worst = mc("train: noise variance by step", ratio, (2 / D / counts).sqrt(), 1.0, n, c)
    if not ok:
        u = int(steps[worst])
        got = float((ratio[worst] * s.one_minus_alpha_bar[u]).sqrt())
        hint = explain(got, s, NOISE_SD, u, rtol=3 * float((2 / D / counts[worst]).sqrt()), at_t_only=True)
        like = f": {hint[0]} where eq. 4 has sqrt(1 - alpha_bar_t)" if hint and hint[0] != NOISE_SD else ""
        return Outcome("forward_noise", FAIL, f"the noise in x_t has standard deviation {got:.4g} at "
                       f"{describe_step(u)}, not sqrt(1 - alpha_bar_t) = {float(sd[t == u][0]):.4g}{like}")
    return Outcome("forward_noise", PASS)


def _check_t(t: Tensor, h: Harness) -> Outcome:
    """t ~ Uniform{1..T}, independently for each sample [Ho20 alg. 1 l. 3]."""
    c = h.config
    n, p = t.numel(), 1 / c.T
    pairs = t.reshape(ROUNDS, -1)[:, : c.batch // 2 * 2].reshape(-1, 2)
    same = (pairs[:, 0] == pairs[:, 1]).double()
    ok, _ = mc("train: t independent", same.mean(), (p * (1 - p) / len(same)) ** 0.5, p, len(same), c)
    if not ok:
        one = " (one t for the whole batch)" if same.all() else ""
        return Outcome("train_t", FAIL, f"two samples of a batch share t with frequency {float(same.mean()):.3g}{one}, "
                       f"not 1/T = {p:.3g}: Algorithm 1 draws t for each sample")
    freq = torch.bincount(t - 1, minlength=c.T).double() / n
    ok, worst = mc("train: t uniform", freq, (p * (1 - p) / n) ** 0.5, p, n, c)
    if not ok:
        never = [u + 1 for u in range(c.T) if freq[u] == 0]
        if never:
            named = ", ".join(describe_step(u) for u in never[:3]) + (" ..." if len(never) > 3 else "")
            return Outcome("train_t", FAIL, f"t is never {named} in {n} draws; Algorithm 1 draws t uniformly from "
                           f"all of 1..T, and the template's index i is step i + 1")
        return Outcome("train_t", FAIL, f"t = {worst + 1} is drawn with frequency {float(freq[worst]):.3g}; "
                       f"Algorithm 1 draws each of the T = {c.T} steps with frequency {p:.3g}")
    return Outcome("train_t", PASS)


def _check_eps(eps: Tensor, h: Harness) -> Outcome:
    """eps is drawn afresh for each sample and at each call [Ho20 alg. 1 l. 4]."""
    c = h.config
    e = eps.reshape(ROUNDS, c.batch, -1)
    e = e - e.mean((0, 1))  # correlations of the centred noise: a wrong mean is forward_noise's to report
    scale = (e**2).mean()
    pairs = e[:, : c.batch // 2 * 2].reshape(ROUNDS, -1, 2, e.shape[-1])
    corr = (pairs[:, :, 0] * pairs[:, :, 1]).mean() / scale
    n = pairs[:, :, 0].numel()
    ok, _ = mc("train: eps independent across samples", corr, 1 / n**0.5, 0.0, n, c)
    if not ok:
        return Outcome("train_eps", FAIL, f"the eps of different samples are correlated ({float(corr):.3g}); "
                       "Algorithm 1 draws eps ~ N(0, I) for each sample (torch.randn_like(x), not one row for all)")
    corr = (e[0] * e[1]).mean() / scale
    ok, _ = mc("train: eps fresh across calls", corr, 1 / e[0].numel() ** 0.5, 0.0, e[0].numel(), c)
    if not ok:
        return Outcome("train_eps", FAIL, f"eps repeats between calls of negative_elbo (correlation {float(corr):.3g}): "
                       "it is fixed once (a stored tensor or a seed set inside), not drawn afresh at each call")
    return Outcome("train_eps", PASS)


def _check_value(d: _Draws, t: Tensor, eps: Tensor, h: Harness) -> Outcome:
    """negative_elbo returns c ||eps - eps_theta||^2 per sample, one c > 0 for all [Ho20 eq. 14]."""
    n, D = eps.shape
    v = d.value
    if v is None:
        if math.prod(d.value_shape) == 1:
            return Outcome("loss_value", FAIL, "negative_elbo returns one number for the whole batch; eq. 14 "
                           "(Algorithm 1) gives one value per sample, shape (batch,), and loss() takes the mean")
        return Outcome("loss_value", FAIL, f"negative_elbo returns shape {d.value_shape}; eq. 14 gives one "
                       f"value per sample, shape ({h.config.batch},)")
    o = d.answer

    def proportional(target: Tensor) -> tuple[bool, Tensor]:
        ratio = v / target
        return bool((ratio > 0).all() and ratio.max() - ratio.min() <= RTOL * ratio.max()), ratio

    ok, ratio = proportional(((eps - o) ** 2).sum(1))
    if ok:
        factor = float(ratio.median())
        words = ("a sum over dimensions" if abs(factor - 1) <= RTOL else
                 f"a mean over the {D} dimensions" if abs(factor * D - 1) <= RTOL else f"factor c = {factor:.6g}")
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
            return Outcome("loss_value", FAIL, f"negative_elbo returns {name}; eq. 14 is ||eps - eps_theta(x_t, t)||^2")
    by_step = [ratio[t == u] for u in t.unique()]
    if all(r.max() - r.min() <= RTOL * r.abs().max() for r in by_step):
        return Outcome("loss_value", FAIL, "negative_elbo weights ||eps - eps_theta||^2 by a factor that depends on t; "
                       "eq. 14 drops the weights (one constant factor for every t)")
    return Outcome("loss_value", FAIL, f"negative_elbo is not c ||eps - eps_theta(x_t, t)||^2 per sample: its ratio to it "
                   f"ranges over [{float(ratio.min()):.4g}, {float(ratio.max()):.4g}]")


def _check_loss(d: _Draws, h: Harness) -> Outcome:
    """loss(x) is negative_elbo(x).mean() under the same draws (the template's ``loss``)."""
    want = d.first_mean
    if d.loss.numel() != 1:
        return Outcome("loss_mean", FAIL, f"loss(x) returns shape {tuple(d.loss.shape)}, not a number")
    got = float(d.loss)
    if abs(got - want) > RTOL * abs(want):
        return Outcome("loss_mean", FAIL, f"loss(x) = {got:.6g} but negative_elbo(x).mean() = {want:.6g} "
                       "with the same draws")
    return Outcome("loss_mean", PASS)


def _encoding(d: _Draws, t: Tensor) -> tuple[dict[int, float] | None, str]:
    """The encoding of each step t the network is given in training, if it is a one-to-one function of t."""
    enc = {}
    for u in t.unique().tolist():
        e = d.enc[t == u]
        if e.max() - e.min() > ENC_RTOL * max(1.0, float(e.abs().max())):
            return None, (f"in training the network is given different t ({float(e.min()):.4g} and {float(e.max()):.4g})"
                          f" for the same step {describe_step(u)}")
        enc[u] = float(e[0])
    steps = sorted(enc)
    for a, b in zip(steps, steps[1:]):
        if abs(enc[a] - enc[b]) <= ENC_RTOL * max(1.0, abs(enc[a])):
            return None, (f"in training the network is given the same t = {enc[a]:.4g} for steps t = {a} and t = {b}: "
                          "it cannot tell the steps apart (integer division?)")
    return enc, ""


def check_training(h: Harness) -> TrainingFacts:
    """Every Algorithm 1 spec of ``negative_elbo`` and ``loss``; raises StudentError if they raise."""
    facts = TrainingFacts()
    d, failed = _record(h)
    if d is None:
        facts.outcomes = failed
        return facts
    out = facts.outcomes
    out.append(check_network_call(d.t_shapes, h.config.batch, "negative_elbo"))
    t, outcome = _steps(d, h)
    out.append(outcome)
    if t is None:
        why = "the step t of each sample cannot be read off x_t (see forward_mean)"
        out += [Outcome(s, SKIP, why) for s in ("forward_noise", "train_t", "train_eps", "loss_value")]
        out.append(_check_loss(d, h))
        facts.encoding_problem = why
        return facts
    eps = d.noise / h.config.schedule.one_minus_alpha_bar.sqrt()[t][:, None]
    independent = _check_eps(eps, h)
    if independent.status == PASS:
        noise = _check_noise(eps, t, h)
    else:
        noise = Outcome("forward_noise", SKIP, "the law of the noise needs eps independent across samples (see train_eps)")
    out += [noise, _check_t(t, h), independent]
    if noise.status == PASS:
        out.append(_check_value(d, t, eps, h))
    else:
        out.append(Outcome("loss_value", SKIP, "eps cannot be read off x_t while its noise is wrong (see forward_noise)"))
    out.append(_check_loss(d, h))
    facts.encoding, facts.encoding_problem = _encoding(d, t)
    return facts
