"""Run the benchmarks, ours beside the peer; write DIR/summary.json, report.md and speedup.png.

    python benchmarks/report.py [--quick] [--device cpu|cuda|all] [--only SUBSTRING] [--threads N] --out DIR

Each row of summary.json has ``workload``, ``device``, ``ours_s``, ``peer``, ``peer_s`` and ``speedup``
(peer_s / ours_s, both medians of interleaved rounds), plus the rounds' times and the workload's
extra figures (capture time, launch floor, FLOPs). Before a workload is timed, the first results
of the two sides are compared: a peer that does not compute the same thing is an error, not a row.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a clone

from benchmarks.pair import Workload
from benchmarks.timing import compare  # noqa: E402
from benchmarks.workloads import workloads  # noqa: E402
from ddpm.hostmem import keep_freed_host_memory  # noqa: E402
from ddpm.plot import save_figure  # noqa: E402


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a|: how far the peer's first result is from ours, relative to its size."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / a.abs().max())


def run(workload: Workload, peer_name: str) -> dict:
    """Time one workload and return its row."""
    pair = workload.build()
    result = compare(pair.ours, pair.peer, workload.device, rounds=workload.rounds, warmup=workload.warmup)
    first_ours, first_peer = result.first_ours, result.first_peer
    assert isinstance(first_ours, torch.Tensor) and isinstance(first_peer, torch.Tensor), "both sides return tensors"
    diff = relative_difference(first_ours, first_peer)
    if not diff <= pair.rtol:
        raise AssertionError(
            f"{workload.name}: ours and the peer disagree: relative difference {diff:.3g} > {pair.rtol:g}"
        )
    row = {
        "workload": workload.name,
        "device": device_name(workload.device),
        "ours_s": result.ours_s,
        "peer": peer_name,
        "peer_s": result.peer_s,
        "speedup": result.speedup,
        "kind": workload.kind,
        "target": workload.target,
        "rounds": workload.rounds,
        "ours_times": result.ours,
        "peer_times": result.peer,
        "relative_difference": diff,
        **pair.details(),
    }
    if row.get("flops"):
        row["ours_flops_per_s"] = row["flops"] / row["ours_s"]
        if row.get("peak_bf16_flops"):
            row["fraction_of_bf16_peak"] = row["ours_flops_per_s"] / row["peak_bf16_flops"]
    if row.get("launch_floor_s"):
        row["ours_over_launch_floor"] = row["ours_s"] / row["launch_floor_s"]
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def machine() -> dict:
    """What the numbers were measured on."""
    import diffusers

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    return {
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def verdict(row: dict) -> str:
    checks = []
    if row.get("target") is not None:
        checks.append(f"speedup >= {row['target']:g}: {'yes' if row['speedup'] >= row['target'] else 'NO'}")
    if row.get("ours_over_launch_floor") is not None:
        ok = row["ours_over_launch_floor"] <= 2
        checks.append(
            f"{row['ours_over_launch_floor']:.2f} x launch floor ({row['launch_floor_s']:.4g} s): "
            f"{'yes' if ok else 'NO'}"
        )
    if row.get("fraction_of_bf16_peak") is not None:
        ok = row["fraction_of_bf16_peak"] >= 0.10
        checks.append(f"{100 * row['fraction_of_bf16_peak']:.1f}% of bf16 peak: {'yes' if ok else 'NO'}")
    elif row.get("ours_flops_per_s"):
        checks.append(f"{row['ours_flops_per_s'] / 1e9:.1f} GFLOP/s")
    if row.get("ours_setup_s"):
        checks.append(f"graph capture {row['ours_setup_s']:.3g} s (not in ours_s)")
    return "; ".join(checks)


def write_report(rows: list[dict], info: dict, out: Path, quick: bool) -> None:
    lines = [
        "# ddpm benchmarks: ours beside diffusers' DDPMScheduler loop",
        "",
        f"- machine: {info['cpu']}; GPU: {info['gpu'] or 'none'}",
        f"- python {info['python']}, torch {info['torch']}, diffusers {info['diffusers']}, "
        f"torch threads {info['threads']}",
        f"- mode: {'--quick' if quick else 'full'}; times are medians of interleaved rounds, in seconds",
        "- host memory: glibc's mmap and trim thresholds "
        + ("fixed for both sides (ddpm.hostmem)" if info["host_memory_kept"] else "left as they were"),
        "",
        "| workload | device | ours (s) | peer (s) | speedup | rounds | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['device']} | {r['ours_s']:.4g} | {r['peer_s']:.4g} | "
            f"{r['speedup']:.2f}x | {r['rounds']} | {verdict(r)} |"
        )
    lines += [
        "",
        "speedup = peer_s / ours_s; the peer is the same network and weights driven by diffusers' "
        "`DDPMScheduler` (documented loop for sampling; add_noise, MSE, backward, Adam for training); for the "
        "`sigma_mlp` rows, the 6.S183 MLP through the VE-VP bridge in diffusers' `DDIMScheduler` loop "
        "(add_noise, MSE, backward, AdamW for its training step).",
        "",
        "![speedup](speedup.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    plot(rows, out / "speedup.png")


def speedup_figure(rows: list[dict]) -> Figure:
    """One bar a row: its speedup (peer_s / ours_s) on a log scale, a black tick at its target."""
    labels = [f"{r['workload']} [{r['device'].split()[0]}]" for r in rows]
    fig = Figure(figsize=(8, 0.45 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    colours = ["tab:blue" if r["kind"] == "sample" else "tab:orange" for r in rows]
    speedups = [r["speedup"] for r in rows]
    lo, hi = min(speedups + [1.0]), max(speedups + [r["target"] or 1.0 for r in rows])
    ax.barh(labels, speedups, color=colours)
    for i, r in enumerate(rows):
        if r.get("target") is not None:
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ticks = [v for v in (0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50) if 0.8 * lo <= v <= 1.25 * hi]
    ax.set_xticks(ticks, [f"{v:g}x" for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("speedup over diffusers' loop (peer_s / ours_s); black ticks: targets")
    ax.legend(
        handles=[Patch(color="tab:blue", label="sampling"), Patch(color="tab:orange", label="training step")],
        loc="lower right",
    )
    ax.set_title("ddpm beside diffusers' DDPMScheduler loop")
    ax.invert_yaxis()
    return fig


def plot(rows: list[dict], path: Path) -> None:
    """Write :func:`speedup_figure` of ``rows`` to ``path``, atomically."""
    save_figure(speedup_figure(rows), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a shorter U-Net chain on CPU")
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.json, report.md, speedup.png")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "all"),
        default="all",
        help="cpu, cuda, or all (CPU always, and CUDA where one is present)",
    )
    parser.add_argument("--only", default=None, help="run only the workloads whose name contains this")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch's CPU threads for both sides (default: torch's own choice, one a core)",
    )
    parser.add_argument(
        "--glibc-default-malloc",
        action="store_true",
        help="leave glibc's mmap and trim thresholds as they are (CPU times then depend on the "
        "process's history; see ddpm/hostmem.py)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Both sides run in this process: with the thresholds fixed, neither pays page faults on its buffers.
    kept = not args.glibc_default_malloc and keep_freed_host_memory()
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    info = {**machine(), "host_memory_kept": kept}
    peer_name = f"diffusers {info['diffusers']} DDPMScheduler loop"
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for device in devices:
        for workload in workloads(device, quick=args.quick):
            if args.only and args.only not in workload.name:
                continue
            rows.append(run(workload, f"diffusers {info['diffusers']} {workload.peer}" if workload.peer else peer_name))
            r = rows[-1]
            print(
                f"{r['workload']:<28} {r['device']:<22} ours {r['ours_s']:.4g} s  peer {r['peer_s']:.4g} s  "
                f"speedup {r['speedup']:.2f}x  {verdict(r)}",
                flush=True,
            )
            (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    write_report(rows, info, args.out, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
