"""The symbolic layer's machinery: an equality check that cannot pass by accident, Gaussian integrals
by completing the square, and a printable derivation (see docs/design.md, "How a spec binds theory to code").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp

__all__ = [
    "beta", "alpha", "alpha_bar_prev", "alpha_bar", "x0", "xt", "x_prev",
    "equal", "zero", "gaussian_integral", "normal_logpdf", "Derivation",
]

# The paper's symbols at one step t: beta_t and alpha_bar_{t-1} are free, the rest follow [Ho20 §2].
beta = sp.Symbol("beta_t", positive=True)
alpha_bar_prev = sp.Symbol("alpha_bar_t-1", positive=True)
alpha = 1 - beta
alpha_bar = alpha_bar_prev * alpha
x0, xt, x_prev = sp.symbols("x_0 x_t x_t-1", real=True)

DPS = 50  # digits for the numeric fallback; a true identity agrees to ~DPS digits, a false one to few
POINTS = 6


def _draw(symbol: sp.Symbol, rng: random.Random) -> mpmath.mpf:
    """A random value respecting the symbol's assumptions; (0.05, 0.95) keeps every beta, alpha_bar valid."""
    if symbol.is_integer:
        return mpmath.mpf(rng.randint(1, 6))
    if symbol.is_positive or symbol.is_nonnegative:
        return mpmath.mpf(rng.uniform(0.05, 0.95))
    return mpmath.mpf(rng.uniform(-1.5, 1.5))


def _numerically_zero(diff: sp.Expr, where: dict | None, seed: int) -> bool:
    """True when ``diff`` vanishes, relative to 1 + |its terms|, at POINTS seeded random points at DPS digits."""
    if diff.atoms(sp.core.function.AppliedUndef, sp.MatrixSymbol, sp.Derivative):
        return False  # nothing to evaluate: an undefined function is never "numerically zero"
    terms = sp.Add.make_args(diff)
    symbols = sorted(diff.free_symbols, key=str)
    f = sp.lambdify(symbols, [diff, sum(sp.Abs(t) for t in terms)], modules="mpmath")
    rng = random.Random(seed)
    with mpmath.workdps(DPS):
        for _ in range(POINTS):
            point = [mpmath.mpf(rng.uniform(*where[s])) if where and s in where else _draw(s, rng) for s in symbols]
            d, scale = f(*point)
            if not abs(d) <= 10 ** (-DPS // 2) * (1 + abs(scale)):  # also False for nan
                return False
    return True


_NORMAL_FORMS = (sp.expand, lambda e: sp.cancel(sp.together(e)), lambda e: sp.cancel(sp.expand_log(e, force=True)))


def zero(expr: sp.Expr, why: str, *, where: dict | None = None, seed: int = 0) -> None:
    """Assert ``expr`` is identically 0: by algebra (expand, cancel, logs expanded, simplify), else numerically.

    The numeric fallback evaluates at seeded random points (``where`` maps a symbol to a range) in
    DPS-digit arithmetic; an expression it cannot evaluate counts as a failure, never a success.
    """
    expr = sp.sympify(expr)
    if any(normal(expr) == 0 for normal in _NORMAL_FORMS):
        return
    if sp.count_ops(expr) <= 200 and sp.simplify(expr) == 0:  # blind simplify only on small expressions
        return
    if not _numerically_zero(expr, where, seed):
        raise AssertionError(f"{why}: not identically zero:\n{sp.pretty(expr, use_unicode=True)}")


def equal(lhs: sp.Expr, rhs: sp.Expr, why: str, *, where: dict | None = None, seed: int = 0) -> sp.Eq:
    """Assert ``lhs == rhs`` identically (see :func:`zero`) and return the equation, for printing."""
    zero(sp.sympify(lhs) - sp.sympify(rhs), why, where=where, seed=seed)
    return _eq(sp.sympify(lhs), sp.sympify(rhs))


def _eq(lhs: sp.Expr, rhs: sp.Expr) -> sp.Eq:
    """The equation lhs = rhs, unevaluated even where both sides are the same expression."""
    return sp.Eq(sp.UnevaluatedExpr(lhs) if lhs == rhs else lhs, rhs, evaluate=False)


def gaussian_integral(log_integrand: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """log Z and mean of exp(log_integrand) over x in R, for log_integrand = -A x^2 + B x + C, Re A > 0.

    Completing the square: -A x^2 + B x + C = -A (x - B / 2A)^2 + B^2 / 4A + C, so
    Z = sqrt(pi / A) exp(B^2 / 4A + C) and int x e^(...) dx / Z = B / 2A (B may be complex).
    """
    poly = sp.Poly(sp.expand(log_integrand), x)
    if poly.degree() != 2:
        raise ValueError(f"not a Gaussian in {x}: log integrand of degree {poly.degree()}")
    A, B, C = -poly.coeff_monomial(x**2), poly.coeff_monomial(x), poly.coeff_monomial(1)
    return sp.log(sp.pi / A) / 2 + B**2 / (4 * A) + C, B / (2 * A)


def normal_logpdf(x: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """log N(x; mean, var) in one dimension."""
    return -sp.log(2 * sp.pi * var) / 2 - (x - mean) ** 2 / (2 * var)


def _readable(math):
    """Name alpha_bar_t and alpha_t again where the derivation expanded them."""
    if isinstance(math, sp.Eq):
        return _eq(_readable(math.lhs), _readable(math.rhs))
    return math.subs({alpha_bar: sp.Symbol("alpha_bar_t", positive=True)}).subs({alpha: sp.Symbol("alpha_t", positive=True)})


@dataclass
class Step:
    title: str
    math: tuple


@dataclass
class Derivation:
    """A claim and its titled steps, each holding sympy expressions or equations, printable for a class."""

    claim: str
    steps: list[Step] = field(default_factory=list)

    def step(self, title: str, *math) -> None:
        self.steps.append(Step(title, math))

    def render(self) -> str:
        """The claim and its steps in unicode math; alpha_bar_{t-1} (1 - beta_t) is shown as alpha_bar_t."""
        out = [self.claim, "=" * min(len(self.claim), 100)]
        for i, s in enumerate(self.steps, 1):
            out.append(f"\n{i}. {s.title}")
            for m in s.math:
                text = m if isinstance(m, str) else sp.pretty(_readable(m), use_unicode=True, wrap_line=False)
                out.extend("   " + line for line in text.splitlines())
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()
