"""The specs ``ddpm verify`` runs, their outcomes, and the report: a table for people, JSON for graders.

Each spec is one claim of the paper about a template DDPM, named with the equation it comes from. Its
outcome is ``pass``, ``fail`` (with one line saying what the file does instead) or ``skip`` (it could
not be checked because a spec it rests on failed; the line says which).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass

__all__ = ["SPECS", "Outcome", "Report", "PASS", "FAIL", "SKIP"]

PASS, FAIL, SKIP = "pass", "fail", "skip"

# id: (claim, citation), in the order they are checked and reported.
SPECS = {
    "schedule": ("beta, alpha, alpha_cumprod hold the linear schedule", "[Ho20 §2, §4]"),
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


@dataclass(frozen=True)
class Outcome:
    """The outcome of one spec: ``status`` is pass, fail or skip; ``message`` says why in plain words."""

    spec: str
    status: str
    message: str = ""

    @property
    def claim(self) -> str:
        return SPECS[self.spec][0]

    @property
    def cites(self) -> str:
        return SPECS[self.spec][1]


@dataclass
class Report:
    """Everything ``ddpm verify`` says about one file."""

    file: str
    exit_status: int
    config: dict
    outcomes: list[Outcome]
    notes: list[str]
    error: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["outcomes"] = [dict(asdict(o), claim=o.claim, cites=o.cites) for o in self.outcomes]
        return json.dumps(data, indent=2)

    def to_table(self, width: int = 112) -> str:
        c = self.config
        lines = [f"ddpm verify {self.file}  (T = {c.get('T')}, beta {c.get('beta_1')}..{c.get('beta_T')}, "
                 f"sigma {c.get('sigma')}, seed {c.get('seed')})"]
        if self.error:
            lines.append(f"cannot verify: {self.error}")
        if self.outcomes:
            name_w = max(len(o.spec) for o in self.outcomes)
            cite_w = max(len(o.cites) for o in self.outcomes)
            lines.append(f"  {'spec':<{name_w}}  {'result':<6}  {'cites':<{cite_w}}  details")
            indent = 2 + name_w + 2 + 6 + 2 + cite_w + 2
            for o in self.outcomes:
                head = f"  {o.spec:<{name_w}}  {o.status.upper() if o.status == FAIL else o.status:<6}  {o.cites:<{cite_w}}  "
                text = o.message or o.claim
                body = textwrap.wrap(text, max(width - indent, 30)) or [""]
                lines.append(head + body[0])
                lines.extend(" " * indent + more for more in body[1:])
        for note in self.notes:
            lines.extend(textwrap.wrap(note, width, initial_indent="note: ", subsequent_indent="      "))
        counts = {s: sum(o.status == s for o in self.outcomes) for s in (PASS, FAIL, SKIP)}
        verdict = {0: "all specs pass", 1: "some specs fail", 2: "not verified"}[self.exit_status]
        lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped: {verdict} "
                     f"(exit {self.exit_status})")
        return "\n".join(lines)
