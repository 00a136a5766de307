"""The child process of ``ddpm verify``: loads the file, runs every spec, writes the outcomes as JSON.

Run as ``python -m ddpm.verify.worker FILE RESULT.json CONFIG.json``. The result file is rewritten
after each stage (``schedule``, ``training``, ``sampling``, ``law``) and names the stage under way,
so that when the student's code hangs or kills the process the parent can say where. The student's
output goes to this process's stdout and stderr, which the parent captures; the worker writes
nothing there itself.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ddpm.verify.adapter import TEMPLATE_TENSORS, describe_step, paper_tensor
from ddpm.verify.coefficients import RTOL
from ddpm.verify.harness import Config, Harness, StudentError
from ddpm.verify.loader import LoadError, load_ddpm_class
from ddpm.verify.probes import Probe
from ddpm.verify.report import FAIL, PASS, SKIP, SPECS, Outcome
from ddpm.verify.sampling import check_law, check_sampling
from ddpm.verify.training import TrainingFacts, check_training

__all__ = ["STAGES", "check_schedule", "verify"]

# The specs each stage decides, in order; a stage that cannot finish fails its first spec.
STAGES = {
    "load": [],
    "schedule": ["schedule"],
    "training": ["forward_mean", "network_call", "forward_noise", "train_t", "train_eps", "loss_value", "loss_mean"],
    "sampling": ["sample_steps", "sample_prior", "sample_mean", "sample_sigma", "sample_last_step", "sample_z",
                 "t_encoding"],
    "law": ["sample_law"],
}


def check_schedule(h: Harness) -> Outcome:
    """The template's beta, alpha, alpha_cumprod against ddpm.schedule.linear_schedule [Ho20 §2, §4]."""
    model = h.build(Probe())
    s = h.config.schedule
    for name, ours in TEMPLATE_TENSORS.items():
        theirs = getattr(model, name, None)
        if not isinstance(theirs, torch.Tensor):
            return Outcome("schedule", FAIL, f"DDPM has no tensor {name} (the template's {ours}_t, index i for step i + 1)")
        got, want = paper_tensor(theirs), getattr(s, ours)
        if got.shape != want.shape:
            return Outcome("schedule", FAIL, f"{name} has {got.numel() - 1} entries; the template holds T = {s.T}")
        bad = ((got - want).abs() > RTOL * want.abs())[1:]
        if bad.any():
            t = int(bad.nonzero()[0]) + 1
            return Outcome("schedule", FAIL, f"{name} at {describe_step(t)} is {float(got[t]):.6g}; {ours}_t = "
                           f"{float(want[t]):.6g}")
    return Outcome("schedule", PASS)


class _Writer:
    def __init__(self, path: Path):
        self.path, self.state = path, {"stage": "load", "outcomes": [], "notes": [], "error": "", "config": {}}

    def __call__(self, **changes) -> None:
        self.state.update(changes)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


def _merge_network_call(outcomes: list[Outcome]) -> list[Outcome]:
    """The training and the sampling verdicts on network_call as one: the first failure, else a pass."""
    calls = [o for o in outcomes if o.spec == "network_call"]
    if not calls:
        return outcomes
    merged = next((o for o in calls if o.status == FAIL), calls[0])
    return [o for o in outcomes if o.spec != "network_call"] + [merged]


def _ordered(outcomes: list[Outcome]) -> list[Outcome]:
    by_spec = {}
    for o in outcomes:
        by_spec.setdefault(o.spec, o)
    return [by_spec[k] for k in SPECS if k in by_spec]


def verify(path: Path, config: Config, write=lambda **state: None) -> tuple[list[Outcome], list[str]]:
    """Every spec against the file's DDPM, in order; ``write(stage=..., ...)`` is told before each stage.

    Raises :class:`LoadError` when the file cannot be loaded or its DDPM cannot be built.
    """
    notes: list[str] = []
    cls, stubbed = load_ddpm_class(path)
    if stubbed:
        notes.append(f"stood in stubs for the imports that are not installed: {', '.join(stubbed)}")
    h = Harness(cls, path, config, notes)
    try:
        h.build(Probe())
    except StudentError as exc:
        raise LoadError(str(exc)) from None
    outcomes: list[Outcome] = []

    def stage(name: str, run) -> None:
        write(stage=name, notes=notes, outcomes=[asdict(o) for o in _ordered(outcomes)])
        try:
            outcomes.extend(run())
        except StudentError as exc:
            first, *rest = STAGES[name]
            outcomes.append(Outcome(first, FAIL, str(exc)))
            outcomes.extend(Outcome(k, SKIP, f"not checked: the code raised (see {first})") for k in rest)

    stage("schedule", lambda: [check_schedule(h)])
    facts = TrainingFacts()

    def training() -> list[Outcome]:
        nonlocal facts, h
        try:
            facts = check_training(h)
        except StudentError as flat_error:
            image = replace(h, config=replace(config, image=True))
            try:
                facts = check_training(image)
            except StudentError:
                raise flat_error from None
            h = image
            notes.append(f"the file works only on image-shaped data: on x of shape (batch, D) {flat_error}; every "
                         f"spec is checked with x of shape {image.config.shape(config.batch, config.dim)} instead "
                         "(the sheet's toy data is (batch, 2))")
        return facts.outcomes

    stage("training", training)
    stage("sampling", lambda: check_sampling(h, facts))
    stage("law", lambda: [check_law(h, facts)])
    outcomes = _ordered(_merge_network_call(outcomes))
    write(stage="done", notes=notes, outcomes=[asdict(o) for o in outcomes])
    return outcomes, notes


def main(argv: list[str]) -> int:
    path, result, config_file = Path(argv[0]), Path(argv[1]), Path(argv[2])
    torch.set_num_threads(1)
    raw = json.loads(config_file.read_text())
    config = Config(**{**raw, "sigma": tuple(raw["sigma"])})
    write = _Writer(result)
    write(config=raw)
    try:
        verify(path, config, write)
    except LoadError as exc:
        write(error=str(exc))
    except Exception:  # noqa: BLE001 - the verifier's own bug: reported as such, never as the student's
        write(error="internal error of the verifier:\n" + traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
