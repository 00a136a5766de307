"""The specs of ``ddpm verify --course 6.S183``.

The default configuration and the detector (no torch needed).

The two code answers of the 6.S183 problem set 1 notebook, Question 2 ("build a diffusion model on a
2D toy set"): the loss line of ``training_loop`` (the notebook's Question 1) and the body of the
accelerated sampler ``samples`` (its Question 3).
"""

from __future__ import annotations

__all__ = ["SPECS_S183", "LOSS_SPECS", "SAMPLE_SPECS", "default_config_s183", "looks_like_s183"]

_LOSS = "[6.S183 Q2: L(theta)]"
_STEP = "[6.S183 Q2: Q3 step; PY23 App. A]"

# id: (claim with its equation, citation), in report order.
SPECS_S183 = {
    "loss_input": (
        "the network sees x_0 + sigma eps, each example with its own sigma: "
        "L = E||eps_theta(x_0 + sigma eps, sigma) - eps||^2",
        _LOSS,
    ),
    "loss_sigma": ("eps_theta is told each example's sigma, drawn per example from the schedule", _LOSS),
    "loss_eps": ("eps ~ N(0, I), fresh for every example and every batch", _LOSS),
    "loss_target": ("the regression target is eps (the gradient is c (eps_theta - eps))", _LOSS),
    "loss_reduction": ("a mean of squares over the batch, c mean||eps_theta - eps||^2 with one c > 0", _LOSS),
    "loss_yields": ("one yield per batch: the loss's value", "[6.S183 Q2: training_loop]"),
    "sample_start": ("x = model.rand_input(batchsize) * sigmas[0], or xt as given", "[6.S183 Q2: samples]"),
    "sample_network_call": ("eps_theta evaluated once per level, at (x_t, sigma_t)", _STEP),
    "sample_first_step": ("the first step uses eps_bar = eps_theta(x_t, sigma_t)", _STEP),
    "sample_update": (
        "x_{t-1} = x_t - (sigma_t - sigma_{t-1}) eps_bar_t, eps_bar_t = gam eps_theta(x_t, sigma_t) "
        "+ (1 - gam) eps_theta(x_{t+1}, sigma_{t+1}), for gam = 1, 1.5, 2",
        _STEP,
    ),
    "sample_yields": ("one yield per step, x_{t-1} after the step; the last is x_0", "[6.S183 Q2: samples]"),
    "sample_law": (
        "with the exact eps* of N(m, c I), the samples follow the closed-form law",
        "[6.S183 Q1b; PY23 App. A]",
    ),
}
LOSS_SPECS = [k for k in SPECS_S183 if k.startswith("loss_")]
SAMPLE_SPECS = [k for k in SPECS_S183 if k.startswith("sample_")]


def default_config_s183() -> dict:
    """The runs the observer makes (see ``ddpm.verify.s183.observe``)."""
    from ddpm.verify.s183.observe import default_config

    return default_config()


def looks_like_s183(text: str, name: str = "") -> bool:
    """Whether a file's text is a 6.S183 notebook: it defines training_loop or samples, and no class DDPM."""
    from ddpm.verify.s183.notebook import looks_like_s183 as detect

    return detect(text, name)
