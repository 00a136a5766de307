"""The denoising loss of the sigma world [6.S183 Q1b, Q2].

||eps_theta(x_0 + sigma eps, sigma) - eps||^2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.sigma.sampler import SigmaEpsModel
from ddpm.sigma.schedule import batch_scale

__all__ = ["sigma_loss", "sample_train_sigmas"]


def sigma_loss(eps_model: SigmaEpsModel, x0: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
    """||eps_theta(x_0 + sigma eps, sigma) - eps||^2 per sample [6.S183 Q1b, Q2].

    Summed over all but the batch.

    ``sigma`` is a tensor (batch,) of levels, one per sample (or a 0-d tensor for all); the network
    receives it as a (batch,) tensor in x_0's dtype. Its mean over the batch divided by the number of
    coordinates is the notebook's ``mse_loss``.
    """
    sigma = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x0.shape[0])
    if sigma.shape != (x0.shape[0],):
        raise ValueError(f"sigma must have shape ({x0.shape[0]},), one level per sample, got {tuple(sigma.shape)}")
    x_sigma = x0 + batch_scale(sigma, x0) * eps
    return ((eps_model(x_sigma, sigma) - eps) ** 2).flatten(1).sum(1)


def sample_train_sigmas(sigmas: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n levels drawn uniformly from the schedule's ``sigmas`` (float64) [6.S183 Q2].

    One per training example.
    """
    device = generator.device if generator is not None else sigmas.device
    i = torch.randint(sigmas.numel(), (n,), generator=generator, device=device)
    return sigmas.to(device)[i]
