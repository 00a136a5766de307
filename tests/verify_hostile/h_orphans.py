"""Hostile: leaves sleep processes behind: a new session, stdout to DEVNULL, and a double-forked daemon."""
import os
import sys

import torch
import torch.nn as nn

import subprocess

MARK = "987.654321"  # the tests look for sleeps with this argument after verify returns
subprocess.Popen(["sleep", MARK], start_new_session=True)
subprocess.Popen(["sleep", MARK], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", MARK])
    os._exit(0)


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
