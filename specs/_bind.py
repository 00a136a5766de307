"""The binding layer's machinery: derived closed forms evaluated in high precision, hypothesis inputs,
and the one float64 comparison every binding makes (see docs/design.md, "How a spec binds theory to code").
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import sympy as sp
import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st

from ddpm.beta.schedule import Schedule

__all__ = [
    "examples",
    "SHRINK",
    "reference",
    "alpha_bar",
    "alpha_bars",
    "linear_betas",
    "assert_close",
    "log_log_slope",
    "schedules",
    "vectors",
    "RTOL",
    "FLOAT32_RTOL",
]

# Every binding compares ddpm's float64 result with the derived closed form evaluated at 30 digits
# from the same float64 inputs, so the whole difference is ddpm's own rounding: a few dozen
# operations, each off by at most one ulp (1.1e-16), products of up to T = 12 factors and at most
# ~1e4-fold cancellation in 1 - alpha_bar (beta >= 1e-4) give errors well under 1e-10 relative to
# the magnitude of the terms; a wrong formula (a missing square root, a swapped index) is off by
# far more than 1e-10 at the inputs drawn.
RTOL = 1e-10

# The float32 bindings: ddpm casts its float64 coefficients to float32 once (``at``), then does a few
# float32 operations; each rounds to within eps_32 / 2 = 6e-8 of its exact result, so a few dozen of
# them stay below 64 eps_32 = 7.6e-6 of the terms' magnitude, while a wrong formula is off by > 1e-3.
FLOAT32_RTOL = 64 * float(np.finfo(np.float32).eps)


SHRINK = True  # planted-failure tests turn shrinking off: they need the failure, not its smallest example


def examples(n: int) -> settings:
    """The project's hypothesis profile with ``n`` examples (and no shrinking when SHRINK is off)."""
    phases = tuple(Phase) if SHRINK else tuple(p for p in Phase if p is not Phase.shrink)
    return settings(max_examples=n, phases=phases)


@functools.lru_cache(maxsize=256)
def _mpmath_function(expr: sp.Expr, symbols: tuple):
    return sp.lambdify(symbols, expr, modules="mpmath")


def reference(expr: sp.Expr, symbols: list[sp.Symbol], *arrays) -> np.ndarray:
    """``expr`` evaluated at 30 digits elementwise over the broadcast ``arrays`` (one per symbol).

    Entries may be floats or mpmath numbers (e.g. alpha_bar computed at 30 digits from float64 betas).
    """
    f = _mpmath_function(expr, tuple(symbols))
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=object) for a in arrays))
    with mpmath.workdps(30):
        out = [complex(f(*map(mpmath.mpf, point))) for point in zip(*(a.ravel() for a in arrays))]
    values = np.array(out)
    if np.abs(values.imag).max(initial=0) > 0:
        raise ValueError(f"{expr} is complex at the inputs given")
    return values.real.reshape(arrays[0].shape)


def alpha_bar(schedule: Schedule | list, t: int, dps: int = 30) -> mpmath.mpf:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s) at ``dps`` digits [Ho20 §2].

    The project's one high-precision alpha_bar.

    ``schedule`` is a Schedule (its float64 betas taken exactly) or a list of betas (floats, strings
    or mpmath numbers, e.g. from :func:`linear_betas`).
    """
    return alpha_bars(schedule, dps)[t]


def alpha_bars(schedule: Schedule | list, dps: int = 30) -> list:
    """[alpha_bar_0, ..., alpha_bar_T] at ``dps`` digits (see :func:`alpha_bar`); alpha_bar_0 = 1."""
    betas = schedule.betas.tolist() if isinstance(schedule, Schedule) else schedule
    out = [mpmath.mpf(1)]
    with mpmath.workdps(dps):
        for b in betas:
            out.append(out[-1] * (1 - mpmath.mpf(b)))
    return out


def linear_betas(T: int, first="1e-4", last="0.02", dps: int = 50) -> list:
    """beta_1..beta_T of the linear schedule [Ho20 §4] at ``dps`` digits from the exact decimal endpoints."""
    with mpmath.workdps(dps):
        b1, bT = mpmath.mpf(first), mpmath.mpf(last)
        return [b1 + (bT - b1) * i / max(T - 1, 1) for i in range(T)]


def log_log_slope(xs, ys) -> float:
    """The least-squares slope of log y against log x.

    The order p of y ~ C x^p (as diffrax's ODE tests fit it).
    """
    lx, ly = np.log(np.asarray(xs, dtype=np.float64)), np.log(np.asarray(ys, dtype=np.float64))
    return float(np.polyfit(lx, ly, 1)[0])


def assert_close(name: str, got, expected, scale=None, rtol: float = RTOL) -> None:
    """|got - expected| <= rtol * scale elementwise (scale defaults to |expected|, floored at 1e-300)."""
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.abs(expected) if scale is None else np.asarray(scale, dtype=np.float64)
    err = np.abs(got - expected)
    bad = ~(err <= rtol * np.maximum(scale, 1e-300))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(scale, 1e-300), -1)), bad.shape)
        raise AssertionError(
            f"{name}: ddpm gives {np.ravel(got)[np.ravel_multi_index(i, bad.shape)]!r} where the derivation gives "
            f"{np.ravel(expected)[np.ravel_multi_index(i, bad.shape)]!r} (element {i}, relative error "
            f"{(err / np.maximum(scale, 1e-300))[i]:.3g} > {rtol:g})"
        )


@st.composite
def schedules(draw, min_T: int = 1, max_T: int = 12) -> Schedule:
    """Schedules of T in [min_T, max_T] steps with betas in [1e-4, 0.5], not necessarily increasing."""
    T = draw(st.integers(min_T, max_T))
    betas = draw(st.lists(st.floats(1e-4, 0.5), min_size=T, max_size=T))
    return Schedule(torch.tensor(betas, dtype=torch.float64))


def vectors(n: int, bound: float = 3.0):
    """Float64 arrays of shape (n,) with entries in [-bound, bound]."""
    return st.lists(st.floats(-bound, bound), min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64))
