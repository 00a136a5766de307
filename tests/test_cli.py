"""The `ddpm` command line: train, sample, elbo, derive; its errors on bad input; its progress bar."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import flip_tensor_bytes  # tests/ is on sys.path under pytest's default import mode

import ddpm.cli
from ddpm.cli import build_parser, main
from ddpm.data.mnist import write_idx
from ddpm.train import load_checkpoint, save_checkpoint

QUICK = ["--T", "40", "--width", "16", "--depth", "2", "--batch-size", "64", "--device", "cpu"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run(argv: list[str], capsys) -> tuple[int | str | None, str, str]:
    """``ddpm ARGV`` in this process: (exit status, stdout, stderr); argparse's own exits included."""
    status: int | str | None
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "tg", "--steps", "20", "--samples", "300", "--out", str(out), *QUICK]) == 0
    return out


def test_train_writes_checkpoint_plots_samples_and_report(toy_run):
    names = {p.name for p in toy_run.iterdir()}
    assert {"checkpoint.pt", "loss.png", "samples.png", "samples.pt", "samples_quality.json"} <= names
    assert torch.load(toy_run / "samples.pt", weights_only=True).shape == (300, 2)
    report = json.loads((toy_run / "samples_quality.json").read_text())
    assert report["n"] == report["samples_drawn"] == 300  # the report itself is tested in test_metrics.py
    assert type(report["n"]) is int and type(report["n_permutations"]) is int
    assert (toy_run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_files_have_the_permissions_of_the_umask(toy_run):
    """Checkpoints and figures are written through temporary files, which mkstemp makes 0600; the
    results must be readable as any file the user creates."""
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("checkpoint.pt", "loss.png", "samples.png", "samples.pt", "samples_quality.json"):
        assert (toy_run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_sample_from_checkpoint(toy_run, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert (
        main(
            [
                "sample",
                str(toy_run / "checkpoint.pt"),
                "-n",
                "50",
                "--out",
                str(png),
                "--sigma2",
                "beta_tilde",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert torch.load(png.with_suffix(".pt"), weights_only=True).shape == (50, 2)
    assert "energy" in capsys.readouterr().out.lower()


def test_the_samples_figure_carries_the_quality_report_it_printed(toy_run, tmp_path, monkeypatch):
    import ddpm.plot

    seen = {}
    real = ddpm.plot.scatter_over_density
    monkeypatch.setattr(ddpm.plot, "scatter_over_density", lambda *a, **k: seen.update(k) or real(*a, **k))
    png = tmp_path / "s.png"
    assert main(["sample", str(toy_run / "checkpoint.pt"), "-n", "50", "--out", str(png), "--device", "cpu"]) == 0
    written = json.loads(png.with_name("s_quality.json").read_text())
    assert seen["report"]["energy_distance"] == written["energy_distance"]


def test_sample_says_how_many_samples_the_quality_report_measured(toy_run, tmp_path, capsys, monkeypatch):
    """More samples than the report compares (2000 by default; 100 here, to stay quick).

    said, and in the JSON.
    """
    monkeypatch.setattr(ddpm.cli, "QUALITY_N", 100)
    png = tmp_path / "s.png"
    status, out, _ = run(
        ["sample", str(toy_run / "checkpoint.pt"), "-n", "150", "--out", str(png), "--device", "cpu"], capsys
    )
    assert status == 0
    assert "quality measured on the first 100 of the 150 samples" in out
    assert "100 model, 100 true" in out
    report = json.loads(png.with_name("s_quality.json").read_text())
    assert report["samples_drawn"] == 150 and report["n"] == 100
    assert torch.load(png.with_suffix(".pt"), weights_only=True).shape == (150, 2)


def test_elbo_in_bits_per_dim(toy_run, capsys):
    assert main(["elbo", str(toy_run / "checkpoint.pt"), "-n", "40", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "bits/dim" in out and "L_T" in out and "L_0" in out
    assert "true distribution" in out


def test_mnist_from_idx_files(tmp_path, capsys):
    """MNIST read from IDX files the test writes itself: train a U-Net two steps, sample, bound."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("t10k", 8)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "mnist",
                "--mnist-root",
                str(tmp_path),
                "--steps",
                "2",
                "--batch-size",
                "8",
                "--T",
                "5",
                "--samples",
                "4",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert torch.load(out / "samples.pt", weights_only=True).shape == (4, 1, 28, 28)
    assert main(["elbo", str(out / "checkpoint.pt"), "-n", "4", "--device", "cpu"]) == 0
    assert "bits/dim" in capsys.readouterr().out
    status, out_, err = run(["elbo", str(out / "checkpoint.pt"), "-n", "9", "--device", "cpu"], capsys)
    assert status == 2 and err == "ddpm elbo: error: -n must be at most the 8 images of MNIST's test split, got 9\n"


# -- a user's mistake: one line on stderr naming the value and what was expected, exit 2, before any work --

BAD_TRAIN = [
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--steps", "ten"], "--steps must be an integer >= 1, got 'ten'"),
    (["--width", "0"], "--width must be an integer >= 1, got 0"),
    (["--depth", "0"], "--depth must be an integer >= 1, got 0"),
    (["--samples", "0"], "--samples must be an integer >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["--batch-size", "-64"], "--batch-size must be an integer >= 1, got -64"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1, got 0"),
    (["--T", "0"], "--T must be an integer >= 1, got 0"),
    (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--ema", "1.5"], "--ema must lie in [0, 1) (0 for no EMA), got 1.5"),
    (["--ema", "-0.1"], "--ema must lie in [0, 1) (0 for no EMA), got -0.1"),
    (["--beta-1", "2"], "--beta-1 must lie in (0, 1), got 2"),
    (["--beta-T", "1.5"], "--beta-T must lie in (0, 1), got 1.5"),
    (["--beta-1", "0.5"], "--beta-1 must not exceed --beta-T, got --beta-1 0.5 and --beta-T 0.02"),
    (["--schedule", "cosine", "--beta-T", "0.01"], "--beta-1 and --beta-T apply to --schedule linear only"),
    (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
    (["--device", "bogus"], "--device must be a torch device such as cpu, cuda or cuda:1, got 'bogus'"),
    (["--device", "cuda:99"], "--device cuda:99: "),  # no CUDA, or fewer devices: either way, named
    (["--device", "meta"], "--device must be cpu, cuda, cuda:N or mps, got 'meta'"),
    (["--data", "svhn"], "--data: invalid choice: 'svhn'"),
    (["--data", "mnist"], "--data mnist needs --mnist-root"),
    (["--data", "tg", "--network", "unet"], "--network unet takes images: use it with --data mnist, not --data tg"),
    (
        ["--data", "mnist", "--network", "unet", "--width", "8", "--mnist-root", "."],
        "--width and --depth apply to --network fc only",
    ),
    (["--data", "tg", "--mnist-root", "."], "--mnist-root applies to --data mnist only, not --data tg"),
    (["--data", "mnist", "--mnist-root", "nowhere"], "--mnist-root: the MNIST folder 'nowhere' does not exist"),
    (["--out", "a_file"], "--out must be a folder, got the file 'a_file'"),
]


@pytest.mark.parametrize("argv, message", BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_values_are_one_line_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a_file").write_text("")
    status, out, err = run(["train", *argv], capsys)
    assert status == 2 and out == ""
    assert err.startswith("ddpm train: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no run folder: nothing was started


def test_mnist_missing_files_are_named(tmp_path, capsys):
    status, _, err = run(["train", "--data", "mnist", "--mnist-root", str(tmp_path), "--device", "cpu"], capsys)
    assert status == 2 and err.count("\n") == 1 and "train-images-idx3-ubyte" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "CKPT", "-n", "0"], "-n must be an integer >= 1, got 0"),
        (["sample", "CKPT", "--sigma2", "beta_bar"], "--sigma2: invalid choice: 'beta_bar'"),
        (["sample", "CKPT", "--seed", "-2"], "--seed must be an integer in [0, 4294967295], got -2"),
        (["sample", "CKPT", "--device", "bogus"], "--device must be a torch device"),
        (["sample", "CKPT", "--out", "."], "--out must name a file, got the folder '.'"),
        (["sample", "missing.pt"], "no checkpoint at 'missing.pt'"),
        (["sample", "."], "no checkpoint at '.' (it is a directory)"),
        (["elbo", "CKPT", "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["elbo", "CKPT", "--batch-size", "-5"], "--batch-size must be an integer >= 1, got -5"),
        (["elbo", "CKPT", "-n", "0"], "-n must be an integer >= 1, got 0"),
        (["elbo", "CKPT", "--mnist-root", "."], "--mnist-root applies to MNIST checkpoints only"),
        (["elbo", "CKPT", "--device", "cuda:99"], "--device cuda:99: "),
        (["derive", "nonsense"], "no claim named 'nonsense'"),
    ],
)
def test_bad_sample_and_elbo_values(argv, message, toy_run, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(toy_run / "checkpoint.pt") if a == "CKPT" else a for a in argv]
    status, out, err = run(argv, capsys)
    assert status == 2 and out == ""
    assert err.startswith(f"ddpm {argv[0]}: error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_damaged_checkpoints_are_one_line(toy_run, tmp_path, capsys):
    """Corrupt, foreign, weights of another width, no 'ema' entry: one line each, from every command."""
    good = toy_run / "checkpoint.pt"
    corrupt = tmp_path / "corrupt" / "checkpoint.pt"
    corrupt.parent.mkdir()
    corrupt.write_bytes(good.read_bytes())
    flip_tensor_bytes(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    ckpt = load_checkpoint(good)
    wider = tmp_path / "wider.pt"
    from dataclasses import replace

    save_checkpoint(
        wider, replace(ckpt, config=replace(ckpt.config, net_config={**ckpt.config.net_config, "num_hidden": 32}))
    )
    payload = torch.load(good, weights_only=True)
    del payload["ema"]
    no_ema = tmp_path / "no_ema.pt"
    torch.save(payload, no_ema)
    cases = [
        (corrupt, "is a corrupt ddpm checkpoint: its contents changed after it was written"),
        (foreign, "is not a ddpm checkpoint (foreign)"),
        (wider, "its 'model' weights do not fit its configuration"),
        (no_ema, "is a corrupt ddpm checkpoint: it lacks the entry 'ema'"),
    ]
    for path, message in cases:
        for command in ("sample", "elbo"):
            status, out, err = run([command, str(path), "-n", "4", "--device", "cpu"], capsys)
            assert status == 2 and out == "" and err.count("\n") == 1 and message in err, (command, err)
    # train resuming into a folder whose checkpoint is corrupt: refused before the first line of output
    before = corrupt.read_bytes()
    status, out, err = run(["train", "--data", "tg", "--out", str(corrupt.parent), *QUICK], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and "is a corrupt ddpm checkpoint" in err
    assert corrupt.read_bytes() == before


def test_resume_with_another_configuration_is_refused_up_front(toy_run, capsys):
    status, out, err = run(
        ["train", "--data", "tg", "--steps", "20", "--out", str(toy_run), *QUICK, "--lr", "0.1"], capsys
    )
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "holds a run with another configuration (lr 0.002 there, 0.1 here)" in err and "--no-resume" in err


def test_every_option_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert isinstance(commands, dict)  # the subcommands' parsers by name
    for name in ("train", "sample", "elbo"):
        for action in commands[name]._actions:
            assert action.help, f"ddpm {name} {'/'.join(action.option_strings) or action.dest} has no help text"


# -- progress: a tqdm bar on a terminal, nothing on a pipe or a log, nothing with --quiet ----------------


def on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run ``ddpm ARGV`` with stderr on a pseudo-terminal: (exit status, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "ddpm.cli", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=ENV,
    )
    os.close(slave)
    assert child.stdout is not None
    screen = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    out = child.stdout.read().decode()
    child.stdout.close()
    return child.wait(timeout=120), out, screen.decode(errors="replace")


TRAIN = ["train", "--data", "tg", "--steps", "60", "--samples", "16", *QUICK]


def test_progress_shows_on_a_terminal_with_the_running_loss(tmp_path):
    status, out, screen = on_a_terminal([*TRAIN, "--out", str(tmp_path)])
    assert status == 0, screen
    assert "train: 100%" in screen and "60/60" in screen and "loss=" in screen, screen
    assert "sample: 100%" in screen and "40/40" in screen
    assert "\r" in screen  # redrawn in place


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal (of no known size) and keeps what is written to it."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


def test_quiet_silences_the_terminal(tmp_path, toy_run, monkeypatch, capsys):
    status, out, screen = on_a_terminal([*TRAIN, "--out", str(tmp_path), "--quiet"])
    assert status == 0 and screen == ""
    assert "energy distance" in out  # the results still go to stdout
    for argv in (
        ["sample", str(toy_run / "checkpoint.pt"), "-n", "8", "--out", str(tmp_path / "s.png")],
        ["elbo", str(toy_run / "checkpoint.pt"), "-n", "8"],
    ):
        for quiet in (False, True):
            terminal = FakeTerminal()
            monkeypatch.setattr(sys, "stderr", terminal)
            assert main([*argv, "--device", "cpu"] + ["--quiet"] * quiet) == 0
            monkeypatch.undo()
            shown = terminal.getvalue()
            assert (shown == "") if quiet else (f"{argv[0]}: 100%" in shown), (argv, quiet, shown)
            assert "bits/dim" in capsys.readouterr().out or argv[0] == "sample"


def test_nothing_but_notes_on_a_non_terminal_stderr(tmp_path, capsys):
    """stderr not a terminal (a pipe, a log, CI).

    No bar at all; train's two notes, sample and elbo silent.
    """
    status, _, err = run([*TRAIN, "--out", str(tmp_path)], capsys)
    lines = err.splitlines()
    assert status == 0 and len(lines) == 2, err
    assert lines[0].startswith("training fc on tg for 60 steps") and lines[1].startswith("trained in"), err
    for argv in (
        ["sample", str(tmp_path / "checkpoint.pt"), "-n", "8"],
        ["elbo", str(tmp_path / "checkpoint.pt"), "-n", "8"],
    ):
        status, _, err = run([*argv, "--device", "cpu"], capsys)
        assert status == 0 and err == "", err


def test_progress_shows_in_a_notebook(monkeypatch):
    """In Jupyter stderr is no terminal, but the bar belongs there: tqdm.auto draws it (a widget where
    ipywidgets is installed, text otherwise); an ipykernel among the loaded modules is the sign."""
    import types

    from ddpm.train import progress_bar

    with progress_bar(10, "x") as bar:
        assert bar.disable  # pytest's captured stderr: no terminal, no notebook
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    with progress_bar(10, "x") as bar:
        assert not bar.disable
    with progress_bar(10, "x", show=False) as bar:
        assert bar.disable  # --quiet wins


def test_derive_lists_and_prints_claims(capsys):
    assert main(["derive"]) == 0
    listing = capsys.readouterr().out
    assert "ex33" in listing
    assert main(["derive", "ex33"]) == 0
    assert capsys.readouterr().out.strip()


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "ddpm.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "sample", "elbo", "derive", "verify"):
        assert command in result.stdout
