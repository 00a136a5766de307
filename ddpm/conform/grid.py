"""The documented configurations that ``ddpm conform diffusers`` runs, a family per option.

Each scheduler the suite knows is run at its defaults and with each documented option changed alone
(beta_schedule, timestep_spacing, prediction_type, variance_type, eta, set_alpha_to_one,
steps_offset), plus the combinations the documentation pairs (zero terminal SNR with v_prediction
and trailing spacing [Lin24]; a variance with trailing spacing). The sigma world's schedulers (Euler,
Euler ancestral, Heun, DPM-Solver++, flow matching) with their level options (Karras levels, the final
level, the solver's order and algorithm, the flow-matching shift). A scheduler the installed diffusers
lacks is skipped, named on stderr.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DIFFUSERS_GRID"]

_SCHEDULES: list[dict[str, Any]] = [
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},  # Stable Diffusion's
    {"beta_schedule": "squaredcos_cap_v2"},
]
_SPACINGS: list[dict[str, Any]] = [{"timestep_spacing": "linspace"}, {"timestep_spacing": "trailing"}]
_PREDICTIONS: list[dict[str, Any]] = [{"prediction_type": "sample"}, {"prediction_type": "v_prediction"}]
_ZERO_SNR: dict[str, Any] = {
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
}

DIFFUSERS_GRID: dict[str, list[dict[str, Any]]] = {
    "DDPMScheduler": [
        {},
        *_SCHEDULES,
        *_SPACINGS,
        *_PREDICTIONS,
        {"variance_type": "fixed_small_log"},
        {"variance_type": "fixed_large"},
        {"variance_type": "fixed_large_log"},
        {"variance_type": "learned_range"},
        {"variance_type": "fixed_large", "timestep_spacing": "trailing"},
        {"variance_type": "learned_range", "timestep_spacing": "trailing"},
        _ZERO_SNR,
        {"rescale_betas_zero_snr": True},
    ],
    "DDIMScheduler": [
        {},
        *_SCHEDULES,
        *_SPACINGS,
        *_PREDICTIONS,
        {"eta": 0.5},
        {"eta": 1.0},
        {"eta": 1.0, "timestep_spacing": "trailing"},
        {"set_alpha_to_one": False},
        {
            "steps_offset": 1,
            "set_alpha_to_one": False,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "beta_end": 0.012,
        },
        _ZERO_SNR,
        {"rescale_betas_zero_snr": True},
    ],
    # the sigma world: held to the levels, the fitted ODE order or the ancestral law, add_noise
    "EulerDiscreteScheduler": [
        {},
        _SCHEDULES[0],
        {"use_karras_sigmas": True},
        {"timestep_spacing": "trailing"},
        {"timestep_spacing": "leading"},
        _PREDICTIONS[1],
        {"final_sigmas_type": "sigma_min"},
        {"interpolation_type": "log_linear"},
    ],
    "EulerAncestralDiscreteScheduler": [{}, _SCHEDULES[0], {"timestep_spacing": "trailing"}],
    "HeunDiscreteScheduler": [{}, {"use_karras_sigmas": True}, {"timestep_spacing": "trailing"}],
    "DPMSolverMultistepScheduler": [
        {},
        {"solver_order": 3},
        {"use_karras_sigmas": True},
        {"timestep_spacing": "trailing"},
        {"algorithm_type": "sde-dpmsolver++"},
        {"final_sigmas_type": "sigma_min"},
    ],
    "FlowMatchEulerDiscreteScheduler": [{}, {"shift": 3.0}],
}
