"""Function samplers held to the specs: k-diffusion's ``f(model, x, sigmas)`` [Karras22; Song21].

``model(x, sigma)`` is a denoiser (it returns the estimate of x_0), ``sigmas`` decrease to 0, and the
function returns the sample, as k-diffusion's ``sample_euler``, ``sample_heun`` and ``sample_dpmpp_2m``
do. Driven by the exact denoiser of N(0, I) (``ddpm.oracles.SigmaOptimalEps``), a deterministic
sampler must converge to the closed-form solution of the probability-flow ODE (``gaussian_flow``) as
the number of steps grows; the spec fits its order from 8, 16, 32 and 64 log-linear steps (as diffrax's
tests fit one) and fails a sampler that does not converge (fitted order below 0.8). A sampler whose
output changes with the global seed is stochastic: its law is not checked yet, so it is undecided.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ddpm.conform.targets import raised
from ddpm.oracles import SigmaOptimalEps, gaussian_flow
from ddpm.sigma.schedule import log_linear_sigmas
from ddpm.specs._bind import log_log_slope
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Outcome

__all__ = ["is_function_sampler", "FUNCTION_SPECS", "run_function_specs"]

SIGNATURE = ("model", "x", "sigmas")
COUNTS = (8, 16, 32, 64)
SIGMA_MAX, SIGMA_MIN = 10.0, 0.02
MIN_ORDER = 0.8  # a consistent solver is at least first order; a wrong one does not converge
FUNCTION_SPECS = ("ode_order", "finite")
CITES = {"ode_order": "[Karras22 §2; Song21 §4.3]", "finite": "[Karras22 alg. 1]"}


def is_function_sampler(obj: Any) -> bool:
    """Whether ``obj`` is a function whose first parameters are (model, x, sigmas)."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    try:
        names = [p.name for p in inspect.signature(obj).parameters.values()][:3]
    except (TypeError, ValueError):
        return False
    return tuple(names) == SIGNATURE


def _denoiser() -> Callable[[Tensor, Tensor], Tensor]:
    eps_star = SigmaOptimalEps.gaussian(torch.zeros(2, dtype=torch.float64), 1.0)

    def model(x: Tensor, sigma: Tensor, **_: Any) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return x - s * eps_star(x, torch.as_tensor(sigma, dtype=torch.float64).reshape(-1))

    return model


def _sigmas(n: int) -> Tensor:
    """n + 1 levels: n log-linear from SIGMA_MAX down to SIGMA_MIN, then 0 (k-diffusion's convention)."""
    return torch.cat([log_linear_sigmas(n, SIGMA_MIN, SIGMA_MAX).flip(0), torch.zeros(1, dtype=torch.float64)])


def _outcome(spec: str, status: str, detail: str) -> Outcome:
    return Outcome(spec, status, detail, CITES[spec])


def run_function_specs(fn: Callable[..., Tensor], steps: Sequence[int] = COUNTS) -> list[Outcome]:
    """The function specs on ``fn``: its fitted order against the exact flow of N(0, I), finite outputs."""
    counts = tuple(sorted(n for n in steps if n >= 8))  # fewer steps are not yet in the asymptotic regime
    if len(counts) < 2:
        counts = COUNTS
    g = torch.Generator().manual_seed(0)
    x_T = SIGMA_MAX * torch.randn(64, 2, generator=g, dtype=torch.float64)
    model = _denoiser()
    try:
        torch.manual_seed(1)
        first = fn(model, x_T.clone(), _sigmas(counts[0]))
        torch.manual_seed(2)
        second = fn(model, x_T.clone(), _sigmas(counts[0]))
        outs = {n: fn(model, x_T.clone(), _sigmas(n)) for n in counts}
    except Exception as e:
        line = raised(e)
        return [_outcome(s, FAIL, line) for s in FUNCTION_SPECS]
    finite_ok = all(bool(torch.isfinite(o).all()) for o in outs.values())
    finite = _outcome(
        "finite", PASS if finite_ok else FAIL, f"{'finite' if finite_ok else 'inf or nan in'} outputs at n = {counts}"
    )
    if not torch.equal(first, second):
        why = "the output changes with the global seed (a stochastic sampler): its law is not checked yet"
        return [_outcome("ode_order", UNDECIDED, why), finite]
    exact = gaussian_flow(x_T, SIGMA_MAX, 0.0)
    errors = [float((outs[n] - exact).abs().max()) for n in counts]
    where = ", ".join(f"n = {n}: {e:.3g}" for n, e in zip(counts, errors))
    if not finite_ok or not all(math.isfinite(e) for e in errors):
        return [_outcome("ode_order", UNDECIDED, "non-finite outputs: see finite"), finite]
    if max(errors) < 1e-10:
        return [_outcome("ode_order", PASS, f"exact to round-off at every count ({where})"), finite]
    order = -log_log_slope(counts, [max(e, 1e-300) for e in errors])
    detail = f"fitted order {order:.2f} against the exact flow of N(0, I) (max error {where})"
    ok = order >= MIN_ORDER and errors[-1] < errors[0]
    return [_outcome("ode_order", PASS if ok else FAIL, detail + ("" if ok else f": below {MIN_ORDER}")), finite]
