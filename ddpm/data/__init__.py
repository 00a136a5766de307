"""The data sets: the 02460 toy sets in [-1, 1]^2 (``toy``) and MNIST from its IDX files (``mnist``)."""

from __future__ import annotations

from ddpm.data.toy import Chequerboard, TwoGaussians

__all__ = ["DATASETS", "toy_dataset", "TwoGaussians", "Chequerboard"]

DATASETS = ("tg", "cb", "mnist")
TOY = {"tg": TwoGaussians, "cb": Chequerboard}


def toy_dataset(name: str) -> TwoGaussians | Chequerboard:
    """The toy set ``name``: "tg" (TwoGaussians) or "cb" (Chequerboard)."""
    if name not in TOY:
        raise ValueError(f"unknown toy data set {name!r}; expected one of {sorted(TOY)} "
                         "(MNIST is read by ddpm.data.mnist)")
    return TOY[name]()
