"""The parent side of ``ddpm verify --course 6.S183``: every outcome from the child's records alone.

Nothing of the student's is imported here: the records carry the notebook's text, the batches, the
draws, the network's inputs and answers, the loss's gradient with respect to those answers and the
yields; the expected values come from the sigma core (``ddpm.sigma.schedule``, ``ddpm.sigma.sampler``),
never from a copy. The stream is first held to its schema (:mod:`ddpm.verify.s183.records`; anything else
is "could not verify"); then each spec is decided on its own evidence — the loss's six from the training
runs (:mod:`ddpm.verify.s183.loss`), the sampler's six from the runs of ``samples``
(:mod:`ddpm.verify.s183.sampler`, on the coefficients of :mod:`ddpm.verify.s183.states`) — and shown with
the student's lines (:mod:`ddpm.verify.s183.source`). A spec whose function the notebook does not define,
or whose runs the stream does not finish, is undecided, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ddpm.verify.report import PASS, UNDECIDED, Decision, Outcome
from ddpm.verify.s183.loss import decide_loss
from ddpm.verify.s183.records import Malformed, Run, RunEnd, SampleRun, TrainRun, group
from ddpm.verify.s183.sampler import decide_sampler
from ddpm.verify.s183.source import Source
from ddpm.verify.s183.specs import LOSS_SPECS, SAMPLE_SPECS
from ddpm.verify.s183.wording import outcome

__all__ = ["decide"]


def decide(records: Iterable[object], config: Mapping[str, Any] | None = None) -> Decision:
    """Every 6.S183 spec's outcome from the child's records alone [6.S183 Q2; PY23 App. A].

    torch runs on one thread meanwhile (small least-squares problems; a thread pool on busy cores costs
    many times the CPU), restored after.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _decide(records, config or {})
    finally:
        torch.set_num_threads(threads)


def _decide(records: Iterable[object], config: Mapping[str, Any]) -> Decision:
    try:
        g = group(records)
    except Malformed as e:
        return Decision([], [], None, f"malformed records from the child ({e})")
    if g.crashes:
        return Decision([], [], f"the notebook could not be run: {g.crashes[0].error}", None)
    if g.notebook is None or g.plan is None or g.definitions is None:
        if g.notebook is not None and g.plan is not None:
            return Decision([], [], "the notebook's definitions could not be run", None)
        return Decision([], [], "the notebook could not be read", None)
    # a run without its end record was cut (a hang, a kill): its counts would be false bugs, so it is not used
    cut = any(not r.of(RunEnd) for r in g.train) or any(not r.of(RunEnd) for r in g.sample)
    train = [r for r in g.train if r.of(RunEnd)]
    sample = [r for r in g.sample if r.of(RunEnd)]
    src = Source(g.notebook, g.plan, g.definitions)
    notes = _load_notes(src)
    outcomes: list[Outcome] = []
    cannot = None
    try:
        if _defined(src, "training_loop"):
            loss, loss_notes, why = decide_loss(src, train, config)
            notes += loss_notes
            cannot = cannot or why
            outcomes += loss if not why else _undecided(LOSS_SPECS, f"not decided: {why}")
        else:
            outcomes += _undecided(LOSS_SPECS, _function_reason(src, "training_loop"))
        if _defined(src, "samples"):
            samp, samp_notes, why = decide_sampler(src, sample)
            notes += samp_notes
            cannot = cannot or why
            outcomes += samp if not why else _undecided(SAMPLE_SPECS, f"not decided: {why}")
        else:
            outcomes += _undecided(SAMPLE_SPECS, _function_reason(src, "samples"))
    except Malformed as e:
        return Decision([], notes, None, f"malformed records from the child ({e})")
    outcomes = _held_to_complete_runs(outcomes, train, sample, config, src)
    notes = list(dict.fromkeys(notes))
    if cut:
        notes.append("the record stream stops inside a run; only the runs that ended were used")
    return Decision(outcomes, notes, None, cannot)


def _defined(src: Source, name: str) -> bool:
    """Whether the notebook defines a function ``name`` of its own."""
    info = src.definitions.functions.get(name)
    return info is not None and info.status == "notebook"


def _undecided(spec_ids: list[str], reason: str) -> list[Outcome]:
    return [outcome(k, UNDECIDED, reason) for k in spec_ids]


def _function_reason(src: Source, name: str) -> str:
    info = src.definitions.functions.get(name)
    status = info.status if info is not None else None
    bad_cells = [
        (c, ln, m)
        for c, ln, m in src.plan.syntax_errors
        if f"def {name}" in (cell.text if (cell := src.cells.get(c)) is not None else "")
    ]
    if bad_cells:
        c, ln, m = bad_cells[-1]
        return f"not decided: the cell defining {name} does not parse ({src.where(c, ln)}: {m})"
    if status == "library":
        return f"not decided: {name} is smalldiffusion's, imported; the notebook defines no {name} of its own"
    if status == "other" and info is not None:
        return f"not decided: {name} is a {info.type}, not a function the notebook defines"
    return f"not decided: the notebook defines no {name}"


def _held_to_complete_runs(
    outcomes: list[Outcome],
    train: list[Run[TrainRun]],
    sample: list[Run[SampleRun]],
    config: Mapping[str, Any],
    src: Source,
) -> list[Outcome]:
    """A pass needs every run of its answer to have ended.

    From a cut stream, what would pass is undecided.
    """
    from ddpm.verify.s183.observe import default_config

    want = {**default_config(), **config}
    cut = {}
    for phase, ended, n, name in (
        ("loss_", len(train), len(want["train_runs"]), "training_loop"),
        ("sample_", len(sample), len(want["sample_runs"]), "samples"),
    ):
        if _defined(src, name) and ended < n:
            cut[phase] = f"not decided: the record stream stops after {ended} of the {n} runs of {name}"
    return [
        Outcome(o.spec, UNDECIDED, cut[p], o.cites, o.lines)
        if o.status == PASS and (p := "loss_" if o.spec.startswith("loss_") else "sample_") in cut
        else o
        for o in outcomes
    ]


def _load_notes(src: Source) -> list[str]:
    notes = []
    plan = src.plan
    if plan.skipped:
        first = plan.skipped_first
        eg = f", e.g. {src.where(first[0][0], first[0][1])}: {first[0][2]}" if first else ""
        notes.append(
            f"ran only the notebook's imports and definitions; {plan.skipped} top-level statements "
            f"(calls, loops, plots) were not run{eg}"
        )
    dropped = [d for c in src.cells.values() for d in c.dropped]
    if dropped:
        notes.append(f"dropped {len(dropped)} shell/magic line(s), e.g. {dropped[0][:60]!r}")
    for c, ln, m in plan.syntax_errors:
        notes.append(f"{src.where(c, ln)} does not parse ({m}); that cell's definitions are missing")
    for c, ln, m in src.definitions.errors:
        notes.append(f"{src.where(c, ln)}: running this definition raised {m}")
    return notes
