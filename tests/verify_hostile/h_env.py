"""Hostile: looks for the grader's environment (os.environ, /proc/<ancestors>/environ) and prints what it finds."""
import os
import sys

import torch
import torch.nn as nn

def _ancestors():
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError):
            return
        yield pid


_found = dict(os.environ)
for _pid in _ancestors():
    try:
        with open(f"/proc/{_pid}/environ", "rb") as f:
            for _item in f.read().split(b"\0"):
                _k, _, _v = _item.decode(errors="replace").partition("=")
                _found.setdefault(_k, _v)
    except OSError:
        pass
print("ENV-SEEN " + " ".join(f"{k}={v}" for k, v in sorted(_found.items()) if "CANARY" in k or "SECRET" in k) + " END")


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
