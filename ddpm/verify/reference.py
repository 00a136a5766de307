"""ddpm's own DDPM dressed in the 02460 template's interface, for ``ddpm verify`` [Ho20 alg. 1-2].

``DDPM(network, beta_1, beta_T, T)`` holds the template's 0-based tensors (from the adapter) and
computes everything with ddpm's functions in the paper's t = 1..T: ``negative_elbo`` is
:func:`ddpm.beta.losses.l_simple` at t ~ Uniform{1..T}, ``sample`` is :func:`ddpm.beta.sampler.sample`.
The network is told t / T, shaped (batch, 1). ``ddpm verify`` runs this file like any student's:
the project's DDPM passes the same specs through the same adapter.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ddpm.beta.losses import l_simple
from ddpm.beta.sampler import sample
from ddpm.beta.schedule import linear_schedule
from ddpm.verify.adapter import template_tensors

__all__ = ["DDPM"]


class DDPM(nn.Module):
    """The template's DDPM built from ddpm's reference functions; sigma_t^2 = beta_t as the sheet asks."""

    # The template's tensors (ddpm.verify.adapter.TEMPLATE_TENSORS), set by name in __init__.
    beta: nn.Parameter
    alpha: nn.Parameter
    alpha_cumprod: nn.Parameter

    def __init__(self, network: nn.Module, beta_1: float = 1e-4, beta_T: float = 2e-2, T: int = 100):
        super().__init__()
        self.network, self.T = network, T
        self.schedule = linear_schedule(T, beta_1, beta_T)
        for name, value in template_tensors(self.schedule).items():
            setattr(self, name, nn.Parameter(value, requires_grad=False))

    def eps_model(self, x_t: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t) for steps t in 1..T of shape (batch,): the network told t / T."""
        return self.network(x_t, (t.to(x_t.dtype) / self.T).reshape(-1, 1))

    def negative_elbo(self, x: Tensor) -> Tensor:
        """||eps - eps_theta(x_t, t)||^2 per sample at t ~ Uniform{1..T}, eps ~ N(0, I) [Ho20 eq. 14, alg. 1]."""
        t = torch.randint(1, self.T + 1, (x.shape[0],), device=x.device)
        return l_simple(self.eps_model, self.schedule, x, t, torch.randn_like(x))

    def sample(self, shape: tuple[int, ...]) -> Tensor:
        """x_0 of the given shape by Algorithm 2 with sigma_t^2 = beta_t [Ho20 alg. 2]."""
        return sample(self.eps_model, self.schedule, shape, device=self.beta.device)

    def loss(self, x: Tensor) -> Tensor:
        """The mean of the negative ELBO over the batch."""
        return self.negative_elbo(x).mean()
