"""A run of ``samples`` read back as coefficients, for the sampler specs of ``ddpm verify`` (6.S183).

The sampler is deterministic and linear in the network's answers, so every tensor it makes (the network's
inputs, the yields) is a combination of the start (the given x_T, or z from ``model.rand_input``) and the
answers so far, eps_theta at each level: :func:`coefs` recovers the coefficients exactly, by least squares
over the batch, on the tensors that existed when it was made. :func:`states` gives the code's own state
before each step — the network's inputs, one per level, or, where those are not the states, the start and
the yields — for the sampler specs to hold each step to ``gam_mu_step`` in coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddpm.verify.s183.records import Draw, Net, RandInput, Run, SampleRun, Yield, as_float64
from ddpm.verify.s183.wording import num

__all__ = ["COEF_TOL", "Eval", "SampleFacts", "sample_facts", "at_level", "coefs", "tol", "same_as", "stale", "states"]

COEF_TOL = 2e-5  # sampler coefficients (float64 inputs; float32 arithmetic in the file stays far below this)


@dataclass
class Eval:
    """One evaluation eps_theta(x, sigma) -> out, at its line and its place among the run's events."""

    x: Tensor
    sigma: Tensor
    out: Tensor
    cell: int | None
    line: int | None
    order: int


@dataclass
class SampleFacts:
    """A run of ``samples`` as the sampler specs read it.

    Its levels, start, distinct evaluations, yields and draws, each with its place among the run's events,
    and the basis its tensors are combinations of.
    """

    run: Run[SampleRun]
    gam: float
    sigmas: Tensor
    start: Tensor | None
    evals: list[Eval]
    yields: list[tuple[int, Tensor | None, Yield]]
    draws: list[tuple[int, Draw]]
    basis: list[tuple[str, Tensor, int]]  # (label, tensor, order at which it exists)
    per_level: list[int] = field(default_factory=list)  # the evaluation taken as level k's, k = 0, 1, ...

    @property
    def level_evals(self) -> list[Eval]:
        return [self.evals[j] for j in self.per_level]

    @property
    def n_start(self) -> int:
        """How many basis tensors are the start (x_T, z)."""
        return sum(1 for b in self.basis if b[0] in ("x_T", "z"))

    def slot(self, k: int) -> int | None:
        """The basis index of level k's answer."""
        return self.n_start + self.per_level[k] if 0 <= k < len(self.per_level) else None

    def combo(self, v: Tensor, k: int) -> str:
        """Coefficients over the basis in words, at step k: "-6.15 eps_theta(x_t, sigma_t) + ..."."""
        terms = [f"{num(float(v[j]))} {self._label(j, k)}" for j in range(len(v)) if abs(float(v[j])) > 1e-9]
        return " + ".join(terms).replace("+ -", "- ") or "0"

    def _label(self, j: int, k: int) -> str:
        if j == self.slot(k):
            return "eps_theta(x_t, sigma_t)"
        if j == self.slot(k - 1):
            return "eps_theta(x_{t+1}, sigma_{t+1})"
        name = self.basis[j][0]
        if name.startswith("eps") and name[3:].isdigit():
            return f"the prediction at sigma = {num(float(self.evals[int(name[3:])].sigma.reshape(-1)[0]))}"
        return name


def sample_facts(run: Run[SampleRun]) -> SampleFacts:
    info = run.info
    sigmas = as_float64(info.sigmas, "sigmas")
    start = None
    evals: list[Eval] = []
    yields: list[tuple[int, Tensor | None, Yield]] = []
    draws: list[tuple[int, Draw]] = []
    start_draw: tuple[int, RandInput] | None = None
    for i, e in enumerate(run.events):
        if isinstance(e, RandInput) and start_draw is None:
            start_draw = (i, e)
        elif isinstance(e, Draw) and isinstance(e.value, Tensor):
            draws.append((i, e))
        elif isinstance(e, Net) and isinstance(e.x, Tensor):
            x, s, o = as_float64(e.x, "x"), as_float64(e.sigma, "sigma"), as_float64(e.out, "out")
            if not any(v.x.shape == x.shape and torch.equal(v.x, x) and _same_level(v.sigma, s) for v in evals):
                evals.append(Eval(x, s, o, e.cell, e.line, i))
        elif isinstance(e, Yield):
            yields.append((i, as_float64(e.value, "yield") if isinstance(e.value, Tensor) else None, e))
    basis: list[tuple[str, Tensor, int]] = []
    if info.xt is not None:
        start = as_float64(info.xt, "xt")
        basis.append(("x_T", start, -1))
    if start_draw is not None:  # drawn, or (a mistake) drawn although xt was given
        basis.append(("z", as_float64(start_draw[1].value, "rand_input"), start_draw[0]))
    basis += [(f"eps{j}", e.out, e.order) for j, e in enumerate(evals)]
    basis += [(f"{d.fn} at {d.cell}:{d.line}", as_float64(d.value, "draw"), i) for i, d in draws]
    return SampleFacts(run, float(info.gam), sigmas, start, evals, yields, draws, basis, _per_level(evals, sigmas))


def at_level(s: Tensor, level: float) -> bool:
    s = s.reshape(-1)
    return bool(s.numel()) and bool(((s - level).abs() <= 1e-6 * abs(level)).all())


def _per_level(evals: list[Eval], sigmas: Tensor) -> list[int]:
    """Which evaluation is level k's.

    The first at sigma_k after level k-1's when every level has one (extra
    evaluations elsewhere are then extras); otherwise the evaluations in order (a wrong level shows there)."""
    K = len(sigmas) - 1
    chosen: list[int] = []
    start = 0
    for k in range(K):
        j = next((j for j in range(start, len(evals)) if at_level(evals[j].sigma, float(sigmas[k]))), None)
        if j is None:
            break
        chosen.append(j)
        start = j + 1
    return chosen if len(chosen) == K else list(range(min(len(evals), K)))


def _same_level(a: Tensor, b: Tensor) -> bool:
    """One level told two ways (a 0-d tensor, a float, one per example) counts as the same evaluation."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.shape == b.shape:
        return torch.equal(a, b)
    return bool((a == a[0]).all() and (b == b[0]).all() and a[0] == b[0]) if a.numel() and b.numel() else False


def coefs(y: Tensor, basis: list[tuple[str, Tensor, int]], before: int) -> tuple[Tensor, float]:
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


def tol(v: Tensor) -> float:
    return COEF_TOL * (1 + float(v.abs().max()) if v.numel() else 1)


def same_as(a: Tensor, b: Tensor) -> bool:
    """The same state, up to float32 rounding (a file may compute in float32).

    Every mistake is off by O(1).
    """
    return a.shape == b.shape and bool(((a - b).abs() <= 1e-5 * (1 + b.abs())).all())


def stale(sf: SampleFacts) -> int | None:
    """The first step whose network call sees the x of the step before.

    That x is x_{t+1}, although the code has yielded
    a new x_t since, if any."""
    evals, ys = sf.level_evals, [y for _, y, _ in sf.yields]
    for k in range(1, len(evals)):
        y = ys[k - 1] if k - 1 < len(ys) else None
        if same_as(evals[k].x, evals[k - 1].x) and y is not None and not same_as(y, evals[k].x):
            return k
    return None


def states(sf: SampleFacts) -> list[tuple[Tensor, int]] | None:
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
        and all(at_level(e.sigma, float(sf.sigmas[k])) for k, e in enumerate(evals))
    ):
        if stale(sf) is None or from_yields is None:
            return [(e.x, e.order) for e in evals]
    return from_yields
