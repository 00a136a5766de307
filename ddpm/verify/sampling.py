"""Algorithm 2 read off a student's ``sample`` with probe networks [Ho20 alg. 2, eq. 11, §3.2].

``sample`` runs twice under the same global seed, so both runs draw the same x_T and the same z:
once with the network answering 0 and once answering chosen tensors U_j. Each step is
x_{t-1} = A x_t - B eps_theta + sigma_t z, so the runs' difference d obeys d' = A d - B U_j with the
noise gone: least squares gives A and B exactly (at the first step d = 0 and A is estimated from the
first run instead), and with A known the first run's residual is the noise sigma_t z itself. A and B
name the step each call computes; the residuals give sigma_t, the last step's z = 0, and z's law.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.oracles import GaussianMixture, OptimalEps
from ddpm.posterior import mu_from_eps
from ddpm.schedule import Schedule, reverse_variance
from ddpm.verify.adapter import describe_step
from ddpm.verify.coefficients import RTOL, Monomial, explain, values
from ddpm.verify.harness import Config, Harness, mc
from ddpm.verify.probes import Probe
from ddpm.verify.report import FAIL, PASS, SKIP, Outcome
from ddpm.verify.training import ENC_RTOL, TrainingFacts, check_network_call

__all__ = ["check_sampling", "check_law", "algorithm2_gaussian_law", "LAW_DATA"]

X_FACTOR = Monomial(alpha=-0.5)  # 1 / sqrt(alpha_t), eq. 11
EPS_FACTOR = Monomial(beta=1.0, alpha=-0.5, one_minus_alpha_bar=-0.5)  # beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t))
SIGMA = Monomial(beta=0.5)

# The known distribution of the end-to-end check: one Gaussian N((1.5, -0.5), 0.25 I) in 2-D.
LAW_DATA = GaussianMixture.isotropic([1.0], [[1.5, -0.5]], 0.5)


@dataclass
class _Runs:
    """Both runs' x at each call (then the returned x_0), flattened to (batch, D) in float64, and the answers."""

    x0: list[Tensor]  # network answered 0
    x1: list[Tensor]  # network answered U_j
    answers: Tensor
    enc: list[Tensor]  # the t given to the network at each call of the first run


def _record(h: Harness) -> tuple[_Runs | None, list[Outcome]]:
    c = h.config
    B, D = c.batch, c.dim
    shape = c.shape(B, D)
    answers = torch.randn(c.T + 8, B, D, generator=c.generator("sample")).float()
    seed = c.replay_seed(100)
    zero, probe = Probe(shape), Probe(shape, lambda x, t, j: answers[j % len(answers)].reshape(shape))
    y0 = torch.as_tensor(h.call("sample", zero, shape, seed)).detach()
    y1 = torch.as_tensor(h.call("sample", probe, shape, seed)).detach()
    outcomes = [check_network_call({(k.t_shape, k.t_is_tensor) for k in zero.calls}, B, "sample")]
    if tuple(y0.shape) != shape:
        return None, outcomes + [Outcome("sample_steps", FAIL, f"sample({shape}) returns shape {tuple(y0.shape)}")]
    if not zero.calls or len(zero.calls) != len(probe.calls):
        return None, outcomes + [Outcome("sample_steps", FAIL, f"sample calls the network {len(zero.calls)} times; "
                                         f"Algorithm 2 calls it at each of T = {c.T} steps")]
    flat = lambda calls, y: [k.x.reshape(B, D).double() for k in calls] + [y.reshape(B, D).double()]  # noqa: E731
    runs = _Runs(flat(zero.calls, y0), flat(probe.calls, y1), answers.reshape(len(answers), B, D).double(),
                 [k.t for k in zero.calls])
    if not torch.equal(runs.x0[0], runs.x1[0]):
        return None, outcomes + [Outcome("sample_steps", FAIL, "sample's draws do not repeat when the global seeds "
                                         "are reset, so its steps cannot be read off: draw x_T and z with torch")]
    return runs, outcomes


def _coefficients(r: _Runs) -> tuple[Tensor, Tensor, int | None]:
    """A_j, B_j of every call j (A_0 left NaN), and the first call whose step is not affine, if any."""
    J = len(r.enc)
    A, Bc = torch.full((J,), float("nan"), dtype=torch.float64), torch.zeros(J, dtype=torch.float64)
    for j in range(J):
        u = r.answers[j % len(r.answers)].flatten()
        d, d_next = (r.x1[j] - r.x0[j]).flatten(), (r.x1[j + 1] - r.x0[j + 1]).flatten()
        if j == 0:
            Bc[0] = -(d_next @ u) / (u @ u)
            fit = -Bc[0] * u
        else:
            sol = torch.linalg.lstsq(torch.stack([d, u], 1), d_next[:, None]).solution[:, 0]
            A[j], Bc[j] = sol[0], -sol[1]
            fit = A[j] * d - Bc[j] * u
        if (d_next - fit).norm() > RTOL * (r.x1[j + 1].norm() + r.x0[j + 1].norm()):
            return A, Bc, j
    return A, Bc, None


def _first_factor(r: _Runs, s: Schedule, t0: int | None, config: Config) -> tuple[float, bool]:
    """A_0 by regressing the first run's x_{T-1} on x_T; whether it is 1 / sqrt(alpha_t0) (by check_mc)."""
    x, y = r.x0[0].flatten(), r.x0[1].flatten()
    a = float((x @ y) / (x @ x))
    resid = y - a * x
    if t0 is None:
        return a, False
    want = float(values(s, X_FACTOR)[t0])
    if resid.norm() == 0:
        return a, abs(a - want) <= RTOL * want
    return a, mc("sample: first step's factor on x_t", a, resid.std() / x.norm(), want, x.numel(), config)[0]


def _steps(A: Tensor, Bc: Tensor, s: Schedule) -> list[int | None]:
    """The step t each call computes: where eq. 11's factors match (A alone, exact from call 1 on), else B's."""
    refA, refB = values(s, X_FACTOR)[1:], values(s, EPS_FACTOR)[1:]
    steps = []
    for j in range(len(A)):
        t = None
        for value, ref in ((A[j], refA), (Bc[j], refB)):
            rel = ((value - ref).abs() / ref.abs())
            if torch.isfinite(value) and rel.min() <= RTOL:
                t = int(rel.argmin()) + 1
                break
        if t is None:
            hint = explain(float(Bc[j]), s, EPS_FACTOR, s.T - j)
            t = hint[1] if hint else None
        steps.append(t)
    return steps


def _mean_outcome(A: Tensor, Bc: Tensor, a0_ok: bool, a0: float, steps: list, s: Schedule) -> Outcome:
    for j in list(range(1, len(steps))) + [0]:  # the exact calls first; the first call's A_0 is an estimate
        t = steps[j]
        where = describe_step(t) if t else f"call {j + 1} of the network"
        for name, value, m in (("x_t", A[j] if j else a0, X_FACTOR), ("eps_theta", Bc[j], EPS_FACTOR)):
            want = float(values(s, m)[t]) if t else float("nan")
            ok = a0_ok if (j == 0 and name == "x_t") else bool(abs(float(value) - want) <= RTOL * abs(want))
            if not ok:
                hint = explain(float(value), s, m, t)
                like = f" = {hint[0]}" + (f" at t = {hint[1]}" if hint[1] != t else "") if hint else ""
                return Outcome("sample_mean", FAIL, f"at {where} the factor on {name} is {float(value):.5g}{like}; "
                               f"eq. 11 has {m} = {want:.5g}")
    return Outcome("sample_mean", PASS)


def _steps_outcome(steps: list, T: int) -> Outcome:
    if len(steps) != T:
        known = [t for t in steps if t]
        span = f" (steps t = {known[0]}..{known[-1]})" if known else ""
        return Outcome("sample_steps", FAIL, f"sample takes {len(steps)} steps{span}; Algorithm 2 takes T = {T} "
                       "steps, t = T, ..., 1")
    for j, t in enumerate(steps):
        if t is None:
            return Outcome("sample_steps", SKIP, f"the step of call {j + 1} cannot be told (see sample_mean)")
        if t != T - j:
            return Outcome("sample_steps", FAIL, f"call {j + 1} of the network computes step {describe_step(t)}, "
                           f"where Algorithm 2 is at {describe_step(T - j)}: it runs t = T, ..., 1, each once")
    return Outcome("sample_steps", PASS)


def _noise(r: _Runs, A: Tensor, a0: float) -> list[Tensor]:
    """The first run's residual at each call: sigma_t z (the network answered 0)."""
    return [r.x0[j + 1] - (a0 if j == 0 else A[j]) * r.x0[j] for j in range(len(r.enc))]


def _silent(noise: list[Tensor], steps: list, s: Schedule) -> list[bool]:
    """Whether each call adds no noise: a residual under 1% of the smallest sigma_t Algorithm 2 allows there.

    The residual of a step without noise is float32 rounding, ~1e-7 of x; the smallest sigma_t of
    the verifier's schedule, sqrt(beta_tilde_2), is ~0.08.
    """
    floor = reverse_variance(s, "beta_tilde").sqrt()
    return [bool(e.pow(2).mean().sqrt() <= 0.01 * floor[max(t or s.T - j, 2)])
            for j, (e, t) in enumerate(zip(noise, steps))]


def _sigma_outcome(noise: list[Tensor], silent: list[bool], steps: list, s: Schedule, c: Config) -> Outcome:
    T = s.T
    inner = list(range(len(noise) - 1))
    var = torch.stack([noise[j].pow(2).mean() for j in inner])
    silent = [j for j in inner if silent[j]]
    if silent:
        t = steps[silent[0]] or T - silent[0]
        return Outcome("sample_sigma", FAIL, f"no noise at {describe_step(t)}: Algorithm 2 adds sigma_t z at every "
                       "step t > 1 (on the template's 0-based index i, at every i > 0)")
    n = noise[0].numel()
    t = torch.tensor([steps[j] or T - j for j in inner])
    verdicts = {}
    for choice in ("beta", "beta_tilde"):
        want = reverse_variance(s, choice)[t]
        verdicts[choice] = mc(f"sample: sigma^2 = {choice}", var, want * (2 / n) ** 0.5, want, n, c)
    passing = [k for k in c.sigma if verdicts[k][0]]
    if passing:
        return Outcome("sample_sigma", PASS, f"sigma_t^2 = {passing[0]}_t")
    if any(ok for ok, _ in verdicts.values()):
        other = next(k for k, (ok, _) in verdicts.items() if ok)
        return Outcome("sample_sigma", FAIL, f"sigma_t^2 = {other}_t; --sigma {c.sigma[0]} demands {c.sigma[0]}_t")
    worst = verdicts[c.sigma[0]][1]
    u = int(t[worst])
    sd = float(var[worst].sqrt())
    hint = explain(sd, s, SIGMA, u, rtol=6 * (2 / n) ** 0.5)
    like = f" = {hint[0]}" if hint and hint[0] != SIGMA else ""
    return Outcome("sample_sigma", FAIL, f"sigma_t = {sd:.4g}{like} at {describe_step(u)}; Algorithm 2 has sqrt(beta_t) "
                   f"= {float(s.beta[u].sqrt()):.4g} or sqrt(beta_tilde_t) = {float(s.beta_tilde[u].sqrt()):.4g}")


def _last_outcome(noise: list[Tensor], silent: list[bool]) -> Outcome:
    if silent[-1]:
        return Outcome("sample_last_step", PASS)
    return Outcome("sample_last_step", FAIL, f"the last step adds noise (standard deviation {float(noise[-1].std()):.3g}"
                   "): Algorithm 2 sets z = 0 at t = 1")


def _z_outcome(noise: list[Tensor], silent: list[bool], c: Config) -> Outcome:
    z = [e / e.pow(2).mean().sqrt() for e, quiet in zip(noise[:-1], silent) if not quiet]
    if not z:
        return Outcome("sample_z", SKIP, "no step adds noise (see sample_sigma)")
    n = z[0].numel()
    z = [e - e.mean(0) for e in z]  # correlations of the centred noise: a wrong mean is reported below
    if len(z) > 1:
        corr = torch.stack([(a * b).mean() for a, b in zip(z, z[1:])])
        ok, worst = mc("sample: z fresh at each step", corr, 1 / n**0.5, 0.0, n, c)
        if not ok:
            return Outcome("sample_z", FAIL, f"z is correlated between consecutive steps ({float(corr[worst]):.3g}): "
                           "Algorithm 2 draws a fresh z ~ N(0, I) at every step")
    pairs = torch.stack([e[: e.shape[0] // 2 * 2].reshape(-1, 2, e.shape[1]) for e in z])
    corr = (pairs[:, :, 0] * pairs[:, :, 1]).mean()
    ok, _ = mc("sample: z independent across samples", corr, 1 / pairs[:, :, 0].numel() ** 0.5, 0.0, n, c)
    if not ok:
        return Outcome("sample_z", FAIL, f"the z of different samples are correlated ({float(corr):.3g}): "
                       "Algorithm 2 draws z ~ N(0, I) for each sample")
    allz = torch.stack(z)
    ok, worst = mc("sample: z mean", allz.mean((1, 2)), 1 / n**0.5, 0.0, n, c)
    kurt = allz.pow(4).mean()
    ok4, _ = mc("sample: z kurtosis", kurt, (24 / allz.numel()) ** 0.5, 3.0, allz.numel(), c)
    if not (ok and ok4):
        return Outcome("sample_z", FAIL, f"z is not N(0, I): mean {float(allz.mean()):.3g}, E[z^4] = {float(kurt):.3g} "
                       "(N(0, 1) gives 0 and 3)")
    return Outcome("sample_z", PASS)


def _prior_outcome(xT: Tensor, c: Config) -> Outcome:
    n = xT.shape[0]
    ok1, worst = mc("sample: x_T mean", xT.mean(0), 1 / n**0.5, 0.0, n, c)
    ok2, _ = mc("sample: x_T variance", xT.pow(2).mean(), (2 / xT.numel()) ** 0.5, 1.0, xT.numel(), c)
    ok3, _ = mc("sample: x_T kurtosis", xT.pow(4).mean(), (96 / xT.numel()) ** 0.5, 3.0, xT.numel(), c)
    if ok1 and ok2 and ok3:
        return Outcome("sample_prior", PASS)
    return Outcome("sample_prior", FAIL, f"x_T is not N(0, I): mean {float(xT.mean()):.3g}, variance "
                   f"{float(xT.var()):.3g}, E[x^4] = {float(xT.pow(4).mean()):.3g} (N(0, 1) gives 0, 1, 3)")


def _encoding_outcome(r: _Runs, steps: list, facts: TrainingFacts) -> Outcome:
    for j, e in enumerate(r.enc):
        if e.max() - e.min() > ENC_RTOL * max(1.0, float(e.abs().max())):
            return Outcome("t_encoding", FAIL, f"at call {j + 1} of sample the network is given different t across "
                           "the batch")
    if facts.encoding is None:
        problem = facts.encoding_problem or "training's encoding of t is unknown (see forward_mean)"
        return Outcome("t_encoding", FAIL if problem.startswith("in training") else SKIP, problem)
    for j, t in enumerate(steps):
        if t is None or t not in facts.encoding:
            continue
        got, want = float(r.enc[j][0]), facts.encoding[t]
        if abs(got - want) > ENC_RTOL * max(1.0, abs(want)):
            return Outcome("t_encoding", FAIL, f"at {describe_step(t)} sampling gives the network t = {got:.6g}, "
                           f"training gives t = {want:.6g}: the two encode t differently")
    return Outcome("t_encoding", PASS)


def check_sampling(h: Harness, facts: TrainingFacts) -> list[Outcome]:
    """Every Algorithm 2 spec of ``sample`` but the end-to-end law; raises StudentError if sample raises."""
    c, s = h.config, h.config.schedule
    runs, out = _record(h)
    if runs is None:
        return out
    out.append(_prior_outcome(runs.x0[0], c))
    A, Bc, broken = _coefficients(runs)
    if broken is not None:
        out.append(Outcome("sample_mean", FAIL, f"call {broken + 1} of sample's loop does not make x_(t-1) an affine "
                           "function of x_t and eps_theta (eq. 11 is; clipping the predicted x_0 is not Algorithm 2)"))
        later = ("sample_steps", "sample_sigma", "sample_last_step", "sample_z", "t_encoding")
        return out + [Outcome(k, SKIP, "the steps cannot be read off (see sample_mean)") for k in later]
    steps = _steps(A, Bc, s)
    a0, a0_ok = _first_factor(runs, s, steps[0], c)
    noise = _noise(runs, A, a0)
    silent = _silent(noise, steps, s)
    out += [_steps_outcome(steps, s.T), _mean_outcome(A, Bc, a0_ok, a0, steps, s),
            _sigma_outcome(noise, silent, steps, s, c), _last_outcome(noise, silent), _z_outcome(noise, silent, c),
            _encoding_outcome(runs, steps, facts)]
    return out


def algorithm2_gaussian_law(data: GaussianMixture, schedule: Schedule, sigma2: str) -> tuple[Tensor, Tensor]:
    """Mean and variance per coordinate of Algorithm 2's x_0 with eps* of a diagonal Gaussian [Ho20 alg. 2].

    eps* of a Gaussian is affine in x_t, so each step maps N(m, v) to N(P m + q, P^2 v + sigma_t^2),
    with P and q read off mu_theta = mu_from_eps(x, eps*(x)) at x = 0 and x = 1 [eq. 11].
    """
    eps_star = OptimalEps(data, schedule)
    sigma = reverse_variance(schedule, sigma2)
    basis = torch.stack([torch.zeros(data.dim), torch.ones(data.dim)]).double()
    mean, var = torch.zeros(data.dim, dtype=torch.float64), torch.ones(data.dim, dtype=torch.float64)
    for t in range(schedule.T, 0, -1):
        mu = mu_from_eps(schedule, basis, t, eps_star(basis, torch.full((2,), t)))
        q, P = mu[0], mu[1] - mu[0]
        mean, var = P * mean + q, P**2 * var + (sigma[t] if t > 1 else 0.0)
    return mean, var


def check_law(h: Harness, facts: TrainingFacts) -> Outcome:
    """With the network answering eps* of LAW_DATA (t decoded as training encodes it), x_0 follows Algorithm 2's law."""
    c, s = h.config, h.config.schedule
    if not facts.encoding:
        return Outcome("sample_law", SKIP, "the network cannot be told t without the training encoding (see t_encoding)")
    steps = torch.tensor(sorted(facts.encoding))
    codes = torch.tensor([facts.encoding[int(t)] for t in steps], dtype=torch.float64)
    eps_star = OptimalEps(LAW_DATA, s)
    N, D = c.law_samples, LAW_DATA.dim
    shape = c.shape(N, D)

    def respond(x: Tensor, enc: Tensor, j: int) -> Tensor:
        t = steps[(enc[:, None] - codes[None, :]).abs().argmin(1)]  # the trained step nearest the code
        return eps_star(x.reshape(N, D).double(), t).reshape(shape)

    x0 = torch.as_tensor(h.call("sample", Probe(shape, respond), shape, c.replay_seed(200))).detach()
    x0 = x0.reshape(N, D).double()
    mean, var = x0.mean(0), x0.var(0)
    results = {}
    for choice in c.sigma:
        m, v = algorithm2_gaussian_law(LAW_DATA, s, choice)
        est, want = torch.cat([mean, var]), torch.cat([m, v])
        se = torch.cat([(v / N).sqrt(), v * (2 / N) ** 0.5])
        results[choice] = (mc(f"sample: law with sigma^2 = {choice}", est, se, want, N, c)[0], m, v)
    passing = [k for k, r in results.items() if r[0]]
    if passing:
        return Outcome("sample_law", PASS, f"mean and variance match Algorithm 2 with sigma_t^2 = {passing[0]}_t")
    _, m, v = results[c.sigma[0]]
    fmt = lambda x: "(" + ", ".join(f"{float(e):.3g}" for e in x) + ")"  # noqa: E731
    return Outcome("sample_law", FAIL, f"with the exact eps* of a Gaussian, samples have mean {fmt(mean)} and variance "
                   f"{fmt(var)}; Algorithm 2 gives mean {fmt(m)} and variance {fmt(v)}")
