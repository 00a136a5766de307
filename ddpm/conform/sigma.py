"""The sigma world's specs: Euler, Heun, DPM-Solver++, flow matching [Karras22; Esser24].

A scheduler is of the sigma world when ``set_timesteps(n)`` leaves it a list of noise levels
``sigmas`` beside its ``timesteps`` (one more level than timesteps: the last is where sampling ends).
Its sample at level sigma is one of three parameterisations of x_0 + sigma eps, told apart by what
the scheduler does, never by its name:

- VE, ``init_noise_sigma`` != 1: x = x_0 + sigma eps, and the network sees ``scale_model_input(x)``
  = x / sqrt(1 + sigma^2), the VP sample of the same level [Song21 §4.3; Karras22 table 1];
- VP, ``init_noise_sigma`` = 1 with ``alphas_cumprod``: x = a x_0 + sigma a eps, a = 1 / sqrt(1 + sigma^2);
- flow matching, no ``alphas_cumprod``: x = (1 - sigma) x_0 + sigma eps, the model predicting the
  velocity eps - x_0 [Esser24 §2].

Every spec drives the scheduler as a pipeline does (``set_timesteps``, then for each timestep
``scale_model_input``, the model, ``step``) with the exact denoiser of data N(m, c I) (``ddpm.oracles``),
told the level by the timestep it is handed: the level the scheduler lists beside that timestep.

- levels: the listed levels end at 0 where promised, fall strictly, are the Karras levels [Karras22
  eq. 5] when asked, and the timestep handed to the network names them: within one training step of
  the sigma twin of alpha_bar [Song21 §4.3], or t = sigma T for flow matching with the shift applied
  once to an evenly spaced grid [Esser24 §5.3.2];
- ode_order (deterministic solvers): the sample at the last non-zero level converges to the closed-form
  solution of the probability-flow ODE (``gaussian_flow_at``) with a fitted order of at least 0.8, and
  at least 1.5 where the solver states an order >= 2 (its ``solver_order``, else its ``order``); the
  step to level 0 returns the denoiser's x_0 = E[x_0 | x] [Karras22 alg. 1];
- law (ancestral solvers): the samples' mean and variance are those of the ancestral recursion [Song21
  eq. 12 at eta = 1], which is the gamma / mu sampler at gam = 1, mu = 1/2 [PY23 App. A], at the
  project's false-alarm rate (``ddpm.stats.check_mc``);
- add_noise: x_0 and the noise put at each listed level, and at the level of ``set_begin_index(k)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ddpm.conform.beta import EPS32, ULPS, Scheduler, guard, spec_schedule
from ddpm.conform.law import LAW_COUNTS, LAW_DRAWS, MEAN, C, Run, data_law, exact_output, hold
from ddpm.conform.targets import Factory, TargetError, raised
from ddpm.oracles import gaussian_flow_at
from ddpm.sigma.flow_matching import shift_levels, unshift_levels
from ddpm.sigma.sampler import gaussian_gam_law
from ddpm.sigma.schedule import karras_sigmas, sigmas_from_alpha_bar
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome

__all__ = ["SPECS", "CITES", "CLAIMS", "is_sigma_world", "run_sigma_specs", "ORDER_COUNTS"]

ORDER_COUNTS = (64, 128, 256)  # past the first steps' pre-asymptotic regime (DPM-Solver++ 2M: 1.57, 1.68)
MIN_ORDER, SECOND_ORDER = 0.8, 1.5  # convergent; better than first order
RHO = 7.0  # [Karras22 eq. 5]

CITES = {
    "schedule": "[Ho20 §4; Nichol21 eq. 17; Lin24 alg. 1]",
    "timesteps": "[Ho20 alg. 2; Lin24 table 2]",
    "levels": "[Karras22 eq. 5; Song21 §4.3; Esser24 §5.3.2]",
    "ode_order": "[Karras22 alg. 1; Song21 §4.3]",
    "law": "[Song21 eq. 12; PY23 App. A]",
    "add_noise": "[Ho20 eq. 4; Karras22 table 1]",
    "finite": "[Karras22 alg. 1]",
}
CLAIMS = {
    "levels": "the levels end at 0, fall, are Karras' when asked, and the timestep names the level",
    "ode_order": "with the exact denoiser, the solution of the probability-flow ODE at the stated order",
    "law": "an ancestral sampler's output has the mean and variance of its recursion",
}
SPECS = tuple(CITES)


def _outcome(spec: str, status: str, detail: str) -> Outcome:
    return Outcome(spec, status, detail, CITES[spec])


def is_sigma_world(obj: Any) -> bool:
    """Whether ``set_timesteps(n)`` lists levels beside the timesteps: a fixed number more, n = 7 and 10.

    One more is where sampling ends; a training table that ``set_timesteps`` leaves as it is (diffusers
    0.21's DPM-Solver++ keeps all T levels in ``sigmas``) is not a list of levels to sample.
    """
    try:
        extra = set()
        for n in (7, 10):
            obj.set_timesteps(n)
            extra.add(len(obj.sigmas) - len(obj.timesteps))
        return len(extra) == 1 and extra.pop() > 0
    except Exception:
        return False


@dataclass
class Levels:
    """What ``set_timesteps(n)`` lists: the timesteps, the level beside each, the level it ends at."""

    timesteps: list[float]
    sigmas: list[float]  # len(timesteps) + 1: sampling ends at the last
    listed: int  # how many levels the scheduler lists (len(timesteps) + 1 unless it lists too many)

    @property
    def distinct(self) -> list[float]:
        """The levels with consecutive repeats dropped (a two-stage solver lists each twice)."""
        return [s for i, s in enumerate(self.sigmas) if i == 0 or s != self.sigmas[i - 1]]

    def level_of(self, t: float) -> float:
        return self.sigmas[self.timesteps.index(t)]


class SigmaScheduler(Scheduler):
    """A sigma-world scheduler: its parameterisation, its listed levels, and the pipeline's loop."""

    @property
    def kind(self) -> str:
        if not hasattr(self.obj, "alphas_cumprod"):
            return "fm"
        return "ve" if float(getattr(self.obj, "init_noise_sigma", 1.0)) != 1.0 else "vp"

    def levels(self, n: int) -> Levels:
        self.obj.set_timesteps(n)
        ts = [float(t) for t in torch.as_tensor(self.obj.timesteps).reshape(-1).tolist()]
        sigmas = [float(s) for s in torch.as_tensor(self.obj.sigmas).reshape(-1).tolist()]
        return Levels(ts, sigmas[: len(ts) + 1], len(sigmas))

    def coords(self, sigma: float, model: bool = False) -> tuple[float, float]:
        """(a, s) of x = a x_0 + s eps at level sigma: of the sample, or of what the network sees."""
        if self.kind == "fm":
            return 1 - sigma, sigma
        if self.kind == "ve" and not model:
            return 1.0, sigma
        a = 1 / math.sqrt(1 + sigma * sigma)
        return a, sigma * a

    @property
    def prediction(self) -> str:
        return "velocity" if self.kind == "fm" else str(self.config.get("prediction_type", "epsilon"))

    @property
    def start_scale(self) -> float:
        return float(getattr(self.obj, "init_noise_sigma", 1.0))

    def run(self, n: int, x: Tensor, seed: int) -> tuple[Levels, list[Tensor]]:
        """x before each step and after the last, driven by the exact denoiser of N(MEAN, C I)."""
        levels = self.levels(n)
        mixture = data_law(x.shape[1])
        extra = dict(self.factory.step_kwargs)
        if self.takes_generator:
            extra["generator"] = torch.Generator().manual_seed(seed)
        xs = [x]
        for t in self.obj.timesteps:
            model_in = self.obj.scale_model_input(x, t) if hasattr(self.obj, "scale_model_input") else x
            a, s = self.coords(levels.level_of(float(t)), model=True)
            result = self.obj.step(exact_output(mixture, model_in, a, s, self.prediction), t, x, **extra)
            x = result[0] if isinstance(result, tuple) else result.prev_sample
            xs.append(x)
        return levels, xs


def _start(sched: SigmaScheduler, batch: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return sched.start_scale * torch.randn(batch, 2, generator=g, dtype=torch.float64)


def _guard(spec: str, fn: Callable[[], Outcome]) -> Outcome:
    return guard(spec, fn, CITES)


# -- timesteps and levels ------------------------------------------------------------------------


def spec_timesteps(sched: SigmaScheduler, steps: Sequence[int]) -> Outcome:
    """n steps asked, n + 1 distinct levels, strictly falling; the top where the spacing promises it."""
    T = int(sched.config.get("num_train_timesteps", 1000))
    spacing = sched.config.get("timestep_spacing")
    problems = []
    counts = sorted(n for n in set(steps) | {1, T} if n <= T)
    top = float(_twin(sched)[-1]) if sched.kind != "fm" else 1.0
    for n in counts:
        lv = sched.levels(n)
        d = lv.distinct
        if lv.listed != len(lv.timesteps) + 1:
            problems.append(
                f"n = {n}: {lv.listed} levels listed for {len(lv.timesteps)} timesteps: sampling ends at "
                f"level {lv.sigmas[-1]:.6g}, the {lv.listed - len(lv.sigmas)} listed after it never reached"
            )
        elif len(d) != n + 1:
            same = [i for i in range(1, len(lv.sigmas)) if lv.sigmas[i] == lv.sigmas[i - 1]]
            rep = same[-1] if len(d) < n + 1 and same else None
            at = f": level {lv.sigmas[rep]:.6g} twice at positions {rep - 1}, {rep}" if rep is not None else ""
            problems.append(f"n = {n}: {len(d)} distinct levels for {n} steps, so {len(d) - 1} steps taken{at}")
        elif any(b >= a for a, b in zip(d, d[1:])):
            i = next(i for i, (a, b) in enumerate(zip(d, d[1:])) if b >= a)
            problems.append(f"n = {n}: the levels do not fall strictly at position {i}: {d[i]:.6g}, {d[i + 1]:.6g}")
        firsts = [t for i, t in enumerate(lv.timesteps) if i == 0 or lv.sigmas[i] != lv.sigmas[i - 1]]
        if len(set(firsts)) != len(firsts):
            t = next(t for t in firsts if firsts.count(t) > 1)
            problems.append(f"n = {n}: the timestep {t:g} is handed to the network at two different levels")
        promised = spacing in ("linspace", "trailing") and n >= 2
        if promised and not math.isclose(lv.sigmas[0], top, rel_tol=ULPS):
            problems.append(
                f"n = {n}: {spacing} spacing starts at level {lv.sigmas[0]:.6g} (timestep {firsts[0]:g}), "
                f"not at the top {top:.6g}"
            )
    if problems:
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        return _outcome("timesteps", FAIL, "; ".join(problems[:4]) + more)
    return _outcome("timesteps", PASS, f"n in {counts}: n + 1 distinct levels, strictly falling, distinct timesteps")


def _twin(sched: SigmaScheduler) -> Tensor:
    """The sigma twin of the training schedule, one level per training timestep k = 0..T-1."""
    return sigmas_from_alpha_bar(sched.alpha_bar.clamp_min(1e-300))


def spec_levels(sched: SigmaScheduler, steps: Sequence[int]) -> Outcome:
    cfg = sched.config
    problems: list[str] = []
    notes: list[str] = []
    closest = 0.0  # the largest error / tolerance of the closed forms that passed
    ends_at_min = cfg.get("final_sigmas_type") == "sigma_min"
    T = int(cfg.get("num_train_timesteps", 1000))
    twin = _twin(sched) if sched.kind != "fm" else None
    last = math.nan  # where the largest count's sampling ends
    for n in sorted(set(steps)):
        if n > T:
            continue
        lv = sched.levels(n)
        d = lv.distinct
        last = lv.sigmas[-1]
        if sched.kind == "fm":
            lowest = float(shift_levels(1 / T, float(cfg.get("shift", 1.0))))
        else:
            assert twin is not None
            lowest = float(twin[0])
        promise = cfg.get("final_sigmas_type")
        if ends_at_min and not math.isclose(last, lowest, rel_tol=ULPS):
            problems.append(f"n = {n}: final_sigmas_type='sigma_min' ends at {last:.6g}, not {lowest:.6g}")
        elif promise == "zero" and last != 0:
            problems.append(f"n = {n}: the last level is {last:.6g}, not 0: the output keeps noise of that std")
        elif promise is None and last != 0:
            note = f"departure: no final_sigmas_type promises 0; sampling ends at level {last:.6g}, keeping that noise"
            notes += [note] if note not in notes else []
        inner = d[:-1]
        c_noise = sched.kind != "fm" and all(  # EDM's network input ln(sigma) / 4 [Karras22 table 1]
            math.isclose(t, math.log(s) / 4, rel_tol=4 * EPS32, abs_tol=4 * EPS32)
            for t, s in zip(lv.timesteps, lv.sigmas)
            if s > 0
        )
        if c_noise and not any("c_noise" in note for note in notes):
            notes.append("the timesteps are EDM's c_noise = ln(sigma) / 4 [Karras22 table 1], not training indices")
        for i, t in enumerate([] if c_noise else lv.timesteps):
            s = lv.sigmas[i]
            if sched.kind == "fm":
                if not math.isclose(t, s * T, rel_tol=4 * EPS32, abs_tol=4 * EPS32 * T):
                    problems.append(f"n = {n}: timestep {t:.6g} at level {s:.6g}, not sigma T = {s * T:.6g}")
                    break
            else:
                assert twin is not None
                # within half a training step of t: a rounded or interpolated timestep names its level
                f, c = min(max(math.floor(t), 0), T - 1), min(max(math.ceil(t), 0), T - 1)
                lo = math.sqrt(float(twin[max(f - 1, 0)]) * float(twin[f])) if -0.5 <= t <= T - 0.5 else math.nan
                hi = (float(twin[c]) + float(twin[min(c + 1, T - 1)])) / 2
                if not (lo * (1 - ULPS) <= s <= hi * (1 + ULPS)):
                    problems.append(
                        f"n = {n}: timestep {t:.6g} is handed to the network at level {s:.6g}, outside the "
                        f"levels {lo:.6g}..{hi:.6g} within half a training step of it"
                    )
                    break
        if cfg.get("use_karras_sigmas") and len(inner) >= 2:
            s_min = float(cfg.get("sigma_min") or (twin[0] if twin is not None else inner[-1]))
            s_max = float(cfg.get("sigma_max") or (twin[-1] if twin is not None else inner[0]))
            want = karras_sigmas(len(inner), s_min, s_max, RHO)
            err = max(abs(a - float(b)) / float(b) for a, b in zip(inner, want))
            closest = max(closest, err / (16 * ULPS))
            if err > 16 * ULPS:
                k = max(range(len(inner)), key=lambda j: abs(inner[j] - float(want[j])) / float(want[j]))
                problems.append(
                    f"n = {n}: Karras level {k} is {inner[k]:.6g}, eq. 5 gives {float(want[k]):.6g} "
                    f"(rho = {RHO:g}, sigma {s_min:.4g}..{s_max:.4g})"
                )
        other_spacing = any(cfg.get(k) for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"))
        if sched.kind == "fm" and len(inner) >= 3 and not other_spacing:
            shift = float(cfg.get("shift", 1.0))
            u = unshift_levels(torch.tensor(inner, dtype=torch.float64), shift)
            spacing = u[:-1] - u[1:]
            spread = float((spacing - spacing.mean()).abs().max() / spacing.mean().abs())
            closest = max(closest, spread / 1e-4)
            if spread > 1e-4 or not math.isclose(inner[0], 1.0, rel_tol=ULPS):
                problems.append(
                    f"n = {n}: the levels are not shift({shift:g}) of an evenly spaced grid from 1 "
                    f"(unshifted spacings differ by {spread:.2g} relatively; top {inner[0]:.6g})"
                )
            elif not math.isclose(inner[-1], lowest, rel_tol=1e-4) and n == max(steps):
                once = float(u[-1])
                notes.append(
                    f"departure: the grid's bottom is already shifted ({once:.6g} = shift(1/T) rather than 1/T), "
                    f"so the lowest level {inner[-1]:.6g} is shifted twice (once: {lowest:.6g})"
                )
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return _outcome("levels", FAIL, "; ".join(problems[:3]) + more)
    what = {"fm": "t = sigma T, the shift applied once", "ve": "the twin of alpha_bar", "vp": "the twin of alpha_bar"}
    end = "sigma_min" if ends_at_min else ("0" if last == 0 else "the lowest level")
    detail = f"n in {sorted(set(steps))}: levels end at {end}, {what[sched.kind]}"
    if cfg.get("use_karras_sigmas"):
        detail += f", Karras eq. 5 with rho = {RHO:g}"
    if closest:
        detail += f" (closest at {closest:.2g} of its tolerance)"
    conventions = [note for note in notes if not note.startswith("departure: ")]
    departures = [note.removeprefix("departure: ") for note in notes if note.startswith("departure: ")]
    detail += "".join(f"; {note}" for note in conventions)
    if departures:  # last: the report's table reads the text after "departure: "
        detail += "; documented departure: " + "; ".join(departures)
    return _outcome("levels", PASS, detail)


# -- ode_order and law ---------------------------------------------------------------------------


def _stochastic(sched: SigmaScheduler) -> bool:
    x = _start(sched, 4, 0)
    torch.manual_seed(1)
    one = sched.run(10, x.clone(), 1)[1][-1]
    torch.manual_seed(2)
    two = sched.run(10, x.clone(), 2)[1][-1]
    return not torch.equal(one.nan_to_num(), two.nan_to_num())


def _stated_order(sched: SigmaScheduler) -> int:
    return int(sched.config.get("solver_order", getattr(sched.obj, "order", 1)) or 1)


def spec_ode_order(sched: SigmaScheduler) -> tuple[Outcome, bool]:
    """The fitted order at the last non-zero level and the step to level 0; and whether all is finite."""
    tops = [sched.levels(n).sigmas[0] for n in ORDER_COUNTS]
    if max(tops) > 1.01 * min(tops):
        where = ", ".join(f"{s:.4g}" for s in tops)
        why = f"sampling starts at level {where} for n = {list(ORDER_COUNTS)}: no order fits over different problems"
        return _outcome("ode_order", UNDECIDED, why), True
    x_start = _start(sched, 64, 3)
    mean = data_law(2).means
    errors, finite, finals = [], True, []
    for n in ORDER_COUNTS:
        levels, xs = sched.run(n, x_start.clone(), 0)
        finite &= all(bool(torch.isfinite(x).all()) for x in xs)
        last = max(i for i, s in enumerate(levels.sigmas) if s > 0)
        a0, s0 = sched.coords(levels.sigmas[0])
        aL, sL = sched.coords(levels.sigmas[last])
        exact = gaussian_flow_at(x_start, a0, s0, aL, sL, mean, C)
        spread = math.sqrt(aL * aL * C + sL * sL)  # the marginal's std at that level
        errors.append(float((xs[last] - exact).abs().max()) / spread)
        if levels.sigmas[-1] == 0:  # the step to 0: no worse than twice the denoiser's own step
            end = gaussian_flow_at(xs[last], aL, sL, 1.0, 0.0, mean, C)
            denoised = float((data_law(2).posterior_mean(xs[last], aL, sL) - end).abs().max())
            err = float((xs[-1] - end).abs().max())
            floor = ULPS * (1 + float(xs[last].abs().max()) / max(aL, 1e-300))
            finals.append((err / (2 * denoised + floor), n, err, denoised))
    if not finite or not all(math.isfinite(e) for e in errors):
        return _outcome("ode_order", UNDECIDED, "non-finite samples: see finite"), finite
    where = ", ".join(f"n = {n}: {e:.3g}" for n, e in zip(ORDER_COUNTS, errors))
    logs = [math.log(max(e, 1e-300)) for e in errors]
    xs_ = [math.log(n) for n in ORDER_COUNTS]
    mx, my = sum(xs_) / len(xs_), sum(logs) / len(logs)
    order = -sum((u - mx) * (v - my) for u, v in zip(xs_, logs)) / sum((u - mx) ** 2 for u in xs_)
    stated = _stated_order(sched)
    need = SECOND_ORDER if stated >= 2 else MIN_ORDER
    detail = f"fitted order {order:.2f} (states {stated}; needs >= {need:g}) against the exact flow ({where})"
    bad_final = [f for f in finals if f[0] > 1]
    if bad_final:
        _, n, err, denoised = max(bad_final)
        lands = f"n = {n}: the step to level 0 lands {err:.3g} from the flow's end (the denoiser's: {denoised:.3g})"
        return _outcome("ode_order", FAIL, f"{lands}; {detail}"), finite
    if max(errors) < 1e-9:
        return _outcome("ode_order", PASS, f"exact to round-off at every count ({where})"), finite
    if order < need or not errors[-1] < errors[0]:
        return _outcome("ode_order", FAIL, detail + f": below {need:g}"), finite
    worst = max((f[0] for f in finals), default=0.0)
    to_zero = f"; the step to 0 within {worst:.2g} of its bound (twice the denoiser's miss)" if finals else ""
    return _outcome("ode_order", PASS, detail + to_zero), finite


def spec_law(sched: SigmaScheduler) -> tuple[Outcome, bool]:
    """The ancestral sampler's output mean and variance against its recursion, at FALSE_ALARM."""
    if sched.kind != "ve":
        why = f"a stochastic {sched.kind.upper()} solver: ddpm has no closed-form law for its step"
        return _outcome("law", UNDECIDED, why), True
    runs, finite = [], True
    mean = torch.tensor(MEAN, dtype=torch.float64)
    for i, n in enumerate(LAW_COUNTS):
        levels, xs = sched.run(n, _start(sched, LAW_DRAWS, 10 + i), 20 + i)
        finite &= bool(torch.isfinite(xs[-1]).all())
        law = gaussian_gam_law(mean, C, torch.tensor(levels.distinct), gam=1.0, x_scale=sched.start_scale, mu=0.5)
        runs.append(Run(n, xs[-1], law.mean, float(law.std) ** 2))
    if not finite:
        return _outcome("law", UNDECIDED, "non-finite samples: see finite"), False
    passed, detail = hold(runs)
    return _outcome("law", PASS if passed else FAIL, detail), finite


# -- add_noise -----------------------------------------------------------------------------------


def spec_add_noise(sched: SigmaScheduler, n: int = 10) -> Outcome:
    obj = sched.obj
    fm = sched.kind == "fm"
    method = getattr(obj, "scale_noise" if fm else "add_noise", None)
    if not callable(method):
        return _outcome("add_noise", UNDECIDED, "the class has no " + ("scale_noise" if fm else "add_noise"))
    g = torch.Generator().manual_seed(5)
    lv = sched.levels(n)
    k = len(lv.timesteps)
    x0 = torch.randn(k, 4, generator=g, dtype=torch.float64)
    z = torch.randn(k, 4, generator=g, dtype=torch.float64)

    def call(x: Tensor, t: Tensor, e: Tensor) -> Tensor:
        return method(x, t, e) if fm else method(x, e, t)

    def want(i: int) -> Tensor:
        a, s = sched.coords(lv.sigmas[i])
        return a * x0[i] + s * z[i]

    def off(got: Tensor, i: int) -> float:
        scale = ULPS * float((x0[i].abs() + lv.sigmas[i] * z[i].abs()).max() + 1)
        return float((got - want(i)).abs().max()) / scale

    problems = []
    ts = torch.as_tensor(obj.timesteps)
    got = call(x0, ts, z)
    closest = max(off(got[i], i) for i in range(k))
    for i in range(k):
        if off(got[i], i) > 1:
            far = off(got[i], i)
            problems.append(f"timestep {lv.timesteps[i]:g}: x off the level {lv.sigmas[i]:.6g} by {far:.3g} tol")
            break
    begins = [b for b in (0, k // 2) if b < k]
    if callable(getattr(obj, "set_begin_index", None)):
        for b in begins:
            sched.levels(n)
            obj.set_begin_index(b)
            got = call(x0[b : b + 1].expand(3, 4), ts[b : b + 1].expand(3), z[b : b + 1].expand(3, 4))
            if off(got[0], b) > 1:
                problems.append(
                    f"after set_begin_index({b}): timestep {lv.timesteps[b]:g} gives x off its level "
                    f"{lv.sigmas[b]:.6g} by {off(got[0], b):.3g} tol"
                )
    if problems:
        return _outcome("add_noise", FAIL, "; ".join(problems))
    form = "(1 - sigma) x_0 + sigma z" if fm else ("x_0 + sigma z" if sched.kind == "ve" else "a x_0 + sigma a z")
    after = f", and after set_begin_index({begins})" if callable(getattr(obj, "set_begin_index", None)) else ""
    detail = f"{form} at all {k} listed levels of n = {n}{after} (closest at {closest:.2g} of the tolerance)"
    return _outcome("add_noise", PASS, detail)


def run_sigma_specs(factory: Factory, steps: Sequence[int], only: Sequence[str] = SPECS) -> list[Outcome]:
    """Every sigma-world spec in ``only`` held against ``factory``'s scheduler, one outcome each."""
    sched = SigmaScheduler(factory.make(), factory)
    out: list[Outcome] = []
    finite: bool | str = True  # or why the samples could not be made
    if "schedule" in only and sched.kind != "fm":  # flow matching has no beta schedule to hold
        out.append(_guard("schedule", lambda: spec_schedule(sched, steps)))
    if "timesteps" in only:
        out.append(_guard("timesteps", lambda: spec_timesteps(sched, steps)))
    if "levels" in only:
        out.append(_guard("levels", lambda: spec_levels(sched, steps)))
    if {"ode_order", "law", "finite"} & set(only):
        spec = "ode_order"
        try:
            stochastic = _stochastic(sched)
            spec = "law" if stochastic else "ode_order"
            outcome, finite = spec_law(sched) if stochastic else spec_ode_order(sched)
        except TargetError as e:
            outcome, finite = _outcome(spec, UNDECIDED, str(e)), str(e)
        except Exception as e:
            outcome = _outcome(spec, FAIL, raised(e))
            finite = "the sampling loop " + outcome.detail
        if spec in only:
            out.append(outcome)
    if "add_noise" in only:
        out.append(_guard("add_noise", lambda: spec_add_noise(sched)))
    if "finite" in only:
        if isinstance(finite, str):
            out.append(_outcome("finite", UNDECIDED, finite))
        else:
            what = "finite samples" if finite else "inf or nan in the samples"
            out.append(_outcome("finite", PASS if finite else FAIL, what))
    order = {s: i for i, s in enumerate(SPECS)}
    return sorted(out, key=lambda o: order[o.spec])
