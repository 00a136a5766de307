"""How the verifier drives a student's DDPM: the settings, the seeded calls, and their failures.

Every call of the student's code goes through :meth:`Harness.call`: it builds a fresh model around a
probe network, seeds torch's, numpy's and Python's global generators (the student draws from them;
seeding them again replays the same t, eps and z), and turns anything the code raises into a
:class:`StudentError` naming the line of the file. The verifier's own draws (x_0, the probes'
answers) come from generators of their own, derived from ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ddpm.schedule import SIGMA2_CHOICES, Schedule, linear_schedule
from ddpm.stats import FALSE_ALARM, check_mc, generator_for
from ddpm.verify.loader import describe_exception
from ddpm.verify.probes import Probe, ShapeMismatch

__all__ = ["Config", "Harness", "StudentError", "mc"]


@dataclass(frozen=True)
class Config:
    """The verifier's settings: the schedule it builds the DDPM with, sample sizes, sigma choices, seed.

    beta from 0.01 to 0.2 over T = 20 steps keeps alpha_bar_t spread over (0.05, 1), so that a wrong
    power or a wrong step changes every coefficient by far more than the float32 noise.
    """

    T: int = 20
    beta_1: float = 0.01
    beta_T: float = 0.2
    batch: int = 1000
    dim: int = 64
    law_samples: int = 20000
    sigma: tuple[str, ...] = SIGMA2_CHOICES
    seed: int = 0
    false_alarm: float = FALSE_ALARM
    image: bool = False  # data shaped (batch, 1, h, w) rather than (batch, D)

    @property
    def schedule(self) -> Schedule:
        return linear_schedule(self.T, self.beta_1, self.beta_T)

    def shape(self, n: int, d: int) -> tuple[int, ...]:
        """The data shape for n samples of d coordinates: (n, d), or (n, 1, h, w) with h w = d."""
        if not self.image:
            return (n, d)
        h = int(d**0.5)
        while d % h:
            h -= 1
        return (n, 1, h, d // h)

    def generator(self, name: str) -> torch.Generator:
        return generator_for(f"verify:{name}", self.seed)

    def replay_seed(self, k: int) -> int:
        """The global seed set before the k-th distinct draw of the student's randomness."""
        return 7919 * self.seed + 104729 * k + 1


class StudentError(Exception):
    """The student's code raised; the message names the error and the file's line."""


@dataclass
class Harness:
    """Builds the student's DDPM around probes and calls its methods under a replayable seed."""

    cls: type
    path: Path
    config: Config
    notes: list[str] = field(default_factory=list)

    def build(self, probe: Probe):
        c = self.config
        try:
            return self.cls(probe, beta_1=c.beta_1, beta_T=c.beta_T, T=c.T)
        except Exception as exc:  # noqa: BLE001 - the student's failure, reported
            raise StudentError(f"DDPM(network, beta_1, beta_T, T) raised {describe_exception(exc, self.path)}") from None

    def call(self, method: str, probe: Probe, arg, seed: int):
        """``DDPM(probe, ...).method(arg)`` with every global generator seeded by ``seed``."""
        model = self.build(probe)
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy
            numpy.random.seed(seed % 2**32)
        except ImportError:
            pass
        try:
            with torch.no_grad():
                return getattr(model, method)(arg)
        except ShapeMismatch as exc:
            raise StudentError(f"{method}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the student's failure, reported
            raise StudentError(f"{method} raised {describe_exception(exc, self.path)}") from None


def mc(name: str, estimate: Tensor, stderr: Tensor, expected: Tensor, n: int, config: Config) -> tuple[bool, int]:
    """``ddpm.stats.check_mc`` at the configured false-alarm rate; returns (passed, worst element's index)."""
    estimate, stderr, expected = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64)
                                                         for v in (estimate, stderr, expected)))
    if not torch.isfinite(estimate).all():
        return False, int((~torch.isfinite(estimate)).flatten().nonzero()[0])
    result = check_mc(name, estimate, stderr, expected, n, false_alarm=config.false_alarm, raise_on_fail=False)
    worst = int(((estimate - expected).abs() / stderr).flatten().argmax())
    return result.passed, worst
