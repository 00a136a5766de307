"""Suite-wide test settings.

The ``--seed`` option of the statistical checks and the hypothesis profiles.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from ddpm.stats import generator_for

# Hypothesis, in one place: `ci` is derandomised with no deadline (the default under CI=true);
# `dev` explores new examples on every run. Choose with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

torch.set_default_dtype(torch.float32)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed",
        type=int,
        default=0,
        help="reseed every statistical check (default 0); rerun under many seeds to measure false alarms",
    )
    parser.addoption(
        "--seeded-only",
        action="store_true",
        help="run only the tests that take the suite seed (the others give the same result under every seed)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--seeded-only"):
        return
    seeded = [item for item in items if {"seed", "gen"} & set(getattr(item, "fixturenames", ()))]
    config.hook.pytest_deselected(items=[item for item in items if item not in seeded])
    items[:] = seeded


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The suite-wide seed given by ``--seed``."""
    return request.config.getoption("--seed")


@pytest.fixture
def gen(request: pytest.FixtureRequest, seed: int) -> torch.Generator:
    """A CPU generator of this test's own, seeded from its node id and ``--seed``."""
    return generator_for(request.node.nodeid, seed)
