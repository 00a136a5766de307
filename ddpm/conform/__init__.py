"""``ddpm conform``: the specs held against the schedulers people ship [Ho20; Song21; Nichol21].

The Python API, for a library's own test suite::

    from ddpm.conform import conform
    report = conform(MyScheduler, {"prediction_type": "v_prediction"}, steps=(1, 7, 10))
    assert report.exit_status == 0, report.to_table()

``conform`` takes a scheduler class (or any callable returning a scheduler) and a configuration, or a
k-diffusion style sampler function ``f(model, x, sigmas)`` (:mod:`ddpm.conform.functions`); the
report holds one outcome per spec (pass / fail / undecided), with the numbers observed and expected.
A scheduler that lists noise levels (``sigmas``) beside its timesteps is held to the sigma world's
specs (:mod:`ddpm.conform.sigma`), any other to the beta world's (:mod:`ddpm.conform.beta`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ddpm.conform import beta, sigma
from ddpm.conform.beta import DEFAULT_STEPS, run_specs
from ddpm.conform.functions import COUNTS, is_function_sampler, run_function_specs
from ddpm.conform.gam_mu import (
    GAM_MU_CLAIMS,
    SettingsError,
    check_steps,
    is_gam_mu_sampler,
    run_gam_mu_specs,
    settings_of,
)
from ddpm.conform.gam_mu import STEPS as GAM_MU_STEPS
from ddpm.conform.report import ConformReport
from ddpm.conform.sigma import is_sigma_world, run_sigma_specs
from ddpm.conform.targets import TargetError, factory_of

SPECS = tuple(dict.fromkeys(beta.SPECS + sigma.SPECS))  # the order of a report's rows
CLAIMS = {**beta.CLAIMS, **sigma.CLAIMS}

FUNCTION_CLAIMS = {
    "ode_order": "driven by the exact denoiser of N(0, I), it converges to the probability-flow ODE's solution",
    "finite": "finite outputs from finite inputs",
}

__all__ = ["conform", "ConformReport", "TargetError", "SPECS", "CLAIMS", "DEFAULT_STEPS"]


def conform(
    scheduler: Any,
    config: Mapping[str, Any] | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    name: str = "",
    specs: Sequence[str] = SPECS,
) -> ConformReport:
    """The report of every spec on ``scheduler(**config)``, stepped at each count in ``steps``.

    ``scheduler`` may also be a sampler function: k-diffusion's ``f(model, x, sigmas)``
    (:mod:`ddpm.conform.functions`) or smalldiffusion's ``samples(model, sigmas, gam, mu, ...)``
    (:mod:`ddpm.conform.gam_mu`, whose config is one ``gam`` and ``mu``, by default the grid).
    A target that cannot be checked (not a scheduler, a config it rejects) gives a report with
    ``error`` set and exit status 2, never an exception.
    """
    name = name or getattr(scheduler, "__qualname__", repr(scheduler))
    config = dict(config or {})
    if is_gam_mu_sampler(scheduler):  # smalldiffusion style samples(model, sigmas, gam, mu, ...)
        counts = GAM_MU_STEPS if tuple(steps) == tuple(DEFAULT_STEPS) else tuple(steps)
        try:
            settings, counts = settings_of(config), check_steps(counts)
        except SettingsError as e:
            return ConformReport(name, config, counts, [], str(e), dict(GAM_MU_CLAIMS))
        outcomes = run_gam_mu_specs(scheduler, counts, settings)
        return ConformReport(name, config, counts, outcomes, "", dict(GAM_MU_CLAIMS))
    if is_function_sampler(scheduler):  # k-diffusion style f(model, x, sigmas)
        if config:
            return ConformReport(name, config, tuple(steps), [], "a function sampler takes no --config", {})
        counts = COUNTS if tuple(steps) == tuple(DEFAULT_STEPS) else tuple(steps)  # the order needs >= 8 steps
        return ConformReport(name, {}, counts, run_function_specs(scheduler, counts), "", dict(FUNCTION_CLAIMS))
    unknown = [s for s in specs if s not in SPECS]
    if unknown:
        raise ValueError(f"specs must be among {SPECS}, got {unknown}")
    try:
        factory = factory_of(scheduler, config, name)
    except TargetError as e:
        return ConformReport(name, config, tuple(steps), [], str(e), dict(CLAIMS))
    if is_sigma_world(factory.make()):  # a list of noise levels beside the timesteps: Euler, Heun, flow matching
        outcomes = run_sigma_specs(factory, steps, specs)
    else:
        outcomes = run_specs(factory, steps, [s for s in specs if s in beta.SPECS])
    return ConformReport(name, config, tuple(steps), outcomes, "", dict(CLAIMS))
