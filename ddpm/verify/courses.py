"""The courses ``ddpm verify`` knows.

For each, the child's observer, the parent's decider and its specs.

A course plug-in has two sides (see the module docstrings of ``ddpm.verify.dtu``):
``observe(path, config, emit)`` runs in the child, on the student's file, and only emits raw records;
``decide(records, config) -> Decision`` runs in the parent, imports no student code, and computes
every outcome from the records alone. The parent imports the decider by its module path; the child
main imports the observer by its module path, so neither side loads the other's code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ddpm.verify.dtu.specs import SPECS_02460, default_config_02460, looks_like_02460
from ddpm.verify.s183.specs import SPECS_S183, default_config_s183, looks_like_s183

__all__ = ["Course", "COURSES", "course"]


@dataclass(frozen=True)
class Course:
    """A course's plug-in.

    ``observer`` and ``decider`` are module paths holding ``observe`` and ``decide``.
    """

    name: str
    observer: str
    decider: str
    specs: dict[str, tuple[str, str]]  # spec id: (claim, citation), in report order
    detect: Callable[[str], bool]  # the file's source text -> whether it is written for this course
    default_config: Callable[[], dict] = field(default=dict)

    def observe(self) -> Callable:
        """The child side: ``observe(path, config, emit) -> None``."""
        return importlib.import_module(self.observer).observe

    def decide(self) -> Callable:
        """The parent side: ``decide(records, config) -> Decision``."""
        return importlib.import_module(self.decider).decide

    def claims(self) -> dict[str, str]:
        return {k: claim for k, (claim, _) in self.specs.items()}


COURSES: dict[str, Course] = {
    "02460": Course(
        "02460",
        observer="ddpm.verify.dtu.observe",
        decider="ddpm.verify.dtu.decide",
        specs=SPECS_02460,
        detect=looks_like_02460,
        default_config=default_config_02460,
    ),
    "6.S183": Course(
        "6.S183",
        observer="ddpm.verify.s183.observe",
        decider="ddpm.verify.s183.decide",
        specs=SPECS_S183,
        detect=looks_like_s183,
        default_config=default_config_s183,
    ),
}


def course(name: str) -> Course:
    """The course called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return COURSES[name]
    except KeyError:
        raise ValueError(f"no course {name!r}; known: {', '.join(COURSES)}") from None
