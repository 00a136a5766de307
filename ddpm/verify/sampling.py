"""Algorithm 2 read off the records of a student's ``sample`` [Ho20 alg. 2, eq. 11, §3.2].

One step at a time.

Runs in the parent, on records only. ``sample`` ran twice under the same global seed, so both runs
drew the same z: once with the network answering 0, once answering chosen tensors U_j and starting
from a chosen state (x_T moved by a known delta). Each step is x_{t-1} = A x_t - B eps_theta + sigma_t z,
so the runs' difference d obeys d' = A d - B U_j with the noise gone: least squares gives every
call's A and B exactly, the first call's too (d = delta there), and with A known the first run's
residual is the noise sigma_t z itself. Each call is read on its own: A and B name the step it
computes, the residual its noise scale; so the step count, the coefficients, the noise at each t and
the gate at t = 1 and t = 2 are each measured whatever else is wrong. A spec without evidence (no
step t = 1 ran) is undecided, never passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddpm.beta.sampler import gaussian_law
from ddpm.beta.schedule import Schedule, reverse_variance
from ddpm.oracles import OptimalEps
from ddpm.verify.adapter import describe_step
from ddpm.verify.coefficients import RTOL, Monomial, explain, values
from ddpm.verify.dtu.specs import Config, sample_answers
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome
from ddpm.verify.stats import mc
from ddpm.verify.training import ENC_RTOL, LAW_DATA, TrainingFacts, draw_sites, net_sites

__all__ = ["decide_sampling", "decide_law", "SAMPLE_SPECS"]

X_FACTOR = Monomial(alpha=-0.5)  # 1 / sqrt(alpha_t), eq. 11
EPS_FACTOR = Monomial(beta=1.0, alpha=-0.5, one_minus_alpha_bar=-0.5)  # beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t))
SIGMA = Monomial(beta=0.5)
SAMPLE_SPECS = (
    "sample_prior",
    "sample_steps",
    "sample_mean",
    "sample_sigma",
    "sample_last_step",
    "sample_z",
    "t_encoding",
)


@dataclass
class _Step:
    """One call j of the network in sample: its coefficients, the step it computes, its noise."""

    j: int
    A: float
    B: float
    affine: bool  # x_{j+1} is A x_j - B eps_theta plus the noise, to round-off
    exact_A: bool  # False when A came from a regression of the first run (no shifted start)
    noise: Tensor  # sigma_t z, (batch, D): the first run's residual
    t: int | None = None  # the step its coefficients name
    silent: bool = False
    draws: list[str] = field(default_factory=list)  # the student's lines that drew during this step


def _flat(x: Tensor, B: int, D: int) -> Tensor:
    return x.reshape(B, D).double()


def _fit(xs0: list[Tensor], xs1: list[Tensor], answers: Tensor) -> list[_Step]:
    """Each call's A_j, B_j (exact), its noise sigma_t z (the first run's residual)."""
    steps: list[_Step] = []
    for j in range(len(xs0) - 1):  # each call's input and the next call's (or the returned x_0)
        u = answers[j % len(answers)].reshape(-1).double()
        d, d_next = (xs1[j] - xs0[j]).reshape(-1), (xs1[j + 1] - xs0[j + 1]).reshape(-1)
        exact_A = True
        if d.abs().max() > 0:  # least squares d_next = A d - B u by its 2 x 2 normal equations (float64)
            dd, du, uu, dn, un = float(d @ d), float(d @ u), float(u @ u), float(d @ d_next), float(u @ d_next)
            det = dd * uu - du * du
            A, B = (dn * uu - un * du) / det, -(dd * un - du * dn) / det
            fit = A * d - B * u
        else:  # no chosen start: B exactly, A from the first run by regression (statistical)
            B = float(-(d_next @ u) / (u @ u))
            fit = -B * u
            x, y = xs0[j].reshape(-1), xs0[j + 1].reshape(-1)
            A, exact_A = float((x @ y) / (x @ x)), False
        scale = xs1[j + 1].norm() + xs0[j + 1].norm()
        affine = bool((d_next - fit).norm() <= RTOL * scale) and all(
            map(torch.isfinite, (torch.tensor(A), torch.tensor(B)))
        )
        steps.append(_Step(j, A, B, affine, exact_A, noise=xs0[j + 1] - A * xs0[j]))
    return steps


def _name_steps(steps: list[_Step], s: Schedule) -> None:
    """The step t each call computes, where the coefficients say so without doubt.

    A call is named t when both factors of eq. 11 match step t; when only one matches (the other is
    wrong: sample_mean's to report), when only the closest explanation of the factor on eps_theta
    names a step, the name is kept only where it agrees with the call's position (T - j): a lone
    factor that matches another step is as likely a coincidence of a wrong schedule as a wrong step.
    """
    refA, refB = values(s, X_FACTOR)[1:], values(s, EPS_FACTOR)[1:]

    def match(value: float, ref: Tensor) -> int | None:
        rel = (value - ref).abs() / ref.abs()
        return int(rel.argmin()) + 1 if rel.min() <= RTOL else None

    for st in steps:
        if not st.affine:
            continue
        position = s.T - st.j
        tA = match(st.A, refA) if st.exact_A else None
        tB = match(st.B, refB)
        if tA is not None and tA == tB:
            st.t = tA
            continue
        if tA is not None and tB is not None:
            continue  # the two factors name different steps: the step cannot be told
        candidate = tA if tA is not None else tB
        if candidate is None:
            hint = explain(st.B, s, EPS_FACTOR, position)
            candidate = hint[1] if hint else None
        st.t = candidate if candidate == position else None


def _silent(steps: list[_Step], s: Schedule) -> None:
    """Whether each call adds no noise: a residual under 1% of the smallest sigma_t Algorithm 2 allows.

    The residual of a step without noise is float32 rounding, ~1e-7 of x; the smallest sigma_t of
    the verifier's schedule, sqrt(beta_tilde_2), is ~0.08.
    """
    floor = float(reverse_variance(s, "beta_tilde")[2].sqrt())
    for st in steps:
        st.silent = bool(st.noise.pow(2).mean().sqrt() <= 0.01 * floor) if st.exact_A else False


def _where(st: _Step, T: int) -> str:
    return describe_step(st.t) if st.t else f"call {st.j + 1} of the network (step not identified)"


def _steps_outcome(steps: list[_Step], T: int, lines: tuple) -> Outcome:
    known = [st.t for st in steps if st.t]
    if len(steps) != T:
        missing = sorted(set(range(1, T + 1)) - set(known))
        span = f" (steps t = {known[0]}..{known[-1]})" if known else ""
        never = (
            f"; step{'s' * (len(missing) > 1)} {', '.join(map(str, missing[:4]))} never ran"
            if missing and len(known) == len(steps)
            else ""
        )
        return Outcome(
            "sample_steps",
            FAIL,
            f"sample takes {len(steps)} steps{span}{never}; Algorithm 2 takes T = {T} steps, t = T, ..., 1",
            lines=lines,
        )
    for st in steps:
        if st.t is not None and st.t != T - st.j:
            return Outcome(
                "sample_steps",
                FAIL,
                f"call {st.j + 1} of the network computes step {describe_step(st.t)}, "
                f"where Algorithm 2 is at {describe_step(T - st.j)}: it runs t = T, ..., 1, each once",
                lines=lines,
            )
    unknown = [st for st in steps if st.t is None]
    if unknown:
        return Outcome(
            "sample_steps",
            UNDECIDED,
            f"not decided: the step of call {unknown[0].j + 1} cannot be told (see sample_mean)",
        )
    return Outcome("sample_steps", PASS)


def _mean_outcome(steps: list[_Step], s: Schedule, c: Config, first_run: list[Tensor], lines: tuple) -> Outcome:
    """Every call's factors on x_t and on eps_theta against eq. 11.

    Eq. 11 is taken at the step the call computes (else at its position).
    """
    problems, failing = [], []
    for st in steps:
        t = st.t or (s.T - st.j if 0 < s.T - st.j <= s.T else None)
        where = _where(st, s.T)
        if not st.affine:
            problems.append(
                f"at {where} x_(t-1) is not an affine function of x_t and eps_theta (eq. 11 is; clipping "
                "the predicted x_0 is not Algorithm 2)"
            )
            continue
        for name, value, m, exact in (("x_t", st.A, X_FACTOR, st.exact_A), ("eps_theta", st.B, EPS_FACTOR, True)):
            want = float(values(s, m)[t]) if t else float("nan")
            if exact:
                ok = abs(value - want) <= RTOL * abs(want)
            else:  # the first call's A by regression of the first run: a Monte Carlo estimate
                x, y = first_run[st.j].reshape(-1), first_run[st.j + 1].reshape(-1)
                resid = y - value * x
                ok = (
                    mc(
                        "sample: first step's factor on x_t",
                        value,
                        max(float(resid.std() / x.norm()), 1e-300),
                        want,
                        x.numel(),
                        c.false_alarm,
                    )[0]
                    if t
                    else False
                )
            if not ok:
                hint = explain(value, s, m, t) if not problems else None  # the first problem is worded in full
                like = f" = {hint[0]}" + (f" at t = {hint[1]}" if hint[1] != t else "") if hint else ""
                problems.append(f"at {where} the factor on {name} is {value:.5g}{like}; eq. 11 has {m} = {want:.5g}")
                failing.append(st.j)
        if not st.affine:
            failing.append(st.j)
    if problems:
        calls = len(set(failing))
        more = f" (and {calls - 1} more call{'s' * (calls > 2)})" if calls > 1 else ""
        return Outcome("sample_mean", FAIL, problems[0] + more, lines=lines)
    if not steps:
        return Outcome("sample_mean", UNDECIDED, "not decided: sample ran no step")
    return Outcome("sample_mean", PASS)


def _sigma_outcome(steps: list[_Step], s: Schedule, c: Config, lines: tuple) -> Outcome:
    """sigma_t at every call computing a step t > 1.

    Present (not gated off) and of scale beta_t or beta_tilde_t.
    """
    inner = [st for st in steps if st.affine and st.exact_A and (st.t or 0) > 1]
    if not inner:
        return Outcome("sample_sigma", UNDECIDED, "not decided: no step t > 1 was identified")
    silent = [st for st in inner if st.silent]
    problems = []
    if silent:
        named = ", ".join(_where(st, s.T) for st in silent[:3]) + (" ..." if len(silent) > 3 else "")
        problems.append(
            f"no noise at {named}: Algorithm 2 adds sigma_t z at every step t > 1 (on the template's "
            "0-based index i, at every i > 0)"
        )
    noisy = [st for st in inner if not st.silent]
    passing = []
    if noisy:
        n = noisy[0].noise.numel()
        var = torch.stack([st.noise.pow(2).mean() for st in noisy])
        t = torch.tensor([st.t for st in noisy])
        verdicts = {}
        for choice in ("beta", "beta_tilde"):
            want = reverse_variance(s, choice)[t]
            verdicts[choice] = mc(f"sample: sigma^2 = {choice}", var, want * (2 / n) ** 0.5, want, n, c.false_alarm)
        passing = [k for k in c.sigma if verdicts[k][0]]
        if not passing:
            if any(ok for ok, _ in verdicts.values()):
                other = next(k for k, (ok, _) in verdicts.items() if ok)
                problems.append(f"sigma_t^2 = {other}_t; --sigma {c.sigma[0]} demands {c.sigma[0]}_t")
            else:
                worst = verdicts[c.sigma[0]][1]
                u = int(t[worst])
                sd = float(var[worst].sqrt())
                hint = explain(sd, s, SIGMA, u, rtol=6 * (2 / n) ** 0.5)
                like = f" = {hint[0]}" if hint and hint[0] != SIGMA else ""
                problems.append(
                    f"sigma_t = {sd:.4g}{like} at {describe_step(u)}; Algorithm 2 has sqrt(beta_t) = "
                    f"{float(s.beta[u].sqrt()):.4g} or sqrt(beta_tilde_t) = "
                    f"{float(s.beta_tilde[u].sqrt()):.4g}"
                )
    if problems:
        return Outcome("sample_sigma", FAIL, "; ".join(problems), lines=lines)
    unknown = [st for st in steps if st.t is None and s.T - st.j > 1]
    if unknown:
        return Outcome(
            "sample_sigma",
            UNDECIDED,
            f"not decided: sigma_t^2 = {passing[0]}_t at the steps identified, "
            f"but the step of call {unknown[0].j + 1} cannot be told (see sample_mean)",
        )
    return Outcome("sample_sigma", PASS, f"sigma_t^2 = {passing[0]}_t")


def _last_outcome(steps: list[_Step], lines: tuple) -> Outcome:
    last = [st for st in steps if st.t == 1]
    if not last:
        return Outcome("sample_last_step", UNDECIDED, "not decided: no step t = 1 ran (see sample_steps)")
    if not all(st.exact_A for st in last):
        return Outcome("sample_last_step", UNDECIDED, "not decided: the step t = 1 was not run from a chosen state")
    loud = [st for st in last if not st.silent]
    if not loud:
        return Outcome("sample_last_step", PASS)
    return Outcome(
        "sample_last_step",
        FAIL,
        f"the last step adds noise (standard deviation "
        f"{float(loud[0].noise.std()):.3g}): Algorithm 2 sets z = 0 at t = 1",
        lines=lines,
    )


def _z_outcome(steps: list[_Step], c: Config, lines: tuple) -> Outcome:
    noisy = [st for st in steps if st.exact_A and not st.silent and (st.t or 0) > 1]
    z = [st.noise / st.noise.pow(2).mean().sqrt() for st in noisy]
    if not z:
        return Outcome("sample_z", UNDECIDED, "not decided: no step t > 1 adds noise (see sample_sigma)")
    n = z[0].numel()
    fa = c.false_alarm
    z = [e - e.mean(0) for e in z]  # correlations of the centred noise: a wrong mean is reported below
    if len(z) > 1:
        corr = torch.stack([(a * b).mean() for a, b in zip(z, z[1:])])
        ok, worst = mc("sample: z fresh at each step", corr, 1 / n**0.5, 0.0, n, fa)
        if not ok:
            return Outcome(
                "sample_z",
                FAIL,
                f"z is correlated between consecutive steps ({float(corr[worst]):.3g}): "
                "Algorithm 2 draws a fresh z ~ N(0, I) at every step",
                lines=lines,
            )
    pairs = torch.stack([e[: e.shape[0] // 2 * 2].reshape(-1, 2, e.shape[1]) for e in z])
    corr = (pairs[:, :, 0] * pairs[:, :, 1]).mean()
    ok, _ = mc("sample: z independent across samples", corr, 1 / pairs[:, :, 0].numel() ** 0.5, 0.0, n, fa)
    if not ok:
        return Outcome(
            "sample_z",
            FAIL,
            f"the z of different samples are correlated ({float(corr):.3g}): "
            "Algorithm 2 draws z ~ N(0, I) for each sample",
            lines=lines,
        )
    allz = torch.stack(z)
    ok, worst = mc("sample: z mean", allz.mean((1, 2)), 1 / n**0.5, 0.0, n, fa)
    kurt = allz.pow(4).mean()
    ok4, _ = mc("sample: z kurtosis", kurt, (24 / allz.numel()) ** 0.5, 3.0, allz.numel(), fa)
    if not (ok and ok4):
        return Outcome(
            "sample_z",
            FAIL,
            f"z is not N(0, I): mean {float(allz.mean()):.3g}, E[z^4] = {float(kurt):.3g} (N(0, 1) gives 0 and 3)",
            lines=lines,
        )
    return Outcome("sample_z", PASS)


def _prior_outcome(xT: Tensor, c: Config, lines: tuple) -> Outcome:
    n, fa = xT.shape[0], c.false_alarm
    ok1, worst = mc("sample: x_T mean", xT.mean(0), 1 / n**0.5, 0.0, n, fa)
    ok2, _ = mc("sample: x_T variance", xT.pow(2).mean(), (2 / xT.numel()) ** 0.5, 1.0, xT.numel(), fa)
    ok3, _ = mc("sample: x_T kurtosis", xT.pow(4).mean(), (96 / xT.numel()) ** 0.5, 3.0, xT.numel(), fa)
    if ok1 and ok2 and ok3:
        return Outcome("sample_prior", PASS)
    return Outcome(
        "sample_prior",
        FAIL,
        f"x_T is not N(0, I): mean {float(xT.mean()):.3g}, variance "
        f"{float(xT.var()):.3g}, E[x^4] = {float(xT.pow(4).mean()):.3g} (N(0, 1) gives 0, 1, 3)",
        lines=lines,
    )


def _encoding_outcome(enc: list[Tensor | None], steps: list[_Step], facts: TrainingFacts, lines: tuple) -> Outcome:
    read: list[Tensor] = []  # enc, once each call's t is known to be readable
    for j, e in enumerate(enc):
        if e is None:
            return Outcome(
                "t_encoding",
                FAIL,
                f"at call {j + 1} of sample the network is given a t that is not one number a sample",
                lines=lines,
            )
        if e.max() - e.min() > ENC_RTOL * max(1.0, float(e.abs().max())):
            return Outcome(
                "t_encoding",
                FAIL,
                f"at call {j + 1} of sample the network is given different t across the batch",
                lines=lines,
            )
        read.append(e)
    if facts.encoding is None:
        problem = facts.encoding_problem or "not decided: training's encoding of t is unknown (see forward_mean)"
        if problem.startswith("in training"):
            return Outcome("t_encoding", FAIL, problem, lines=tuple(facts.network_sites[:1]))
        return Outcome(
            "t_encoding", UNDECIDED, problem if problem.startswith("not decided") else f"not decided: {problem}"
        )
    compared = 0
    for st in steps:
        if st.t is None or st.t not in facts.encoding or st.j >= len(read):
            continue
        got, want = float(read[st.j][0]), facts.encoding[st.t]
        compared += 1
        if abs(got - want) > ENC_RTOL * max(1.0, abs(want)):
            return Outcome(
                "t_encoding",
                FAIL,
                f"at {describe_step(st.t)} sampling gives the network t = {got:.6g}, "
                f"training gives t = {want:.6g}: the two encode t differently",
                lines=tuple(facts.network_sites[:1]) + lines,
            )
    if not compared:
        return Outcome("t_encoding", UNDECIDED, "not decided: no sampling step was identified")
    return Outcome("t_encoding", PASS)


def _network_call(t_shapes: set, batch: int, where: str, lines: tuple) -> Outcome | None:
    bad = sorted({s for s, kind in t_shapes if kind != "tensor" or s != (batch, 1)})
    if not bad:
        return None
    got = "a number" if any(kind != "tensor" for _, kind in t_shapes) else f"t of shape {bad[0]}"
    return Outcome(
        "network_call",
        FAIL,
        f"{where} gives the network {got}; the template's network takes t of shape (batch, 1) = ({batch}, 1)",
        lines=lines,
    )


def decide_network_call(c: Config, facts: TrainingFacts, train_calls: list[dict], sample_calls: list[dict]) -> Outcome:
    """The network is called once in negative_elbo, with x shaped like the data and t of shape (batch, 1)."""
    shape = list(c.shape(c.batch, c.dim))
    for k in train_calls:
        if k["method"] == "negative_elbo" and not k["error"] and len(k["net"]) != 1:
            return Outcome(
                "network_call",
                FAIL,
                f"negative_elbo calls the network {len(k['net'])} times; Algorithm 1 evaluates eps_theta(x_t, t) once",
                lines=tuple(net_sites([k])[:2]),
            )
    for where, calls in (
        ("negative_elbo", [k for k in train_calls if k["method"] == "negative_elbo"]),
        ("sample", sample_calls),
    ):
        for k in calls:
            for n in k["net"]:
                if n["x_shape"] != shape:
                    return Outcome(
                        "network_call",
                        FAIL,
                        f"{where} gives the network x of shape {tuple(n['x_shape'])} for data of shape {tuple(shape)}",
                        lines=(n["site"],),
                    )
        t_shapes = {(tuple(n["t_shape"]), n["t_kind"]) for k in calls for n in k["net"]}
        bad = _network_call(t_shapes, c.batch, where, tuple(net_sites(calls)[:1]))
        if bad:
            return bad
    if not any(k["net"] for k in train_calls + sample_calls):
        return Outcome("network_call", UNDECIDED, "not decided: the network was never called")
    return Outcome("network_call", PASS)


def decide_sampling(c: Config, facts: TrainingFacts, zero: dict | None, answer: dict | None) -> list[Outcome]:
    """Every Algorithm 2 spec of ``sample`` but the end-to-end law, from the two runs' records."""
    s, B, D = c.schedule, c.batch, c.dim
    if zero is None or answer is None:
        return [Outcome(k, UNDECIDED, "not decided: sample was not observed") for k in SAMPLE_SPECS]
    net_lines = tuple(net_sites([zero])[:1])
    for run in (zero, answer):
        if run["error"] and not run["net"]:
            err = (run["error_site"],) if run["error_site"] else ()
            return [
                Outcome("sample_prior", UNDECIDED, "not decided: sample raised before calling the network"),
                Outcome("sample_steps", FAIL, run["error"], lines=err),
            ] + [Outcome(k, UNDECIDED, "not decided: sample raised (see sample_steps)") for k in SAMPLE_SPECS[2:]]
    out_ok = (
        zero["out"] is not None
        and answer["out"] is not None
        and zero["out"].numel() == B * D
        and answer["out"].numel() == B * D
        and not zero["error"]
        and not answer["error"]
    )
    shape_ok = all(
        n["x_shape"] == list(c.shape(B, D)) and n["x"] is not None for run in (zero, answer) for n in run["net"]
    )
    outcomes = []
    first_draw = zero["draws"][0] if zero["draws"] else None
    draw_lines = tuple(draw_sites([dict(zero, draws=zero["draws"][1:])])[:2])  # the draws after x_T's
    prior_lines = (first_draw["site"],) if first_draw and first_draw["site"] else ()
    if shape_ok and zero["net"]:
        outcomes.append(_prior_outcome(_flat(zero["net"][0]["x"], B, D), c, prior_lines))
    else:
        outcomes.append(
            Outcome(
                "sample_prior", UNDECIDED, "not decided: x_T was not seen (the network got no x shaped like the data)"
            )
        )
    if not shape_ok or len(zero["net"]) != len(answer["net"]):
        why = (
            "the network got x of another shape (see network_call)"
            if not shape_ok
            else f"the two runs called the network {len(zero['net'])} and {len(answer['net'])} times"
        )
        return outcomes + [Outcome(k, UNDECIDED, f"not decided: {why}") for k in SAMPLE_SPECS[1:]]
    xs0 = [_flat(n["x"], B, D) for n in zero["net"]]
    xs1 = [_flat(n["x"], B, D) for n in answer["net"]]
    end_problem = ""
    if out_ok:
        xs0.append(_flat(zero["out"], B, D))
        xs1.append(_flat(answer["out"], B, D))
    else:
        run = zero if zero["error"] or zero["out"] is None else answer
        end_problem = run["error"] or (
            f"sample({tuple(c.shape(B, D))}) returns {run['out_desc']}"
            if run["out"] is None or run["out"].numel() != B * D
            else ""
        )
    steps = _fit(xs0, xs1, sample_answers(c).reshape(-1, B, D).double())  # without x_0, the
    # last call's step has no output to read and stays unmeasured
    _name_steps(steps, s)
    _silent(steps, s)
    if not out_ok:
        lines = tuple(filter(None, [zero["error_site"] or zero["return_site"]]))
        outcomes.append(Outcome("sample_steps", FAIL, f"{end_problem}; the last step cannot be read", lines=lines))
    else:
        outcomes.append(_steps_outcome(steps, s.T, net_lines))
    outcomes += [
        _mean_outcome(steps, s, c, xs0, net_lines),
        _sigma_outcome(steps, s, c, draw_lines or net_lines),
        _last_outcome(steps, draw_lines or net_lines),
        _z_outcome(steps, c, draw_lines),
        _encoding_outcome([n["t"] for n in zero["net"]], steps, facts, net_lines),
    ]
    return outcomes


def _law_of_samples(schedule: Schedule, sigma2: str) -> tuple[Tensor, Tensor]:
    """Mean and variance per coordinate of Algorithm 2's x_0 [Ho20 alg. 2].

    eps_theta is eps* of LAW_DATA.

    eps* of a Gaussian is affine in x_t, eps*(x, t) = A_t x + b_t, read off at x = 0 and the unit
    vectors; the law itself is ddpm's one source, :func:`ddpm.beta.sampler.gaussian_law`.
    """
    eps_star, D = OptimalEps(LAW_DATA, schedule), LAW_DATA.dim
    A = torch.zeros(schedule.T + 1, D, D, dtype=torch.float64)
    b = torch.zeros(schedule.T + 1, D, dtype=torch.float64)
    basis = torch.cat([torch.zeros(1, D), torch.eye(D)]).double()
    for t in range(1, schedule.T + 1):
        e = eps_star(basis, torch.full((D + 1,), t))
        b[t], A[t] = e[0], (e[1:] - e[0]).T  # column i: eps*(e_i) - eps*(0)
    mean, cov = gaussian_law(schedule, A, b, sigma2)
    return mean, cov.diagonal()


def decide_law(c: Config, facts: TrainingFacts, plan: dict | None, law: dict | None) -> Outcome:
    """With the network answering eps* of LAW_DATA (t decoded as training encodes it).

    x_0 follows Algorithm 2's law.
    """
    if not facts.encoding:
        return Outcome(
            "sample_law",
            UNDECIDED,
            "not decided: the network cannot be told t without the training encoding (see t_encoding)",
        )
    if plan is None or law is None:
        return Outcome("sample_law", UNDECIDED, "not decided: the law run was not observed")
    N, D = c.law_samples, LAW_DATA.dim
    if law["error"]:
        return Outcome("sample_law", FAIL, law["error"], lines=tuple(filter(None, [law["error_site"]])))
    if law["out"] is None or law["out"].numel() != N * D:
        return Outcome("sample_law", UNDECIDED, f"not decided: sample returned {law['out_desc']}")
    x0 = law["out"].reshape(N, D).double()
    mean, var = x0.mean(0), x0.var(0)
    results = {}
    for choice in c.sigma:
        m, v = _law_of_samples(c.schedule, choice)
        est, want = torch.cat([mean, var]), torch.cat([m, v])
        se = torch.cat([(v / N).sqrt(), v * (2 / N) ** 0.5])
        results[choice] = (mc(f"sample: law with sigma^2 = {choice}", est, se, want, N, c.false_alarm)[0], m, v)
    passing = [k for k, r in results.items() if r[0]]
    if passing:
        return Outcome("sample_law", PASS, f"mean and variance match Algorithm 2 with sigma_t^2 = {passing[0]}_t")
    _, m, v = results[c.sigma[0]]
    fmt = lambda x: "(" + ", ".join(f"{float(e):.3g}" for e in x) + ")"  # noqa: E731
    return Outcome(
        "sample_law",
        FAIL,
        f"with the exact eps* of a Gaussian, samples have mean {fmt(mean)} and variance "
        f"{fmt(var)}; Algorithm 2 gives mean {fmt(m)} and variance {fmt(v)}",
        lines=tuple(net_sites([law])[:1]),
    )
