"""keep_freed_host_memory: step-sized CPU buffers stop page-faulting once the thresholds are fixed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ddpm import hostmem

# A child that allocates, touches and frees a step's activations (5000 x 64 float32, 1.25 MiB each)
# and prints the minor page faults of the last 80 of 100 steps.
CHILD = """
import resource, sys, torch
from ddpm.hostmem import keep_freed_host_memory
if sys.argv[1] == "keep":
    assert keep_freed_host_memory()
torch.set_num_threads(1)
for step in range(100):
    if step == 20:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    h = torch.ones(5000, 64)
    h = torch.relu(h * 2)
    del h
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    # glibc's start-up state with its dynamic threshold pinned: every 1.25 MiB buffer is a fresh mmap.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(
    not hostmem.has_glibc(),
    reason="mallopt's thresholds exist in glibc only; elsewhere "
    "keep_freed_host_memory changes nothing, as the next test checks",
)
def test_fixed_thresholds_stop_the_page_faults():
    pages = 2 * 80 * (5000 * 64 * 4 // 4096)  # two fresh buffers a step, every page touched once
    assert page_faults("default") > pages // 2  # the measurement sees the faults where they happen
    assert page_faults("keep") < pages // 100


def test_nothing_is_changed_without_glibc(monkeypatch):
    monkeypatch.setattr(hostmem.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert hostmem.keep_freed_host_memory() is False
