"""smalldiffusion-style ``samples(model, sigmas, gam, mu, ...)`` held to its law [PY23 App. A].

smalldiffusion's ``samples`` (the library of the 6.S183 notebook) is a generator over the decreasing
``sigmas`` that yields x after each step of the gamma / mu family of ``ddpm.sigma.sampler``:
eps_av = gam eps + (1 - gam) eps_prev, x <- x - (sigma - sigma_p) eps_av + eta z with
sigma_p = (sigma' / sigma^mu)^(1 / (1 - mu)) and eta = sqrt(sigma'^2 - sigma_p^2), starting at
x = sigma_0 z, z = ``model.rand_input(batchsize)``. Driven by the exact eps* of N(m, c I) (through
:class:`GaussianEpsModel`, which offers what both the current and the older releases call), its output
law is ``gaussian_gam_law(m, c, sigmas, gam, mu=mu)``, computed by ddpm, never by the target:

- deterministic settings (mu = 0) from a fixed start xt: the output must be m + gain (xt - m), gain
  from ``gaussian_gam_recursion``, to float32 round-off (:func:`exact_tolerance`);
- otherwise (mu > 0, or a function that takes no xt) the mean and the variance per coordinate of
  ``N_MC`` draws started at xt = None are held with ``ddpm.stats.check_mc`` at ``FALSE_ALARM`` for the
  whole run (Bonferroni over its Monte Carlo checks).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ddpm.conform.targets import parameters, raised
from ddpm.oracles import SigmaOptimalEps
from ddpm.sigma.sampler import ACCEL, DDIM, DDPM, gaussian_gam_law, gaussian_gam_recursion
from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas
from ddpm.stats import FALSE_ALARM, MonteCarloCheck, check_mc, generator_for
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome

__all__ = [
    "is_gam_mu_sampler",
    "GaussianEpsModel",
    "GAM_MU_SPECS",
    "GAM_MU_CLAIMS",
    "GRID",
    "STEPS",
    "settings_of",
    "check_steps",
    "exact_tolerance",
    "LawResult",
    "law_results",
    "run_gam_mu_specs",
]

GAM_MU_SPECS = ("gam_mu_law", "finite")
GAM_MU_CLAIMS = {
    "gam_mu_law": "driven by the exact eps* of N(m, c I), the output's law is the gamma / mu sampler's closed form",
    "finite": "finite outputs from finite inputs",
}
CITES = {"gam_mu_law": "[PY23 App. A; 6.S183 Q2, Q3]", "finite": "[PY23 App. A]"}

M = (0.5, -1.0)  # the data's mean: m != 0, so that a sampler biased towards 0 shows
C = 0.25  # the data's variance per coordinate
LEVELS = log_linear_sigmas()  # the notebook's schedule: 200 levels from 0.005 to 10
# (gam, mu): DDIM, DDPM, ACCEL, gam = 1.5, and mu = 1/4, where smalldiffusion's two mu conventions differ
GRID: tuple[tuple[float, float], ...] = (
    (DDIM["gam"], DDIM["mu"]),
    (DDPM["gam"], DDPM["mu"]),
    (ACCEL["gam"], ACCEL["mu"]),
    (1.5, 0.0),
    (1.0, 0.25),
    (1.5, 0.25),
)
STEPS = (10, 25)
N_EXACT = 64  # starts of the deterministic runs
N_MC = 20_000  # draws of a Monte Carlo run: the rate is kept at this n (tests/test_conform_gam_mu.py), and power
SETTINGS_KEYS = ("gam", "mu")


def is_gam_mu_sampler(obj: Any) -> bool:
    """Whether ``obj`` is a function whose first parameters are (model, sigmas) and that takes gam and mu."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    keyword = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return tuple(params)[:2] == ("model", "sigmas") and {"gam", "mu"} <= keyword


class GaussianEpsModel:
    """eps*(x, sigma) of N(m, c I) behind smalldiffusion's model interface [6.S183 Q1b].

    eps*(x, sigma) = sigma (x - m) / (c + sigma^2).

    ``rand_input(batchsize)`` draws float64 N(0, I) from the ``generator`` given (a ``device`` argument,
    as older releases pass, is accepted and the draw stays on the CPU); ``predict_eps_cfg``,
    ``predict_eps`` and ``__call__`` answer eps* for ``sigma`` a float, a 0-d tensor, or one level per
    sample shaped (B,) or (B, 1, ..); ``eval``, ``train``, ``to`` and ``parameters`` are those of a
    model without parameters. ``calls`` counts the predictions asked for.
    """

    def __init__(self, mean: Sequence[float] | Tensor, c: float, generator: torch.Generator):
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        self.c = float(c)
        self.generator = generator
        self.eps_star = SigmaOptimalEps.gaussian(self.mean, self.c)
        self.calls = 0

    def rand_input(self, batchsize: int, device: Any = None) -> Tensor:
        """(batchsize, D) standard normal draws, float64, from the model's generator."""
        return torch.randn(int(batchsize), self.mean.numel(), generator=self.generator, dtype=torch.float64)

    def predict_eps(self, x: Tensor, sigma: Any, cond: Any = None) -> Tensor:
        """eps*(x, sigma) in x's dtype and device; ``cond`` is ignored (the data have no classes)."""
        x64 = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
        s = torch.as_tensor(sigma, dtype=None if isinstance(sigma, Tensor) else torch.float64)
        s = s.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        if s.numel() == 1:
            s = s.expand(x64.shape[0])
        elif s.numel() != x64.shape[0]:
            raise ValueError(
                f"sigma of shape {tuple(torch.as_tensor(sigma).shape)} for x of shape {tuple(x64.shape)}: "
                "expected one level, or one per sample shaped (B,) or (B, 1, ...)"
            )
        self.calls += 1
        return self.eps_star(x64, s).to(device=x.device, dtype=x.dtype)

    def predict_eps_cfg(self, x: Tensor, sigma: Any, cond: Any = None, cfg_scale: float = 0.0) -> Tensor:
        """eps*(x, sigma): without classes, classifier-free guidance changes nothing."""
        return self.predict_eps(x, sigma, cond)

    def __call__(self, x: Tensor, sigma: Any, cond: Any = None) -> Tensor:
        return self.predict_eps(x, sigma, cond)

    def eval(self) -> GaussianEpsModel:
        return self

    def train(self, mode: bool = True) -> GaussianEpsModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> GaussianEpsModel:
        return self

    def parameters(self) -> Iterator[Tensor]:
        return iter(())


class SettingsError(ValueError):
    """A (gam, mu) given with --config that the family does not have: one line."""


def settings_of(config: Mapping[str, Any]) -> tuple[tuple[float, float], ...]:
    """The (gam, mu) to check: ``GRID`` when ``config`` is empty, else the one it names.

    ``gam`` defaults to 1 and ``mu`` to 0 (smalldiffusion's defaults). Raises :class:`SettingsError`
    on a key other than gam and mu, a gam that is not a finite number, or a mu outside [0, 1).
    """
    if not config:
        return GRID
    unknown = [k for k in config if k not in SETTINGS_KEYS]
    if unknown:
        raise SettingsError(
            f"a sampler samples(model, sigmas, gam, mu) takes --config gam=... mu=..., not {unknown[0]!r}"
        )
    values = {"gam": 1.0, "mu": 0.0}
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingsError(f"--config {key}={value!r}: expected a finite number")
        values[key] = float(value)
    if not 0 <= values["mu"] < 1:
        raise SettingsError(f"--config mu={values['mu']!r}: expected mu in [0, 1) (0 deterministic, 0.5 DDPM)")
    return ((values["gam"], values["mu"]),)


def check_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """``steps`` as a tuple, each a step count the schedule has levels for; else :class:`SettingsError`."""
    bad = [k for k in steps if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= LEVELS.numel()]
    if bad or not steps:
        got = repr(bad[0]) if bad else "none"
        raise SettingsError(f"--steps: expected step counts in 1..{LEVELS.numel()} (the schedule's levels), got {got}")
    return tuple(steps)


def exact_tolerance(steps: int, *values: Tensor) -> float:
    """The round-off a deterministic run may show: 16 steps u max |values|, u = 2^-24 [IEEE 754].

    ``values`` are xt, m and the expected output. Each step is a few float32 operations (the level sigma
    rounded to x's dtype, sigma - sigma_p, its product with eps_av, the subtraction) on numbers bounded by
    max(|xt|, |m|) on the grid (the deterministic sampler contracts x - m towards 0 and eps* is bounded by
    |x - m| for c = 1/4; the expected output counts too, for a --config gam that does not), each with a relative error
    of at most u = 2^-24, float32's unit round-off; 16 u per step bounds them with room to spare, so a
    sampler computing in float32 passes (measured: 0.1 % of this tolerance; float64 3e-12 of it,
    tests/test_conform_gam_mu.py), while the planted wrong coefficients move the output by more than 1e-2.
    """
    scale = max(float(v.abs().max()) for v in values)
    return 16 * steps * 2.0**-24 * scale


@dataclass(frozen=True)
class LawResult:
    """One (gam, mu, steps) run: its verdict, the numbers, and its Monte Carlo check (None if exact)."""

    gam: float
    mu: float
    steps: int
    passed: bool
    detail: str
    finite: bool
    check: MonteCarloCheck | None = None

    @property
    def where(self) -> str:
        return f"gam = {self.gam:g}, mu = {self.mu:g}, {self.steps} steps"


class SamplerError(Exception):
    """The target raised, or returned no tensor of the expected shape: one line."""


def _call(fn: Callable[..., Any], model: GaussianEpsModel, sigmas: Tensor, n: int, **kwargs: Any) -> Tensor:
    """The sample of one call: the last yield of a generator, or the tensor returned."""
    try:
        out = fn(model, sigmas, **kwargs)
        if isinstance(out, Iterator):  # a generator yields x after each step: the sample is the last
            steps = list(out)
            if not steps:
                raise SamplerError("returned a generator that yielded nothing, expected x after each step")
            out = steps[-1]
    except SamplerError:
        raise
    except Exception as e:
        raise SamplerError(raised(e)) from None
    if not isinstance(out, Tensor):
        raise SamplerError(f"returned {type(out).__name__}, expected a tensor or a generator of tensors")
    if tuple(out.shape) != (n, model.mean.numel()):
        raise SamplerError(f"returned shape {tuple(out.shape)}, expected ({n}, {model.mean.numel()})")
    return out.detach().to(device="cpu", dtype=torch.float64)


def _exact(fn: Callable[..., Any], kw: dict[str, Any], gam: float, steps: int, sigmas: Tensor, seed: int) -> LawResult:
    g = generator_for(f"gam_mu exact {gam} {steps}", seed)
    model = GaussianEpsModel(M, C, g)
    xt = float(sigmas[0]) * torch.randn(N_EXACT, len(M), generator=g, dtype=torch.float64)
    out = _call(fn, model, sigmas, N_EXACT, xt=xt.clone(), **kw)
    gain, _ = gaussian_gam_recursion(C, sigmas, gam, mu=0.0)
    m = model.mean
    expected = m + gain * (xt - m)
    finite = bool(torch.isfinite(out).all())
    err = (out - expected).abs().nan_to_num(math.inf)
    tol = exact_tolerance(steps, xt, m, expected)
    i, j = divmod(int(err.argmax()), err.shape[1])
    worst = float(err[i, j])
    numbers = (
        f"max |x - (m + gain (xt - m))| = {worst:.3g} at sample {i}, coordinate {j} (observed {float(out[i, j]):.6g}, "
        f"expected {float(expected[i, j]):.6g}, gain {gain:.6g}), tolerance {tol:.3g}"
    )
    passed = finite and worst <= tol
    return LawResult(gam, 0.0, steps, passed, numbers, finite)


def _monte_carlo(
    fn: Callable[..., Any],
    kw: dict[str, Any],
    gam: float,
    mu: float,
    steps: int,
    sigmas: Tensor,
    seed: int,
    rate: float,
) -> LawResult:
    g = generator_for(f"gam_mu law {gam} {mu} {steps}", seed)
    model = GaussianEpsModel(M, C, g)
    out = _call(fn, model, sigmas, N_MC, **kw)
    finite = bool(torch.isfinite(out).all())
    law = gaussian_gam_law(M, C, sigmas, gam, mu=mu)
    if not finite:
        return LawResult(gam, mu, steps, False, "non-finite outputs: see finite", False)
    sq = (out - law.mean) ** 2  # its mean is the variance; its spread the fourth moment
    est = torch.cat([out.mean(0), sq.mean(0)])
    se = torch.cat([out.std(0), sq.std(0)]) / math.sqrt(N_MC)
    exp = torch.cat([law.mean, (law.std**2).expand(len(M))])
    if not bool((se > 0).all()):
        return LawResult(gam, mu, steps, False, "every sample is the same: the output has no spread", finite)
    name = f"gam = {gam:g}, mu = {mu:g}, {steps} steps"
    check = check_mc(name, est, se, exp, N_MC, false_alarm=rate, raise_on_fail=False)
    z = (est - exp).abs() / se
    w = int(z.argmax())
    what = ("mean" if w < len(M) else "variance") + f" of coordinate {w % len(M)}"
    numbers = (
        f"{what}: observed {float(est[w]):.5g}, expected {float(exp[w]):.5g} (stderr {float(se[w]):.2g}, "
        f"z = {check.z:.1f}, k = {check.k:.2f}, n = {N_MC})"
    )
    return LawResult(gam, mu, steps, check.passed, numbers, finite, check)


def law_results(
    fn: Callable[..., Any],
    steps: Sequence[int] = STEPS,
    settings: Sequence[tuple[float, float]] = GRID,
    seed: int = 0,
) -> list[LawResult]:
    """Every (gam, mu) of ``settings`` at every count of ``steps``, held to ``gaussian_gam_law``.

    Raises :class:`SamplerError` (one line) when ``fn`` raises or returns no (n, 2) tensor. torch runs on
    one thread meanwhile, restored after, as ``ddpm verify``'s deciders do: on (20,000, 2) tensors a thread
    pool on busy cores costs many times the CPU (measured on two shared cores: 0.6 s on one thread, 5 to 19 s
    on two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _law_results(fn, steps, settings, seed)
    finally:
        torch.set_num_threads(threads)


def _law_results(
    fn: Callable[..., Any], steps: Sequence[int], settings: Sequence[tuple[float, float]], seed: int
) -> list[LawResult]:
    names, any_kw = parameters(fn)
    takes = {k: any_kw or k in names for k in ("batchsize", "xt")}
    runs = [(gam, mu, k) for k in steps for gam, mu in settings]
    exact = [(gam, mu, k) for gam, mu, k in runs if mu == 0 and takes["xt"]]
    n_mc = len(runs) - len(exact)
    if n_mc and not takes["batchsize"]:
        raise SamplerError("takes no batchsize: the number of samples for the Monte Carlo runs cannot be set")
    rate = FALSE_ALARM / max(n_mc, 1)  # Bonferroni: the whole run keeps FALSE_ALARM
    out = []
    for gam, mu, k in runs:
        sigmas = sample_sigmas(LEVELS, k)
        kw: dict[str, Any] = {"gam": gam, "mu": mu}
        if (gam, mu, k) in exact:
            out.append(_exact(fn, kw, gam, k, sigmas, seed))
        else:
            out.append(_monte_carlo(fn, {**kw, "batchsize": N_MC}, gam, mu, k, sigmas, seed, rate))
    return out


def _outcome(spec: str, status: str, detail: str) -> Outcome:
    return Outcome(spec, status, detail, CITES[spec])


def run_gam_mu_specs(
    fn: Callable[..., Any],
    steps: Sequence[int] = STEPS,
    settings: Sequence[tuple[float, float]] = GRID,
    seed: int = 0,
) -> list[Outcome]:
    """The specs gam_mu_law and finite on a sampler ``samples(model, sigmas, gam, mu, ...)``."""
    try:
        results = law_results(fn, steps, settings, seed)
    except SamplerError as e:
        status = FAIL if str(e).startswith(("raised", "returned")) else UNDECIDED
        return [_outcome(s, status, str(e)) for s in GAM_MU_SPECS]
    finite_ok = all(r.finite for r in results)
    runs = ", ".join(sorted({f"({r.gam:g}, {r.mu:g})" for r in results}))
    at = ", ".join(map(str, steps))
    what = "finite" if finite_ok else "inf or nan in"
    finite = _outcome("finite", PASS if finite_ok else FAIL, f"{what} outputs for (gam, mu) in {runs} at {at} steps")
    failed = [r for r in results if not r.passed]
    if failed:
        detail = "; ".join(f"{r.where}: {r.detail}" for r in failed[:3])
        detail += f"; {len(failed) - 3} more failing runs not shown" if len(failed) > 3 else ""
        return [_outcome("gam_mu_law", FAIL, detail), finite]
    exact = [r for r in results if r.check is None]
    mc = [r for r in results if r.check is not None]
    parts = []
    if exact:
        parts.append(f"{len(exact)} deterministic runs equal m + gain (xt - m) within round-off")
    if mc:
        worst = max(mc, key=lambda r: r.check.z if r.check else 0.0)
        assert worst.check is not None
        parts.append(
            f"{len(mc)} Monte Carlo runs hold the law's mean and variance (worst z = {worst.check.z:.2f} "
            f"at {worst.where}, k = {worst.check.k:.2f}, n = {N_MC})"
        )
    detail = f"(gam, mu) in {runs} at {at} steps of N(m = {M}, c = {C}): " + "; ".join(parts)
    return [_outcome("gam_mu_law", PASS, detail), finite]
