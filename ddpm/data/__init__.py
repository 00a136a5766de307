"""The data sets: the 02460 toy sets, the 6.S183 Swissroll and MNIST.

The 02460 toy sets in [-1, 1]^2 (``toy``), the 6.S183 Swissroll (``swissroll``) and MNIST from its
IDX files (``mnist``).
"""

from __future__ import annotations

from ddpm.data.swissroll import Swissroll
from ddpm.data.toy import Chequerboard, TwoGaussians

__all__ = ["DATASETS", "toy_dataset", "TwoGaussians", "Chequerboard", "Swissroll"]

DATASETS = ("tg", "cb", "swissroll", "mnist")
TOY: dict[str, type[TwoGaussians] | type[Chequerboard] | type[Swissroll]] = {
    "tg": TwoGaussians,
    "cb": Chequerboard,
    "swissroll": Swissroll,
}


def toy_dataset(name: str) -> TwoGaussians | Chequerboard | Swissroll:
    """The toy set ``name``.

    "tg" (TwoGaussians), "cb" (Chequerboard) or "swissroll" (the 6.S183 Swissroll).
    """
    if name not in TOY:
        raise ValueError(
            f"unknown toy data set {name!r}; expected one of {sorted(TOY)} (MNIST is read by ddpm.data.mnist)"
        )
    return TOY[name]()
