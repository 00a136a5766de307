"""Coefficients read off a student's DDPM [Ho20 eqs. 4, 11].

Matched against the schedule's expressions.

Every coefficient of DDPM is a product of powers of beta_t, alpha_t, alpha_bar_t and 1 - alpha_bar_t.
A measured coefficient is held to the expression the paper prescribes; when it differs, the search
over all such monomials (powers -1, -1/2, 0, 1/2, 1, at any step) names what the code computed
instead, preferring the expression closest to the prescribed one: "alpha_bar_t where eq. 4 has
sqrt(alpha_bar_t)". The search only words the diagnosis; pass or fail never depends on it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.beta.schedule import Schedule

__all__ = ["RTOL", "Monomial", "values", "match_steps", "explain", "explain_all"]

# Student code runs in float32 (unit roundoff 6e-8); a coefficient read off by least squares over
# thousands of float32 entries, each a few roundings deep, is good to ~1e-6 relative. Distinct
# expressions at the verifier's schedule differ by far more than 1e-4 (adjacent steps of
# sqrt(alpha_bar_t) by ~0.5%), so 1e-4 separates "the same formula" from "another formula".
RTOL = 1e-4

QUANTITIES = ("beta", "alpha", "alpha_bar", "one_minus_alpha_bar")
NAMES = {"beta": "beta_t", "alpha": "alpha_t", "alpha_bar": "alpha_bar_t", "one_minus_alpha_bar": "(1 - alpha_bar_t)"}
POWERS = (-1.0, -0.5, 0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Monomial:
    """prod_q q_t ** powers[q] over the schedule's quantities q."""

    beta: float = 0.0
    alpha: float = 0.0
    alpha_bar: float = 0.0
    one_minus_alpha_bar: float = 0.0

    def powers(self) -> dict[str, float]:
        return {q: getattr(self, q) for q in QUANTITIES}

    def distance(self, other: Monomial) -> float:
        """How many half-powers apart two monomials are."""
        return sum(abs(a - b) * 2 for a, b in zip(self.powers().values(), other.powers().values()))

    def __str__(self) -> str:
        def factor(q: str, p: float) -> str:
            name = NAMES[q]
            return {0.5: f"sqrt({name.strip('()')})", 1.0: name}[abs(p)]

        num = [factor(q, p) for q, p in self.powers().items() if p > 0]
        den = [factor(q, p) for q, p in self.powers().items() if p < 0]
        top = " ".join(num) or "1"
        if not den:
            return top
        return f"{top} / {den[0] if len(den) == 1 else '(' + ' '.join(den) + ')'}"


def values(schedule: Schedule, m: Monomial) -> Tensor:
    """The monomial at every step t = 0..T (float64, indexed by t; entry 0 is NaN)."""
    out = torch.ones(schedule.T + 1, dtype=torch.float64)
    for q, p in m.powers().items():
        if p:
            out = out * getattr(schedule, q) ** p
    out[0] = float("nan")
    return out


def match_steps(value: float, schedule: Schedule, m: Monomial, rtol: float = RTOL) -> list[int]:
    """The steps t in 1..T at which the monomial equals ``value`` within ``rtol``."""
    v = values(schedule, m)
    hit = (v - value).abs() <= rtol * v.abs()
    return [int(t) for t in hit.nonzero().flatten()]


def _all_monomials() -> list[Monomial]:
    return [Monomial(*p) for p in itertools.product(POWERS, repeat=len(QUANTITIES))]


def explain(
    value: float,
    schedule: Schedule,
    expected: Monomial,
    t: int | None = None,
    rtol: float = RTOL,
    at_t_only: bool = False,
) -> tuple[Monomial, int] | None:
    """The monomial and step closest to ``expected`` (then to step ``t``) that equal ``value``, if any.

    With ``at_t_only`` only step ``t`` is searched (for an estimate whose step is known).
    """
    found = [
        (m.distance(expected), abs(s - t) if t else 0, m, s)
        for m in _all_monomials()
        for s in match_steps(value, schedule, m, rtol)
        if not (at_t_only and s != t)
    ]
    if not found:
        return None
    _, _, m, s = min(found, key=lambda f: (f[0], f[1]))
    return m, s


def explain_all(observed: list[float], schedule: Schedule, expected: Monomial) -> tuple[Monomial, list[int]] | None:
    """The monomial closest to ``expected`` that equals every observed value at some step.

    And those steps.
    """
    obs = torch.tensor(observed, dtype=torch.float64)[:, None]
    for m in sorted(_all_monomials(), key=lambda m: m.distance(expected)):
        v = values(schedule, m)[None, :]
        hit = (v - obs).abs() <= RTOL * v.abs()
        if hit.any(1).all():
            return m, hit.double().argmax(1).tolist()
    return None
