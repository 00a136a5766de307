"""How far each planted deviation sits beyond ``assert_power``'s threshold, over many seeds.

A planted test asserts z > 3k under one seed; this measures how reliably it does so. For every test
that calls ``ddpm.stats.assert_power`` it reruns the default tier under ``--seeds`` seeds and prints,
per test, the mean and standard deviation of the planted z, its smallest value and the threshold 3k,
and the margin (mean - 3k) / sd: the number of standard deviations by which the planted deviation
clears the threshold (a margin of 5 misses it about once in 3.5 million seeds, if z is near normal).

    python scripts/power_margins.py --seeds 10

It runs ``pytest -p power_margins`` with this file as the plugin: the plugin wraps ``assert_power``
and appends each call's test, z and threshold to the file named by ``POWER_MARGINS_LOG``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = "POWER_MARGINS_LOG"


def pytest_configure(config) -> None:
    """As a pytest plugin: record every ``assert_power`` call before the tests import it."""
    import ddpm.stats

    original = ddpm.stats.assert_power

    def recording(result, multiple: float = ddpm.stats.POWER):
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(os.environ[LOG], "a") as f:
            f.write(json.dumps([test, float(result.z), multiple * float(result.k)]) + "\n")
        return original(result, multiple)

    ddpm.stats.assert_power = recording


def planted_test_files() -> list[str]:
    """The test files that call ``assert_power`` (``tests/test_stats.py`` tests the helper itself)."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if "assert_power(" in p.read_text() and p.name != "test_stats.py"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (default 10)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    args = parser.parse_args(argv)

    files, failed = planted_test_files(), []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "z.jsonl"
        env = {**os.environ, LOG: str(log), "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT)])}
        for seed in range(args.first, args.first + args.seeds):
            command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"]
            run = subprocess.run(
                [*command, "-p", "power_margins", f"--seed={seed}", *files], cwd=ROOT, env=env, capture_output=True
            )
            print(f"seed {seed}: {'pass' if run.returncode == 0 else 'FAIL'}", flush=True)
            if run.returncode:
                failed.append(seed)
        calls: dict[str, list[tuple[float, float]]] = {}
        for line in log.read_text().splitlines():
            test, z, threshold = json.loads(line)
            calls.setdefault(test, []).append((z, threshold))

    print(f"\n{'margin':>8} {'mean z':>8} {'sd':>6} {'min z':>8} {'3k':>6}  test")
    rows = []
    for test, zs in calls.items():
        z = [a for a, _ in zs]
        threshold, sd = max(b for _, b in zs), statistics.stdev(z) if len(z) > 1 else float("nan")
        margin = (statistics.mean(z) - threshold) / sd if sd > 0 else float("inf")  # inf: z the same every seed
        rows.append((margin, statistics.mean(z), sd, min(z), threshold, test))
    for margin, mean, sd, low, threshold, test in sorted(rows):
        print(f"{margin:>6.1f}sd {mean:>8.1f} {sd:>6.2f} {low:>8.1f} {threshold:>6.1f}  {test}")
    print(f"\n{len(calls)} planted checks, {args.seeds} seeds; runs failing: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
