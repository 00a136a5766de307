"""The 02460 specs, the verifier's settings and the record kinds the child and the parent share.

Nothing here touches a student's file: the parent imports this module to decide, the child to observe.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

import torch

from ddpm.beta.schedule import SIGMA2_CHOICES, Schedule, linear_schedule
from ddpm.stats import FALSE_ALARM, generator_for

__all__ = [
    "SPECS_02460",
    "Config",
    "default_config_02460",
    "looks_like_02460",
    "RECORD_KINDS",
    "ROUNDS",
    "train_inputs",
    "sample_answers",
    "start_shift",
]

# id: (claim, citation), in the order they are reported.
SPECS_02460 = {
    "schedule": ("the coefficients the code applies are those of the linear schedule", "[Ho20 §2, §4]"),
    "network_call": ("network(x_t, t) once a step, x_t shaped like x, t of shape (batch, 1)", "[02460 ex. 3.4]"),
    "forward_mean": ("E[x_t | x_0] = sqrt(alpha_bar_t) x_0", "[Ho20 eq. 4]"),
    "forward_noise": ("x_t - E[x_t | x_0] ~ N(0, (1 - alpha_bar_t) I)", "[Ho20 eq. 4]"),
    "train_t": ("t ~ Uniform{1, ..., T}, drawn for each sample", "[Ho20 alg. 1]"),
    "train_eps": ("eps ~ N(0, I) fresh for each sample and each call", "[Ho20 alg. 1]"),
    "loss_value": ("negative_elbo = c ||eps - eps_theta(x_t, t)||^2 per sample, c > 0", "[Ho20 eq. 14]"),
    "loss_mean": ("loss(x) = negative_elbo(x).mean()", "[02460 ex. 3.4]"),
    "sample_prior": ("x_T ~ N(0, I)", "[Ho20 alg. 2 l. 1]"),
    "sample_steps": ("steps t = T, T-1, ..., 1, each once", "[Ho20 alg. 2 l. 2]"),
    "sample_mean": ("mean (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t)", "[Ho20 eq. 11]"),
    "sample_sigma": ("sigma_t^2 = beta_t or beta_tilde_t at t > 1", "[Ho20 §3.2]"),
    "sample_last_step": ("no noise at the last step: z = 0 at t = 1", "[Ho20 alg. 2 l. 3]"),
    "sample_z": ("z ~ N(0, I) fresh at every step and for each sample", "[Ho20 alg. 2 l. 3]"),
    "t_encoding": ("the network is told t the same way in training and sampling", "[Ho20 alg. 1-2]"),
    "sample_law": ("with eps* of a Gaussian, samples follow Algorithm 2's exact law", "[Ho20 alg. 2; 6.S183 Q1b]"),
}

ROUNDS = 3  # training rounds, each a pair of calls under one seed: enough draws of t for the checks at T = 20

# The records 02460's observer emits; decide treats any other kind as a malformed stream.
RECORD_KINDS = {
    "loaded",  # file, stubbed: [module names]
    "load_error",  # error: one line, the student's line included
    "built",  # tensors: {attribute name: 1-D float tensor of length T}, shape: data shape used
    "shape_fallback",  # error: why flat (batch, D) data failed; shape: the image shape used instead
    "call",  # one call of a DDPM method: see observe.py
    "stub_touch",  # module, what, site: the file's code used a stand-in for a missing package
    "law_plan",  # steps, codes: the training encoding the law probe decodes t with
    "crash",  # the child main's record of an exception escaping observe
    "end",  # the child main's end record
}


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

    @classmethod
    def from_dict(cls, raw: dict | Config | None) -> Config:
        """A Config from a job's dict (unknown keys are an error; a list of sigma choices is fine)."""
        if raw is None:
            return cls()
        if isinstance(raw, Config):
            return raw
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown 02460 settings: {', '.join(sorted(unknown))}")
        raw = dict(raw)
        if "sigma" in raw:
            raw["sigma"] = (raw["sigma"],) if isinstance(raw["sigma"], str) else tuple(raw["sigma"])
        return cls(**raw)

    def to_dict(self) -> dict:
        return dict(asdict(self), sigma=list(self.sigma))

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


def default_config_02460() -> dict:
    return Config().to_dict()


def looks_like_02460(source: str) -> bool:
    """Whether a file's text is written to the 02460 template: a class DDPM with negative_elbo and sample."""
    return bool(re.search(r"^\s*class\s+DDPM\b", source, re.M)) and "negative_elbo" in source and "def sample" in source


def train_inputs(c: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The training probes' x_0 and the network's answers, (ROUNDS, batch, dim) each, float32."""
    gen = c.generator("train")
    x0 = (2 * torch.randn(ROUNDS, c.batch, c.dim, generator=gen)).float()
    answer = torch.randn(ROUNDS, c.batch, c.dim, generator=gen).float()
    return x0, answer


def sample_answers(c: Config) -> torch.Tensor:
    """The network's answers U_j at the j-th call of the answering sampling run, (T + 8, batch, dim)."""
    return torch.randn(c.T + 8, c.batch, c.dim, generator=c.generator("sample")).float()


def start_shift(c: Config) -> torch.Tensor:
    """The delta added to x_T in the answering sampling run, (batch, dim): the start the verifier chooses."""
    return torch.randn(c.batch, c.dim, generator=c.generator("start")).float()
