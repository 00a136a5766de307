"""pytest-benchmark view of the quick workloads.

Ours and the peer side by side (one group a workload).

    pytest benchmarks                      # every quick workload on CPU (and CUDA where present)
    pytest benchmarks -k "fc64 and sample"

``python benchmarks/report.py`` is the measurement of record: it interleaves the two sides round by
round and writes the ratios; here each side is timed in its own block of rounds.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from benchmarks.workloads import workloads  # noqa: E402
from ddpm.hostmem import keep_freed_host_memory  # noqa: E402

keep_freed_host_memory()  # as report.py does, for both sides: no page faults on each step's buffers
DEVICES = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
WORKLOADS = [w for d in DEVICES for w in workloads(d, quick=True)]
_pairs: dict[str, object] = {}


def _synced(fn, device):
    def call():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the timed region ends when the device is done

    return call


@pytest.mark.parametrize("side", ["ours", "peer"])
@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: f"{w.device.type}: {w.name}")
def test_workload(benchmark, workload, side):
    key = f"{workload.device}: {workload.name}"
    if key not in _pairs:
        _pairs[key] = workload.build()
    benchmark.group = key
    fn = _synced(getattr(_pairs[key], side), workload.device)
    benchmark.pedantic(fn, rounds=workload.rounds, warmup_rounds=workload.warmup, iterations=1)
