"""The symbolic layer's machinery: an equality check that cannot pass by accident, Gaussian integrals
by completing the square, and a printable derivation (see docs/design.md, "How a spec binds theory to code").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import mpmath
import sympy as sp

__all__ = [
    "beta",
    "alpha",
    "alpha_bar_prev",
    "alpha_bar",
    "x0",
    "xt",
    "x_prev",
    "equal",
    "zero",
    "gaussian_integral",
    "normal_logpdf",
    "Derivation",
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
    """True if ``diff`` vanishes, relative to 1 + |its terms|, at POINTS seeded points at DPS digits."""
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
    """Assert ``expr`` is identically 0: by algebra (expand, cancel, logs, simplify), else numerically.

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
    return math.subs({alpha_bar: sp.Symbol("alpha_bar_t", positive=True)}).subs(
        {alpha: sp.Symbol("alpha_t", positive=True)}
    )


# -- rendering for a class: unicode text, LaTeX and Markdown ----------------------------------------

GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
    "sigma",
    "tau",
    "phi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Phi",
    "Psi",
    "Omega",
    "Sigma",
}
ACCENTS = {"bar", "tilde", "hat"}  # alpha_bar_t -> \bar{\alpha}_{t}
# The unicode the derivations' titles and names use, as LaTeX math (the combining tilde first: μ̃ is μ + U+0303).
UNICODE_MATH = {
    "μ̃": r"\tilde{\mu}",
    "θ": r"\theta",
    "σ": r"\sigma",
    "μ": r"\mu",
    "ε": r"\epsilon",
    "ᾱ": r"\bar{\alpha}",
    "α": r"\alpha",
    "β": r"\beta",
    "∫": r"\int",
    "‖": r"\|",
    "−": "-",
    "²": "^{2}",
    "⁴": "^{4}",
    "¹": "^{1}",
    "⁻": "^{-}",
    "ᵀ": r"^{\top}",
    "₁": "_{1}",
    "ₜ": "_{t}",
    "≤": r"\le",
    "≥": r"\ge",
    "→": r"\to",
    "∇": r"\nabla",
    "∂": r"\partial",
    "·": r"\cdot",
    "×": r"\times",
    "√": r"\surd",
}
_UNICODE_RE = re.compile("|".join(sorted(map(re.escape, UNICODE_MATH), key=len, reverse=True)))


def _unicode_to_latex(text: str) -> str:
    r"""Unicode math characters as LaTeX math commands; any other non-ASCII character as \text{[U+XXXX]}."""
    text = _UNICODE_RE.sub(lambda m: " " + UNICODE_MATH[m.group()] + " ", text).replace("⁻ ^{1}", "^{-1}")
    return "".join(c if ord(c) < 128 else rf"\text{{[U+{ord(c):04X}]}}" for c in text)


def latex_symbol(name: str) -> str:
    r"""The LaTeX of a symbol's name: alpha_bar_t-1 -> \bar{\alpha}_{t-1}, beta_tilde -> \tilde{\beta}.

    Identifier-like names are read as base, accents and a subscript; names that are written-out
    formulas (spaces, brackets: "log q(x_{t-1} | x_t, x_0)") keep their text, with log, |, E and
    unicode turned into LaTeX.
    """
    power = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)(\^\{?([A-Za-z0-9]+)\}?|'+)", name)  # sigma_t^2, sigma'
    if power:
        sup = power.group(3) or r"\prime" * len(power.group(2))
        return f"{{{latex_symbol(power.group(1))}}}^{{{sup}}}"
    if re.fullmatch(r"[A-Za-z]+(_[A-Za-z0-9θ+\-]+)*", name):
        base, *parts = name.split("_")
        out = "\\" + base if base in GREEK else base if len(base) == 1 else rf"\mathrm{{{base}}}"
        while parts and parts[0] in ACCENTS:
            out = rf"\{parts.pop(0)}{{{out}}}"
        sub = ",".join(_unicode_to_latex(p).strip() if p not in GREEK else "\\" + p for p in parts)
        return f"{out}_{{{sub}}}" if sub else out
    text = re.sub(r"\b(log|max|min|det)\b", r"\\\1", name)
    text = re.sub(r"\bE\[", r"\\mathbb{E}[", text).replace(" | ", r" \mid ")
    text = re.sub(r"_([A-Za-z0-9]+)-([0-9]+)", r"_{\1-\2}", text)  # x_t-1 -> x_{t-1}
    return re.sub(r" +", " ", _unicode_to_latex(text)).strip()


def latex(math) -> str:
    """LaTeX of a sympy expression or equation of a step (names as :func:`latex_symbol` writes them)."""
    expr = _readable(math)
    names = {s: latex_symbol(s.name) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    return sp.latex(expr, symbol_names=names)


_LATEX_TEXT = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "^": r"\^{}",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "§": r"\S{}",
}


def latex_text(text: str) -> str:
    """Plain text safe in LaTeX's text mode: special characters escaped, unicode math as inline math."""
    out = []
    for part in re.split(f"({_UNICODE_RE.pattern})", text):
        if part in UNICODE_MATH:
            out.append(f"${UNICODE_MATH[part]}$")
        else:
            out.append(
                "".join(_LATEX_TEXT.get(c, c) if ord(c) < 128 or c == "§" else rf"[U+{ord(c):04X}]" for c in part)
            )
    return "".join(out)


def markdown_text(text: str) -> str:
    """Plain text safe in Markdown (and Jupyter's, where $ starts math): its special characters escaped."""
    return re.sub(r"([\\`*_<>#$])", r"\\\1", text)


@dataclass
class Step:
    title: str
    math: tuple


@dataclass
class Derivation:
    """A claim and its titled steps, each holding sympy expressions or equations, printable for a class.

    ``render()`` is unicode text for a terminal, ``latex()`` a LaTeX document or fragment for a handout,
    ``markdown()`` Markdown with $$ math for a notebook cell; in Jupyter a derivation displays as math.
    """

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

    def latex(self, standalone: bool = True) -> str:
        """The claim as a LaTeX section, its steps an enumerated list of displayed equations (ASCII only).

        ``standalone`` wraps it in a complete article (amsmath, amssymb) that pdflatex compiles;
        otherwise the section alone, to \\input into a handout.
        """
        out = [rf"\section*{{{latex_text(self.claim)}}}", r"\begin{enumerate}"]
        for s in self.steps:
            out.append(rf"  \item {latex_text(s.title)}")
            for m in s.math:
                if isinstance(m, str):
                    out.append(rf"  \begin{{quote}}\ttfamily {latex_text(m)}\end{{quote}}")
                else:
                    out.append(rf"  \[ {latex(m)} \]")
        out.append(r"\end{enumerate}")
        body = "\n".join(out)
        return latex_document([body]) if standalone else body

    def markdown(self) -> str:
        """The claim as a heading, its steps a numbered list with $$ display math (a notebook cell).

        The math is indented four spaces, inside its step for CommonMark (Jupyter) and Python-Markdown
        (the documentation site) alike; the latter needs four.
        """
        out = [f"### {markdown_text(self.claim)}", ""]
        for i, s in enumerate(self.steps, 1):
            out.append(f"{i}. {markdown_text(s.title)}")
            for m in s.math:
                out += ["", f"    `{m}`" if isinstance(m, str) else f"    $$ {latex(m)} $$"]
            out.append("")
        return "\n".join(out)

    def _repr_latex_(self) -> str:
        """Jupyter's LaTeX display: the claim and its steps as one math array (text in \\text{})."""
        rows = [rf"\textbf{{{_math_text(self.claim)}}}"]
        for i, s in enumerate(self.steps, 1):
            rows.append(rf"\text{{{i}. {_math_text(s.title)}}}")
            rows += [
                rf"\quad \texttt{{{_math_text(m)}}}" if isinstance(m, str) else rf"\quad \displaystyle {latex(m)}"
                for m in s.math
            ]
        return "$$\\begin{array}{l}\n" + " \\\\\n".join(rows) + "\n\\end{array}$$"

    def _repr_markdown_(self) -> str:
        """Jupyter's Markdown display (preferred to LaTeX where both are offered): :meth:`markdown`."""
        return self.markdown()

    def __str__(self) -> str:
        return self.render()


def _math_text(text: str) -> str:
    """Text inside \\text{} of MathJax or KaTeX: braces, backslashes and dollars replaced."""
    return text.replace("\\", "/").replace("{", "(").replace("}", ")").replace("$", "S")


def latex_document(sections: list[str]) -> str:
    """A complete LaTeX article holding ``sections`` (from ``Derivation.latex(standalone=False)``)."""
    return "\n".join(
        [
            r"\documentclass[11pt]{article}",
            r"\usepackage{amsmath,amssymb}",
            r"\usepackage[margin=2cm]{geometry}",
            r"\allowdisplaybreaks",
            r"\begin{document}",
            "",
            "\n\n".join(sections),
            "",
            r"\end{document}",
            "",
        ]
    )
