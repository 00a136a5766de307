"""Training in the sigma world [6.S183 Q2].

A level per example, loss ||eps_theta(x_0 + sigma eps, sigma) - eps||^2.

The 6.S183 notebook's setup: the 200 Swissroll points as the batch of every step, sigma drawn
uniformly from the N = 200 log-linear levels (0.005..10), eps ~ N(0, I), AdamW at lr 1e-3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ddpm.sigma.losses import sample_train_sigmas, sigma_loss

__all__ = ["sigma_train_step", "sigma_batch", "adamw"]


def sigma_train_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, x0: Tensor, sigma: Tensor, eps: Tensor
) -> Tensor:
    """One gradient step on the sigma-world loss per coordinate, the notebook's mse_loss [6.S183 Q1b, Q2].

    Returns the loss, detached.

    Forward, loss, backward and ``optimizer.step()``, with no host sync.
    """
    loss = sigma_loss(net, x0, sigma, eps).mean() / x0[0].numel()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def sigma_batch(x0: Tensor, sigmas: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(sigma, eps) for a batch x_0 [6.S183 Q2].

    One level per example, uniformly from ``sigmas``, and eps ~ N(0, I).
    """
    sigma = sample_train_sigmas(sigmas, x0.shape[0], generator).to(device=x0.device, dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return sigma, eps


def adamw(params, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW (the notebook's optimiser), with its fused kernel on CPU and CUDA."""
    fast: dict[str, Any] = {"fused": True} if torch.device(device).type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.AdamW(params, lr=lr, **fast)
