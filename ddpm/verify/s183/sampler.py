"""The sampler specs of ``ddpm verify --course 6.S183``, from the records of the runs of ``samples``.

The accelerated sampler of the notebook's Question 3 [6.S183 Q2; PY23 App. A]: from x = sigmas[0] z (or the
given xt), each step x_{t-1} = x_t - (sigma_t - sigma_{t-1}) eps_bar_t with eps_bar_t = gam eps_theta(x_t,
sigma_t) + (1 - gam) eps_theta(x_{t+1}, sigma_{t+1}), and one yield per step. The probe runs are read back as
coefficients (:mod:`ddpm.verify.s183.states`) and each step is held, from the code's own state, to
``gam_mu_step(x, sigma_t, sigma_{t-1}, eps_bar(eps, eps_prev, gam))`` applied to coefficient vectors — the
sigma core's own functions; a step that misses is named by the usual mistakes, built with the same
functions. The law runs drive the sampler with the exact eps* of N(m, c I) and hold the samples to
``gaussian_gam_law`` (``ddpm.stats.check_mc``, false-alarm rate 1e-6 per check).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.sigma.sampler import eps_bar, gam_mu_step, gaussian_gam_law
from ddpm.stats import MonteCarloCheck, check_mc
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome
from ddpm.verify.s183.records import Error, Law, LawOutput, Malformed, RandInput, Run, SampleRun, as_float64
from ddpm.verify.s183.source import Source
from ddpm.verify.s183.specs import SAMPLE_SPECS
from ddpm.verify.s183.states import COEF_TOL, SampleFacts, at_level, coefs, same_as, sample_facts, stale, states, tol
from ddpm.verify.s183.wording import num, outcome, raised, vec

__all__ = ["decide_sampler"]


def _unit(n: int, j: int) -> Tensor:
    u = torch.zeros(n, dtype=torch.float64)
    u[j] = 1.0
    return u


def _expected_delta(units: list[Tensor], s: Tensor, k: int, gam: float) -> Tensor:
    """The step x_{t-1} - x_t in coefficients, ``units[j]`` level j's answer.

    gam_mu_step(0, sigma_k, sigma_{k+1}, eps_bar(u_k, u_{k-1}, gam)).
    """
    eb = eps_bar(units[k], units[k - 1] if k > 0 else None, gam)
    return gam_mu_step(torch.zeros_like(units[k]), float(s[k]), float(s[k + 1]), eb)


def _alternatives(units: list[Tensor], s: Tensor, k: int, gam: float) -> list[tuple[str, Tensor]]:
    """Coefficients of the usual mistakes at step k, built with the same core functions."""
    z = torch.zeros_like(units[k])
    u, up, u0 = units[k], (units[k - 1] if k > 0 else None), units[0]
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
    if up is not None:
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
        prev_bar = units[0]  # eps_prev set to the previous eps_bar instead of the previous prediction
        for j in range(1, k + 1):
            prev_bar = eps_bar(units[j], prev_bar, gam)
        alts.append(
            (
                "eps_{t+1} is the previous eps_bar, not the previous prediction eps_theta(x_{t+1}, sigma_{t+1})",
                gam_mu_step(z, sk, sn, prev_bar),
            )
        )
    else:
        alts.append(("the first step uses gam eps_theta with eps_{t+1} = 0", gam_mu_step(z, sk, sn, gam * u)))
    return alts


def _decide_steps(facts: list[SampleFacts], lines_update: list[str]) -> tuple[Outcome | None, Outcome | None]:
    """sample_first_step and sample_update: each step the code took, from its own state, against
    ``gam_mu_step`` in coefficients; None for a spec no step decided."""
    first_fail: tuple[str, list[str]] | None = None
    update_fail: tuple[str, list[str]] | None = None
    decided_first = decided_update = False
    for sf in facts:
        K = len(sf.sigmas) - 1
        xs = states(sf)
        if xs is None:
            continue
        ys = [(y, i) for i, y, _ in sf.yields if y is not None]
        n = len(sf.basis)
        m = len(xs)
        # the yields are the states after each step when they agree with the next step's input
        yields_ok = all(same_as(ys[j][0], xs[j + 1][0]) for j in range(min(len(ys), m - 1)))
        for k in range(min(m, K)):
            x_k, order_k = xs[k]
            if k + 1 < m:
                x_next, order_next = xs[k + 1]
            elif k < len(ys) and yields_ok:
                x_next, order_next = ys[k]
            else:
                continue
            c_k, r_k = coefs(x_k, sf.basis, order_k)
            c_n, r_n = coefs(x_next, sf.basis, order_next)
            spec_first = k == 0
            where = (
                f"gam = {num(sf.gam)}, step {k + 1} of {K} (sigma_t = {num(float(sf.sigmas[k]))} -> "
                f"sigma_{{t-1}} = "
                f"{num(float(sf.sigmas[k + 1]))})"
            )
            if max(r_k, r_n) > 1e-5:
                detail = (
                    f"{where}: x_{{t-1}} is not x_t plus a combination of the network's answers (residual "
                    f"{max(r_k, r_n):.2g}): the step is not linear in eps_theta's answers"
                )
            else:
                if k >= len(sf.per_level):
                    continue  # no evaluation at this level: nothing to hold the step to (sample_network_call)
                units = [_unit(n, sf.n_start + sf.per_level[j]) for j in range(k + 1)]
                delta = c_n - c_k
                want = _expected_delta(units, sf.sigmas, k, sf.gam)
                if float((delta - want).abs().max()) <= tol(want):
                    if spec_first:
                        decided_first = True
                    else:
                        decided_update = True
                    continue
                name = next(
                    (
                        nm
                        for nm, alt in _alternatives(units, sf.sigmas, k, sf.gam)
                        if float((delta - alt).abs().max()) <= tol(alt)
                    ),
                    None,
                )
                detail = f"{where}: x_{{t-1}} - x_t = {sf.combo(delta, k)}; expected {sf.combo(want, k)}" + (
                    f": {name}" if name else ""
                )
            if spec_first:
                decided_first = True
                first_fail = first_fail or (detail, lines_update)
            else:
                decided_update = True
                update_fail = update_fail or (detail, lines_update)
    out: list[Outcome | None] = []
    for spec, fail, decided in (
        ("sample_first_step", first_fail, decided_first),
        ("sample_update", update_fail, decided_update),
    ):
        if fail:
            out.append(outcome(spec, FAIL, fail[0], fail[1]))
        elif decided:
            out.append(outcome(spec, PASS))
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
            if s.numel() not in (1, e.x.shape[0]) or not at_level(s, want):
                which = " (sigma_{t-1})" if j + 1 < len(sf.sigmas) and at_level(s, float(sf.sigmas[j + 1])) else ""
                if not which and j > 0 and at_level(s, float(sf.sigmas[j - 1])):
                    which = " (sigma_{t+1})"
                return outcome(
                    "sample_network_call",
                    FAIL,
                    f"gam = {num(sf.gam)}, step {j + 1}: eps_theta is called at "
                    f"sigma = {vec(s)}{which}; expected sigma_t = {num(want)}",
                    [src.line(e.cell, e.line)],
                )
        k = stale(sf)
        if k is not None:
            e = sf.level_evals[k]
            return outcome(
                "sample_network_call",
                FAIL,
                f"gam = {num(sf.gam)}, step {k + 1}: eps_theta is called at the x "
                "of the step before (x_{t+1}), not at the current x_t",
                [src.line(e.cell, e.line)],
            )
        if len(sf.per_level) < K:
            levels = [float(e.sigma.reshape(-1)[0]) for e in sf.evals]
            return outcome(
                "sample_network_call",
                FAIL,
                f"gam = {num(sf.gam)}: eps_theta is evaluated at {len(sf.evals)} "
                f"distinct points for {K} steps (levels {', '.join(num(v) for v in levels)})",
                lines,
            )
        extras = [j for j in range(len(sf.evals)) if j not in sf.per_level]
        if extras:
            used = []
            for order, y, _ in sf.yields:
                if y is not None:
                    c, resid = coefs(y, sf.basis, order)
                    used += [j for j in extras if resid < 1e-5 and abs(float(c[sf.n_start + j])) > COEF_TOL]
            e = sf.evals[(used or extras)[0]]
            where = f"sigma = {num(float(e.sigma.reshape(-1)[0]))}"
            if used or any(y is None for _, y, _ in sf.yields):
                return outcome(
                    "sample_network_call",
                    FAIL,
                    f"gam = {num(sf.gam)}: eps_theta is evaluated at "
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
    return outcome("sample_network_call", PASS)


def _decide_yields(src: Source, facts: list[SampleFacts]) -> Outcome | None:
    lines = src.yield_lines("samples")
    decided = False
    for sf in facts:
        K = len(sf.sigmas) - 1
        where = f"gam = {num(sf.gam)}, {K} steps"
        not_tensor = next((f for _, y, f in sf.yields if y is None), None)
        if not_tensor is not None:
            return outcome(
                "sample_yields", FAIL, f"{where}: a yield is a {not_tensor.type}, not the tensor x_{{t-1}}", lines
            )
        ys = [y for _, y, _ in sf.yields if y is not None]
        if len(ys) != K:
            hint = ""
            if len(ys) == K + 1 and sf.start is not None and torch.equal(ys[0], sf.start):
                hint = ": the start x_T is yielded too"
            return outcome("sample_yields", FAIL, f"{where}: {len(ys)} yields; expected one per step, {K}{hint}", lines)
        if stale(sf) is not None:
            decided = True  # the network sees stale states (sample_network_call); the yields are the states
        elif len(sf.per_level) == K:
            evals = sf.level_evals
            for j, y in enumerate(ys):
                if j + 1 < K:
                    if not same_as(y, evals[j + 1].x):
                        same = same_as(y, evals[j].x)
                        hint = ": it is x_t before the step (yielded one step early)" if same else ""
                        return outcome(
                            "sample_yields",
                            FAIL,
                            f"{where}: yield {j + 1} is not the x_{{t-1}} the next step starts from{hint}",
                            lines,
                        )
                else:
                    moved = K < 2 or not same_as(evals[j].x, evals[j - 1].x)
                    if moved and same_as(y, evals[j].x):
                        return outcome(
                            "sample_yields",
                            FAIL,
                            f"{where}: the last yield is x_t before the last step, not "
                            "x_0 after it (yielded one step early)",
                            lines,
                        )
            decided = True
    if not decided:
        return None
    return outcome("sample_yields", PASS)


def _decide_start(src: Source, facts: list[SampleFacts], notes: list[str]) -> Outcome | None:
    decided = False
    start_lines = src.start_lines("samples")
    for sf in facts:
        rand = sf.run.of(RandInput)
        B = sf.run.info.batchsize
        s0 = float(sf.sigmas[0])
        first = sf.evals[0] if sf.evals else None
        if sf.start is not None:  # xt given: used as is
            if rand:
                r = rand[0]
                return outcome(
                    "sample_start",
                    FAIL,
                    f"xt is given but samples draws model.rand_input({r.batchsize}) anyway",
                    [src.line(r.cell, r.line)] + start_lines,
                )
            if first is not None:
                if same_as(first.x, sf.start):
                    decided = True
                elif same_as(first.x, sf.start * s0):
                    return outcome(
                        "sample_start",
                        FAIL,
                        f"the given xt is multiplied by sigmas[0] = {num(s0)}; xt is used as given",
                        start_lines + [src.line(first.cell, first.line)],
                    )
                else:
                    return outcome(
                        "sample_start",
                        FAIL,
                        f"xt = {vec(sf.start)} is given but the first network call sees x = {vec(first.x)}",
                        start_lines + [src.line(first.cell, first.line)],
                    )
            continue
        if not rand:
            draws = [d for _, d in sf.draws]
            own = next(
                (
                    d
                    for d in draws
                    if d.standard_normal() and first is not None and same_as(first.x, as_float64(d.value, "draw") * s0)
                ),
                None,
            )
            if own is not None:  # the same law by other means: a name is not maths
                notes.append(
                    f"sample_start: the start is sigmas[0] times a draw of {own.fn} at "
                    f"{src.where(own.cell, own.line)}, not model.rand_input(batchsize)"
                )
                decided = True
                continue
            what = f"; it draws with {draws[0].fn} at {src.where(draws[0].cell, draws[0].line)}" if draws else ""
            return outcome(
                "sample_start",
                FAIL,
                f"with xt = None, samples never calls model.rand_input(batchsize){what}",
                ([src.line(draws[0].cell, draws[0].line)] if draws else []) + start_lines,
            )
        r = rand[0]
        line = [src.line(r.cell, r.line)] + start_lines
        if r.batchsize != B:
            return outcome("sample_start", FAIL, f"model.rand_input({r.batchsize}) for batchsize = {B}", line)
        if first is None:
            continue
        z = as_float64(r.value, "rand_input")
        if same_as(first.x, z * s0):
            decided = True
            continue
        if same_as(first.x, z):
            return outcome(
                "sample_start",
                FAIL,
                f"x_T = model.rand_input(batchsize), without sigmas[0]: the start has std 1, not sigmas[0] = {num(s0)}",
                line,
            )
        if same_as(first.x, z * float(sf.sigmas[-1])):
            return outcome(
                "sample_start",
                FAIL,
                f"x_T = model.rand_input(batchsize) * sigmas[-1] "
                f"({num(float(sf.sigmas[-1]))})"
                f", not sigmas[0] ({num(s0)})",
                line,
            )
        return outcome(
            "sample_start",
            FAIL,
            f"the first network call sees x = {vec(first.x)}; expected sigmas[0] z = {vec(z * s0)}",
            line,
        )
    if not decided:
        return None
    return outcome("sample_start", PASS)


def _decide_law(runs: list[Run[SampleRun]], lines: list[str]) -> Outcome | None:
    results: list[tuple[MonteCarloCheck, str, Tensor, Tensor, SampleRun, Law]] = []
    for run in runs:
        info = run.info
        outs = run.of(LawOutput)
        if not outs or not isinstance(outs[0].value, Tensor):
            continue
        x = as_float64(outs[0].value, "law_output")
        n = x.shape[0]
        if x.ndim != 2 or n != info.batchsize:
            return outcome(
                "sample_law",
                FAIL,
                f"gam = {num(float(info.gam))}: the last yield has shape {tuple(x.shape)}"
                f"; expected ({info.batchsize}, 2)",
            )
        law = info.law
        if law is None:
            raise Malformed("a law run without its law")
        sigmas = as_float64(info.sigmas, "sigmas")
        expected = gaussian_gam_law(torch.tensor(law.m, dtype=torch.float64), float(law.c), sigmas, float(info.gam))
        mean, var = x.mean(0), x.var(0)
        ev = float(expected.std) ** 2
        for name, est, se, want in (
            ("mean", mean, float(expected.std) / math.sqrt(n), expected.mean),
            ("variance", var, ev * math.sqrt(2 / (n - 1)), torch.full_like(var, ev)),
        ):
            if not torch.isfinite(est).all():
                return outcome("sample_law", FAIL, f"gam = {num(float(info.gam))}: the samples are not finite")
            check = check_mc(f"sample {name}", est, se, want, n, raise_on_fail=False)
            results.append((check, name, est, want, info, law))
    if not results:
        return None
    for check, name, est, want, info, law in results:
        if not check.passed:
            return outcome(
                "sample_law",
                FAIL,
                f"gam = {num(float(info.gam))}, eps* of N({law.m}, "
                f"{law.c} I), {len(info.sigmas) - 1} steps: the samples' {name} is {vec(est)}; "
                f"the closed form gives {vec(want)} (z = {check.z:.1f} > {check.k:.1f}, n = {check.n})",
                lines,
            )
    return outcome("sample_law", PASS)


def decide_sampler(src: Source, sample: list[Run[SampleRun]]) -> tuple[list[Outcome], list[str], str | None]:
    """The six sampler specs from the runs of ``samples`` [6.S183 Q2; PY23 App. A]; their notes; and the
    reason to say "cannot verify" instead, where the code failed in a stand-in."""
    notes: list[str] = []
    errors = [e for run in sample for e in run.of(Error)]
    for e in errors:
        why = e.verifier_limit()
        if why:
            return [], notes, why
    probes = [sample_facts(r) for r in sample if r.info.probe == "probe"]
    starts = [sample_facts(r) for r in sample if r.info.probe in ("start", "probe")]
    laws = [r for r in sample if r.info.probe == "law"]
    lines_update = src.update_lines("samples")
    err = errors[0] if errors else None

    def missing(spec: str, why: str) -> Outcome:
        if err is not None:
            return outcome(spec, FAIL, raised(src, err, "samples"), [src.line(err.cell, err.line)])
        return outcome(spec, UNDECIDED, f"not decided: {why}", lines_update[:1])

    first, update = _decide_steps(probes, lines_update)
    decided = {
        "sample_start": _decide_start(src, starts, notes),
        "sample_network_call": _decide_network_call(src, probes, notes),
        "sample_first_step": first,
        "sample_update": update,
        "sample_yields": _decide_yields(src, probes),
        "sample_law": _decide_law(laws, lines_update),
    }
    undecided_why = {
        "sample_start": "no network call or rand_input to see the start",
        "sample_network_call": "samples never called the network",
        "sample_first_step": "the states of the sampler could not be followed "
        "(see sample_network_call and sample_yields)",
        "sample_update": "the states of the sampler could not be followed (see sample_network_call and sample_yields)",
        "sample_yields": "no probe run ended with one network evaluation per step",
        "sample_law": "no samples came out of the law runs",
    }
    return [decided[k] or missing(k, undecided_why[k]) for k in SAMPLE_SPECS], notes, None
