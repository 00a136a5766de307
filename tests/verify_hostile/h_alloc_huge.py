"""Hostile: allocates 3.5 GB at import (more than the sandbox's address space)."""
import os
import sys

import torch
import torch.nn as nn

_hog = torch.ones(int(3.5 * 2**30) // 4)
_hog += 1


class DDPM(nn.Module):
    """A wrong DDPM: its sample returns zeros. Only the attack above could make it pass."""

    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super().__init__()
        self.network, self.T = network, T
        self.beta = nn.Parameter(torch.linspace(beta_1, beta_T, T), requires_grad=False)
        self.alpha = nn.Parameter(1 - self.beta, requires_grad=False)
        self.alpha_cumprod = nn.Parameter(self.alpha.cumprod(dim=0), requires_grad=False)

    def negative_elbo(self, x):
        t = torch.randint(0, self.T, (x.shape[0],))
        eps = torch.randn_like(x)
        a = self.alpha_cumprod[t].view(-1, *([1] * (x.dim() - 1)))
        x_t = a.sqrt() * x + (1 - a).sqrt() * eps
        return ((eps - self.network(x_t, (t.float() / self.T).view(-1, 1))) ** 2).flatten(1).sum(1)

    def sample(self, shape):
        return torch.zeros(shape)

    def loss(self, x):
        return self.negative_elbo(x).mean()


def answer():
    """For the sandbox's probe course: 42 is right; this file answers 0."""
    return 0
