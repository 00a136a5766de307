"""The specs for the beta world's schedulers (DDPM, DDIM) [Ho20; Nichol21; Song21; Lin24].

Schedule, timesteps, step, parameterisation, add_noise, finite outputs, and the law of a sampler that
adds noise (its whole run, by Monte Carlo: what probing one step at a time cannot see, such as the
same noise drawn at every step).

Each spec is a function of a :class:`~ddpm.conform.targets.Factory` and the step counts, returning one
:class:`~ddpm.verify.report.Outcome`. The verdict comes from what the scheduler does (its ``betas``,
``alphas_cumprod``, ``timesteps``, ``step`` and ``add_noise``), held to closed forms imported from
``ddpm``; the configuration is read only for what the user asked of it (which schedule, which spacing,
which variance, eta), never the class name or a version.

The index map, written once here: a diffusers timestep k = 0..T-1 is the paper's t = k + 1, so
``alphas_cumprod[k]`` is alpha_bar_{k+1}; the step after the last listed timestep lands at alpha_bar = 1
(x_0). Tolerances are float32 round-off of what the scheduler computes (it stores its schedule in
float32): 64 ulps of the terms that make a coefficient, plus twice how far the closed form moves when
its inputs move by 16 ulps; a wrong coefficient is off by far more (the DDIM "linspace" landing by 1e-3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ddpm.beta.posterior import PREDICTIONS, ddim_coefficients, strided_posterior, x0_eps_from_output
from ddpm.beta.schedule import cosine_schedule, linear_schedule, scaled_linear_schedule, zero_terminal_snr
from ddpm.conform.law import CLIPPED_C, CLIPPED_MEAN, LAW_COUNTS, LAW_DRAWS, Run, data_law, exact_output, hold
from ddpm.conform.probe import SHAPE, Coefficients, noise, read_step
from ddpm.conform.targets import Factory, TargetError, parameters, raised
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome

__all__ = ["SPECS", "CITES", "CLAIMS", "DEFAULT_STEPS", "run_specs", "closed_form_alpha_bar"]

EPS32 = float(np.finfo(np.float32).eps)
ULPS = 64 * EPS32  # the project's float32 binding tolerance (specs/_bind.py FLOAT32_RTOL)
DELTA = 16 * EPS32  # how far the inputs (float32 alpha_bar, its ratios, a chain of float32 ops) may sit from exact
BETA_ULPS = 8  # ulps of error in the float32 ratio alpha_bar_t / alpha_bar_s, before 1 - it cancels
NO_NOISE = 1e-8  # a noise std below this is no noise (diffusers clamps a zero variance to 1e-20)
DEFAULT_STEPS = (1, 3, 7, 10, 50)
VARIANCE_V = 0.3  # the learned-range probe's predicted variance value v in [-1, 1] [Nichol21 eq. 15]

CITES = {
    "schedule": "[Ho20 §4; Nichol21 eq. 17; Lin24 alg. 1]",
    "timesteps": "[Ho20 alg. 2; Lin24 table 2]",
    "step": "[Ho20 eqs. 7, 11; Nichol21 §4, eq. 15; Song21 eq. 12]",
    "parameterisation": "[Ho20 eq. 9; Salimans22 §4]",
    "add_noise": "[Ho20 eq. 4]",
    "finite": "[Ho20 alg. 2]",
    "law": "[Ho20 alg. 2; Song21 eq. 12]",
}
CLAIMS = {
    "schedule": "betas and alphas_cumprod are the configuration's closed form; zero terminal SNR ends at 0",
    "timesteps": "set_timesteps(n) lists n strictly decreasing timesteps in range; the top where promised",
    "step": "step from t to the next listed t' is the posterior (DDPM) or DDIM eq. 12, coefficient by coefficient",
    "parameterisation": "the same exact denoiser as epsilon, sample and v_prediction gives the same x_t'",
    "add_noise": "add_noise is q(x_t | x_0) at every timestep",
    "finite": "every step of every step count gives finite outputs on finite inputs",
    "law": "a sampler that adds noise outputs the mean and variance of its closed-form recursion",
}
SPECS = tuple(CITES)


def closed_form_alpha_bar(config: dict[str, Any], T: int) -> tuple[Tensor | None, Tensor | None, str]:
    """(betas, alpha_bar_1..T) of the configuration's schedule in float64, or (None, None, why not).

    betas is None (only alpha_bar is compared) under zero-terminal-SNR rescaling.
    """
    kind = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        return None, None, "trained_betas given: no closed form to hold them to"
    b1, bT = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    if kind == "linear":
        s = linear_schedule(T, b1, bT)
    elif kind == "scaled_linear":
        s = scaled_linear_schedule(T, b1, bT)
    elif kind == "squaredcos_cap_v2":
        s = cosine_schedule(T, 0.008, 0.999)  # [Nichol21 eq. 17], beta capped at 0.999
    else:
        return None, None, f"beta_schedule={kind!r} has no closed form in ddpm"
    if config.get("rescale_betas_zero_snr"):
        return None, zero_terminal_snr(s.alpha_bar)[1:], ""
    return s.betas, s.alpha_bar[1:], ""


@dataclass
class Scheduler:
    """One instance of the target with what the specs read: its config, alpha_bar, and a step call."""

    obj: Any
    factory: Factory

    @property
    def config(self) -> dict[str, Any]:
        cfg = getattr(self.obj, "config", None)
        return dict(cfg) if cfg is not None else dict(self.factory.config)

    @property
    def alpha_bar(self) -> Tensor:
        return torch.as_tensor(self.obj.alphas_cumprod).to(torch.float64)

    def timesteps(self, n: int) -> list[int]:
        self.obj.set_timesteps(n)
        return [int(t) for t in torch.as_tensor(self.obj.timesteps).tolist()]

    @property
    def takes_generator(self) -> bool:
        names, any_keyword = parameters(self.obj.step)
        return "generator" in names or any_keyword

    def learned(self) -> bool:
        return str(self.config.get("variance_type", "")).startswith("learned")

    def step(self, t: int, m: Tensor, x: Tensor, generator: torch.Generator) -> Tensor:
        """x' of ``step(m, t, x)``, the generator passed where the step takes one."""
        if self.learned():  # the predicted variance rides in extra channels [Nichol21 eq. 15]
            m = torch.cat([m, torch.full_like(m, VARIANCE_V)], dim=1)
        extra = dict(self.factory.step_kwargs)
        if self.takes_generator:
            extra["generator"] = generator
        out = self.obj.step(m, t, x, **extra)
        return out[0] if isinstance(out, tuple) else out.prev_sample

    def call(self, t: int) -> Callable[[Tensor, Tensor, int], Tensor]:
        """The step at t as a probe calls it: a fresh generator seeded with ``seed`` for each call."""
        return lambda m, x, seed: self.step(t, m, x, torch.Generator().manual_seed(seed))


def _outcome(spec: str, status: str, detail: str) -> Outcome:
    return Outcome(spec, status, detail, CITES[spec])


def guard(spec: str, fn: Callable[[], Outcome], cites: Mapping[str, str] = CITES) -> Outcome:
    """A spec run with the library's exceptions named in its outcome, one line."""
    try:
        return fn()
    except TargetError as e:
        return Outcome(spec, UNDECIDED, str(e), cites[spec])
    except Exception as e:
        return Outcome(spec, FAIL, raised(e), cites[spec])


# -- 1. schedule ---------------------------------------------------------------------------------


def spec_schedule(sched: Scheduler, steps: Sequence[int]) -> Outcome:
    cfg = sched.config
    T = int(cfg.get("num_train_timesteps", sched.alpha_bar.numel()))
    betas_cf, ab_cf, why = closed_form_alpha_bar(cfg, T)
    ab = sched.alpha_bar
    if ab.numel() != T:
        return _outcome("schedule", FAIL, f"alphas_cumprod has {ab.numel()} entries for num_train_timesteps = {T}")
    if ab_cf is None:
        return _outcome("schedule", UNDECIDED, why)
    problems = []
    if betas_cf is not None:
        betas = torch.as_tensor(sched.obj.betas).to(torch.float64)
        err = (betas - betas_cf).abs() / betas_cf
        k = int(err.argmax())
        if float(err[k]) > ULPS:
            problems.append(
                f"betas[{k}] = {float(betas[k]):.9g}, closed form {float(betas_cf[k]):.9g} (rel {float(err[k]):.2g})"
            )
    # a cumulative product of T float32 factors: T ulps relative, and one ulp absolute near 0
    err = (ab - ab_cf).abs() / (T * EPS32 * ab_cf + EPS32 * 1e-3)
    k = int(err.argmax())
    if float(err[k]) > 1:
        problems.append(f"alphas_cumprod[{k}] = {float(ab[k]):.9g}, closed form {float(ab_cf[k]):.9g}")
    if cfg.get("rescale_betas_zero_snr"):
        if float(ab[-1]) != 0:
            problems.append(f"zero terminal SNR asked, alphas_cumprod[-1] = {float(ab[-1]):.3g}, not 0 [Lin24]")
    if not bool((ab[1:] < ab[:-1]).all()):
        k = int((ab[1:] >= ab[:-1]).nonzero()[0])
        problems.append(f"the SNR does not fall strictly: alphas_cumprod[{k + 1}] = {float(ab[k + 1]):.6g} >= [{k}]")
    if problems:
        return _outcome("schedule", FAIL, "; ".join(problems))
    what = cfg.get("beta_schedule", "linear") + (
        " rescaled to zero terminal SNR" if cfg.get("rescale_betas_zero_snr") else ""
    )
    return _outcome("schedule", PASS, f"{what}, T = {T}: betas and alphas_cumprod match the closed form")


# -- 2. timesteps --------------------------------------------------------------------------------


def spec_timesteps(sched: Scheduler, steps: Sequence[int]) -> Outcome:
    T = sched.alpha_bar.numel()
    spacing = sched.config.get("timestep_spacing")
    offset = int(sched.config.get("steps_offset", 0) or 0)
    notes, problems = [], []
    for n in sorted(set(steps) | {1, T}):
        if n > T:
            continue
        try:
            ts = sched.timesteps(n)
        except Exception as e:
            problems.append(f"n = {n}: set_timesteps {raised(e)}")
            continue
        if len(ts) != n:
            problems.append(f"n = {n}: {len(ts)} timesteps listed, not {n}")
        if any(b >= a for a, b in zip(ts, ts[1:])):
            i = next(i for i, (a, b) in enumerate(zip(ts, ts[1:])) if b >= a)
            problems.append(f"n = {n}: not strictly decreasing at position {i}: {ts[i]}, {ts[i + 1]}")
        if ts and not (0 <= min(ts) and max(ts) <= T - 1):
            problems.append(f"n = {n}: timesteps outside 0..{T - 1}: {min(ts)}..{max(ts)}")
        promised_top = spacing == "trailing" or (spacing == "linspace" and n >= 2)
        if ts and promised_top and ts[0] != T - 1:
            problems.append(f"n = {n}: {spacing} spacing starts at {ts[0]}, not at the top {T - 1}")
        if ts and spacing == "leading" and ts[0] != T - 1 and n in (10, 50) and not offset:
            ab = sched.alpha_bar
            snr = float(ab[ts[0]] / (1 - ab[ts[0]]))
            top = float(ab[-1] / (1 - ab[-1]))
            notes.append(f"n = {n} starts at t = {ts[0]} (SNR {snr:.2g}; at the top {top:.2g})")
    if problems:
        return _outcome(
            "timesteps", FAIL, "; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else "")
        )
    detail = f"n in {sorted(set(steps) | {1, T})}: counts, order and range hold"
    if notes:
        detail += "; documented departure: leading spacing never visits the top: " + "; ".join(notes)
    return _outcome("timesteps", PASS, detail)


# -- 3. the step ---------------------------------------------------------------------------------


def _x0_eps_weights(prediction: str, ab_t: Tensor) -> tuple[float, float, float, float]:
    """x_0 = p x + q m and eps = pe x + qe m for a model output m of this parameterisation at alpha_bar_t."""
    one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    x0_x, eps_x = x0_eps_from_output(prediction, ab_t, one, zero)
    x0_m, eps_m = x0_eps_from_output(prediction, ab_t, zero, one)
    return float(x0_x), float(x0_m), float(eps_x), float(eps_m)


def expected_step(cfg: dict[str, Any], eta: float | None, ab_t: float, ab_s: float, last: bool) -> tuple[float, ...]:
    """(a, b, s) of the paper's step t -> s, with the sizes of a's, b's terms [Ho20 eq. 7; Song21 eq. 12].

    ``eta`` None: the DDPM posterior mean [Ho20 eqs. 7, 11] with the configuration's variance_type; else
    DDIM eq. 12 with that eta [Song21]. ``last``: the step to x_0 adds no noise [Ho20 alg. 2, line 4].
    Then the sizes of a's and b's terms, and of the terms proportional to the step's beta = 1 - alpha_bar_t /
    alpha_bar_s (sigma's, half of it): a library computes that beta in float32 by a cancellation, so those
    terms carry a relative error of a few ulps / beta, however the rest is rounded.
    """
    prediction = cfg.get("prediction_type", "epsilon")
    t = torch.tensor(ab_t, dtype=torch.float64)
    p, q, pe, qe = _x0_eps_weights(prediction, t)
    if eta is None:
        post = strided_posterior(ab_t, ab_s)
        c0, ct = float(post.coef_x0), float(post.coef_xt)
        a, b = c0 * p + ct, c0 * q
        scale_a, scale_b = abs(c0 * p) + abs(ct), abs(c0 * q)
        beta_a, beta_b = abs(c0 * p), abs(c0 * q)  # c0 is proportional to beta
        kind = str(cfg.get("variance_type", "fixed_small"))
        bt, beta = float(post.beta_tilde), float(post.beta)
        if kind.startswith("fixed_small"):
            var = bt
        elif kind.startswith("fixed_large"):
            var = beta
        elif kind == "learned_range":  # log-space interpolation [Nichol21 eq. 15]
            frac = (VARIANCE_V + 1) / 2
            var = math.exp(frac * math.log(beta) + (1 - frac) * math.log(max(bt, 1e-300))) if bt > 0 else 0.0
        else:
            raise TargetError(f"variance_type={kind!r} has no closed form here (learned: the network's own)")
        s = 0.0 if last else math.sqrt(var)
        beta_s = s / 2
    else:
        c0_, ce_, sig = (float(v) for v in ddim_coefficients(ab_t, ab_s, eta))
        a, b = c0_ * p + ce_ * pe, c0_ * q + ce_ * qe
        scale_a, scale_b = abs(c0_ * p) + abs(ce_ * pe), abs(c0_ * q) + abs(ce_ * qe)
        s = sig
        # ce = sqrt(1 - alpha_bar_s - sigma^2), sigma^2 proportional to beta
        share = sig**2 / max(ce_**2, 1e-300) if ce_ > 0 else 0.0
        beta_a, beta_b, beta_s = abs(ce_ * pe) * share, abs(ce_ * qe) * share, sig / 2
    return a, b, s, scale_a, scale_b, beta_a, beta_b, beta_s


def _tolerances(cfg, eta, ab_t: float, ab_s: float, last: bool) -> tuple[tuple[float, ...], tuple[float, float, float]]:
    base = expected_step(cfg, eta, ab_t, ab_s, last)
    moved = []
    for ft, fs in ((1 + DELTA, 1), (1 - DELTA, 1), (1, 1 - DELTA), (1, 1 + DELTA)):
        t2, s2 = ab_t * ft, min(ab_s * fs, 1.0)
        if 0 <= t2 < s2 <= 1:
            moved.append(expected_step(cfg, eta, t2, s2, last))
    beta = 1 - ab_t / ab_s
    tol = []
    for i in range(3):
        shift = max((abs(m[i] - base[i]) for m in moved), default=0.0)
        scale = base[3 + i] if i < 2 else abs(base[2])
        cancellation = BETA_ULPS * EPS32 / beta * base[5 + i] if beta > 0 else 0.0
        tol.append(2 * shift + ULPS * scale + cancellation + 1e-12)
    tol[2] = max(tol[2], NO_NOISE)
    return base, (tol[0], tol[1], tol[2])


def _eta(sched: Scheduler) -> float | None:
    """None for a DDPM-style step (its config has a variance_type); else DDIM's eta (0 unless given)."""
    if "variance_type" in sched.config:
        return None
    return float(sched.factory.step_kwargs.get("eta", 0.0))


@dataclass
class StepRecord:
    n: int
    t: int
    t_next: int | None  # None: the step to x_0
    coef: Coefficients
    expected: tuple[float, ...] = ()
    tol: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _landing(sched: Scheduler, cfg, eta, ab_t: float, coef: Coefficients, last: bool) -> str:
    """Which listed-or-not timestep the observed (a, b) match best: 'it lands at t = 899 (rel 1.6e-7)'."""
    ab = sched.alpha_bar
    best = (math.inf, "")
    for k, ab_s in [(k, float(ab[k])) for k in range(ab.numel()) if float(ab[k]) > ab_t] + [(-1, 1.0)]:
        try:
            exp = expected_step(cfg, eta, ab_t, ab_s, last or k == -1)
        except (TargetError, ValueError):
            return ""
        err = max(abs(coef.a - exp[0]) / max(exp[3], 1e-12), abs(coef.b - exp[1]) / max(exp[4], 1e-12))
        if err < best[0]:
            best = (err, "x_0 (alpha_bar = 1)" if k == -1 else f"t = {k}")
    return f"; it matches the step to {best[1]} instead (rel {best[0]:.2g})" if best[1] else ""


def read_steps(sched: Scheduler, steps: Sequence[int]) -> list[StepRecord]:
    """Every listed step of every count in ``steps`` (<= T), read by probing."""
    T = sched.alpha_bar.numel()
    out = []
    for n in steps:
        if n > T:
            continue
        ts = sched.timesteps(n)
        for i, t in enumerate(ts):
            nxt = ts[i + 1] if i + 1 < len(ts) else None
            out.append(StepRecord(n, t, nxt, read_step(sched.call(t))))
    return out


def spec_step(sched: Scheduler, steps: Sequence[int], records: list[StepRecord] | None = None) -> Outcome:
    cfg, eta = sched.config, _eta(sched)
    ab = sched.alpha_bar
    records = read_steps(sched, steps) if records is None else records
    fails: list[str] = []
    undecided: list[str] = []
    departures: list[str] = []
    for r in records:
        c = r.coef
        where = f"n = {r.n}, t = {r.t} -> {'x_0' if r.t_next is None else r.t_next}"
        if c.problem:
            (fails if c.problem.startswith("step raised") else undecided).append(f"{where}: {c.problem}")
            continue
        ab_t = float(ab[r.t])
        last = r.t_next is None
        ab_s = 1.0 if last else float(ab[r.t_next])
        if ab_t >= ab_s:
            fails.append(f"{where}: alpha_bar does not rise from t to t'")
            continue
        exp, tol = _tolerances(cfg, eta, ab_t, ab_s, last)
        got = (c.a, c.b, c.s)
        names = ("x", "the model output", "the noise (sigma)")
        bad = []
        for i in range(3):
            g = got[i]
            if g is not None and not abs(g - exp[i]) <= tol[i]:
                err = abs(g - exp[i])
                bad.append(
                    f"coefficient of {names[i]} {g:.9g}, expected {exp[i]:.9g} (err {err:.2g} > tol {tol[i]:.2g})"
                )
        if c.s is None:
            undecided.append(f"{where}: its noise is not the generator's torch.randn draw; sigma unread")
        if not bad and not c.c <= 1e-12 * (1 + abs(c.a) + abs(c.b)):
            bad.append(f"an offset {c.c:.3g} at x = m = 0")
        if bad and last and cfg.get("set_alpha_to_one") is False and eta is not None:
            exp0, tol0 = _tolerances(cfg, eta, ab_t, float(ab[0]), last)
            if all(abs(g - e) <= tl for g, e, tl in zip((c.a, c.b), exp0[:2], tol0[:2])):
                cost = math.sqrt(1 - float(ab[0]))
                departures.append(
                    f"set_alpha_to_one=False: the last step lands at alpha_bar = {float(ab[0]):.6g} (t = 0), "
                    f"not 1; the output keeps noise of std {cost:.2g}"
                )
                continue
        if bad:
            ab_bad = any(not abs(g - e) <= tl for g, e, tl in zip((c.a, c.b), exp[:2], tol[:2]))
            landing = _landing(sched, cfg, eta, ab_t, c, last) if ab_bad and len(fails) < 3 else ""
            fails.append(f"{where}: " + "; ".join(bad) + landing)
    n_read = len(records)
    if fails:
        return _outcome("step", FAIL, f"{len(fails)} of {n_read} steps differ: " + " | ".join(fails[:3]))
    if undecided:
        return _outcome(
            "step", UNDECIDED, f"{len(undecided)} of {n_read} steps not decided: " + " | ".join(undecided[:2])
        )
    law = "DDPM posterior, variance_type " + repr(cfg.get("variance_type")) if eta is None else f"DDIM eta = {eta:g}"
    detail = f"{n_read} steps over n in {sorted(set(steps))} match the closed form ({law}) coefficient by coefficient"
    if departures:
        detail += "; documented departure: " + departures[0]
    return _outcome("step", PASS, detail)


# -- 4. parameterisation -------------------------------------------------------------------------


def spec_parameterisation(sched: Scheduler, steps: Sequence[int]) -> Outcome:
    if "prediction_type" not in sched.config:
        return _outcome("parameterisation", UNDECIDED, "the class takes no prediction_type")
    others = {p: Scheduler(sched.factory.make(prediction_type=p), sched.factory) for p in PREDICTIONS}
    g = torch.Generator().manual_seed(7)
    x0 = torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.5
    xt = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    worst, where_worst, checked, fails = 0.0, "", 0, []
    for n in steps:
        if n > sched.alpha_bar.numel():
            continue
        ts = {p: s.timesteps(n) for p, s in others.items()}
        for i, t in enumerate(ts["epsilon"]):
            ab = float(others["epsilon"].alpha_bar[t])
            nxt = ts["epsilon"][i + 1] if i + 1 < n else None
            ab_s = 1.0 if nxt is None else float(others["epsilon"].alpha_bar[nxt])
            a, b = math.sqrt(ab), math.sqrt(1 - ab)
            if a == 0 or b == 0:
                continue  # x_0 (or eps) not identifiable from x_t here: nothing to compare
            eps = (xt - a * x0) / b
            outputs = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - b * x0}
            results = {p: others[p].call(t)(outputs[p], xt, 11) for p in PREDICTIONS}
            if not bool(torch.isfinite(results["epsilon"]).all()):
                continue  # the finite spec's matter, not this one's
            # float32 coefficients, amplified by 1 / sqrt(alpha_bar_t) when x_0 is read from eps
            tol = ULPS * (1 + math.sqrt(ab_s) / a + 1 / b) * (1 + float(xt.abs().max()))
            for p in ("sample", "v_prediction"):
                err = float((results[p] - results["epsilon"]).abs().max())
                checked += 1
                if not math.isfinite(err) or err > tol:
                    fails.append(f"n = {n}, t = {t}: {p} gives x_t' {err:.3g} away from epsilon's (tol {tol:.2g})")
                elif err / tol > worst:
                    worst, where_worst = err / tol, f"n = {n}, t = {t}"
    if fails:
        return _outcome("parameterisation", FAIL, f"{len(fails)} of {checked}: " + " | ".join(fails[:3]))
    if not checked:
        return _outcome("parameterisation", UNDECIDED, "no step where x_0 and eps are both identifiable")
    return _outcome(
        "parameterisation",
        PASS,
        f"{checked} comparisons agree (largest at {worst:.2g} of the tolerance, {where_worst})",
    )


# -- 5. add_noise --------------------------------------------------------------------------------


def spec_add_noise(sched: Scheduler, steps: Sequence[int]) -> Outcome:
    cfg = sched.config
    T = sched.alpha_bar.numel()
    _, ab_cf, why = closed_form_alpha_bar(cfg, T)
    if ab_cf is None:
        return _outcome("add_noise", UNDECIDED, why)
    if not callable(getattr(sched.obj, "add_noise", None)):
        return _outcome("add_noise", UNDECIDED, "the class has no add_noise")
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(T, 4, generator=g, dtype=torch.float64)
    z = torch.randn(T, 4, generator=g, dtype=torch.float64)
    got = sched.obj.add_noise(x0, z, torch.arange(T))
    want = ab_cf.sqrt()[:, None] * x0 + (1 - ab_cf).sqrt()[:, None] * z  # [Ho20 eq. 4]
    err = ((got - want).abs() / (T * EPS32 * (x0.abs() + z.abs()))).amax(dim=1)
    k = int(err.argmax())
    if not float(err[k]) <= 1:
        return _outcome(
            "add_noise",
            FAIL,
            f"t = {k}: x_t off q(x_t | x_0) by {float((got[k] - want[k]).abs().max()):.3g} "
            f"(sqrt(alpha_bar) = {float(ab_cf[k].sqrt()):.6g})",
        )
    return _outcome("add_noise", PASS, f"all {T} timesteps match q(x_t | x_0) of the closed-form schedule")


# -- 8. finite -----------------------------------------------------------------------------------


def spec_finite(sched: Scheduler, steps: Sequence[int], records: list[StepRecord]) -> Outcome:
    bad = [r for r in records if not r.coef.finite]
    if bad:
        r = bad[0]
        return _outcome(
            "finite",
            FAIL,
            f"{len(bad)} of {len(records)} steps give inf or nan from finite inputs, first at n = {r.n}, t = {r.t}",
        )
    return _outcome("finite", PASS, f"{len(records)} steps give finite outputs")


# -- 7. law -------------------------------------------------------------------------------------


def _affine_output(prediction: str, ab: float) -> tuple[float, Tensor]:
    """(k, j): the exact output of N(CLIPPED_MEAN, CLIPPED_C I) at alpha_bar ``ab``: k x + j [Ho20 eq. 4]."""
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    mixture = data_law(2, CLIPPED_MEAN, CLIPPED_C)
    out = exact_output(mixture, points, math.sqrt(ab), math.sqrt(1 - ab), prediction)
    return float(out[1, 0] - out[0, 0]), out[0]


def spec_law(sched: Scheduler, records: list[StepRecord]) -> Outcome | None:
    """The whole run against the recursion of the closed-form steps; None for a noiseless sampler."""
    if not any(r.coef.s is None or r.coef.s > NO_NOISE for r in records):
        return None
    cfg, eta, ab = sched.config, _eta(sched), sched.alpha_bar
    prediction = str(cfg.get("prediction_type", "epsilon"))
    runs = []
    for i, n in enumerate(c for c in LAW_COUNTS if c <= ab.numel()):
        ts = sched.timesteps(n)
        g = torch.Generator().manual_seed(30 + i)  # one generator for the run, as a pipeline passes it
        x = torch.randn(LAW_DRAWS, 2, generator=g, dtype=torch.float64)
        mean, var = torch.zeros(2, dtype=torch.float64), 1.0  # x_T ~ N(0, I) [Ho20 alg. 2, line 1]
        for k, t in enumerate(ts):
            ab_t = float(ab[t])
            last = k + 1 == len(ts)
            ab_s = 1.0 if last else float(ab[ts[k + 1]])
            slope, offset = _affine_output(prediction, ab_t)
            model_out = slope * x + offset
            x = sched.step(t, model_out, x, g)
            a, b, s = expected_step(cfg, eta, ab_t, ab_s, last)[:3]
            mean, var = (a + b * slope) * mean + b * offset, (a + b * slope) ** 2 * var + s**2
        if not bool(torch.isfinite(x).all()):
            return _outcome("law", UNDECIDED, "non-finite samples: see finite")
        runs.append(Run(n, x, mean, var))
    passed, detail = hold(runs)
    return _outcome("law", PASS if passed else FAIL, detail)


def run_specs(factory: Factory, steps: Sequence[int] = DEFAULT_STEPS, only: Sequence[str] = SPECS) -> list[Outcome]:
    """Every spec of this module held against ``factory``'s scheduler, one outcome each."""
    sched = Scheduler(factory.make(), factory)
    scale = float(getattr(sched.obj, "init_noise_sigma", 1.0))
    if scale != 1.0:  # sampling starts from x_T of std != 1: the VE (sigma) world, not these specs'
        why = (
            f"init_noise_sigma = {scale:.4g}: the scheduler samples in the sigma (VE) scale, but lists no "
            "sigmas beside its timesteps for the sigma-world specs to read"
        )
    elif _keeps_state(factory):
        why = "the step keeps state between calls (a multistep solver?) and lists no sigmas: no spec reads it yet"
        sched = Scheduler(factory.make(), factory)
    else:
        return run_specs_on(sched, steps, only)
    kept = [s for s in only if s == "schedule"]
    out = run_specs_on(sched, steps, kept) + [_outcome(s, UNDECIDED, why) for s in only if s not in kept]
    order = {s: i for i, s in enumerate(SPECS)}
    return sorted(out, key=lambda o: order[o.spec])


def _keeps_state(factory: Factory) -> bool:
    """Whether two identical calls of ``step`` at the first of 10 timesteps give different results."""
    sched = Scheduler(factory.make(), factory)
    try:
        t = sched.timesteps(10)[0]
        call = sched.call(t)
        x, m = 0.1 * noise(5), 0.1 * noise(6)
        first = call(m, x, 1)
    except Exception:
        return False  # the step spec names the exception
    try:
        return not torch.equal(first.nan_to_num(), call(m, x, 1).nan_to_num())  # a nan twice is no state
    except Exception:
        return True  # it ran once and not twice: its state moved on


def run_specs_on(sched: Scheduler, steps: Sequence[int], only: Sequence[str]) -> list[Outcome]:
    """The specs in ``only`` on one built scheduler."""
    out = []
    records: list[StepRecord] = []
    if {"step", "finite", "law"} & set(only):
        try:
            records = read_steps(sched, steps)
        except Exception as e:
            records = []
            err = raised(e)
            out += [_outcome(s, FAIL, err) for s in ("step", "finite") if s in only]
            only = [s for s in only if s not in ("step", "finite")]
    for spec in only:
        if spec == "schedule":
            out.append(guard(spec, lambda: spec_schedule(sched, steps)))
        elif spec == "timesteps":
            out.append(guard(spec, lambda: spec_timesteps(sched, steps)))
        elif spec == "step":
            out.append(guard(spec, lambda: spec_step(sched, steps, records)))
        elif spec == "parameterisation":
            out.append(guard(spec, lambda: spec_parameterisation(sched, steps)))
        elif spec == "add_noise":
            out.append(guard(spec, lambda: spec_add_noise(sched, steps)))
        elif spec == "finite":
            out.append(guard(spec, lambda: spec_finite(sched, steps, records)))
        elif spec == "law":
            law = guard(spec, lambda: spec_law(sched, records) or _outcome("law", PASS, ""))
            if law.detail:  # a sampler without noise has no law to hold
                out.append(law)
    order = {s: i for i, s in enumerate(SPECS)}
    return sorted(out, key=lambda o: order[o.spec])
