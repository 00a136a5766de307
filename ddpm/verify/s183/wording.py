"""How the outcomes of ``ddpm verify --course 6.S183`` are worded, the loss's and the sampler's alike.

Numbers to six significant digits, a tensor by its first entries, an outcome with the student's lines (shown
where something is wrong or undecided, not on a pass), and an exception the code raised, at its line.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from ddpm.verify.report import PASS, Outcome
from ddpm.verify.s183.records import Error
from ddpm.verify.s183.source import Source
from ddpm.verify.s183.specs import SPECS_S183

__all__ = ["num", "vec", "outcome", "raised"]


def num(x: float) -> str:
    return f"{x:.6g}"


def vec(t: Tensor, k: int = 3) -> str:
    v = t.reshape(-1)[:k].tolist()
    return "[" + ", ".join(num(x) for x in v) + (", ...]" if t.numel() > k else "]")


def outcome(spec: str, status: str, detail: str = "", lines: Iterable[str] = ()) -> Outcome:
    """An outcome; the student's lines are shown where something is wrong or undecided, not on a pass."""
    shown = () if status == PASS else tuple(dict.fromkeys(x for x in lines if x))
    return Outcome(spec, status, detail, SPECS_S183[spec][1], shown)


def raised(src: Source, error: Error, fn: str) -> str:
    """An exception the code raised, in words: "samples raised ValueError: ... (at cell 10, line 4)"."""
    return f"{fn} raised {error.type}: {error.message} (at {src.where(error.cell, error.line)})"
