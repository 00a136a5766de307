"""The `ddpm` command line: train, sample, elbo, derive, and its errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ddpm.cli import main
from ddpm.data.mnist import write_idx

QUICK = ["--T", "40", "--width", "16", "--depth", "2", "--batch-size", "64", "--device", "cpu"]


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
    assert report["n"] > 0  # the report itself is tested in test_metrics.py
    assert (toy_run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_from_checkpoint(toy_run, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert main(["sample", str(toy_run / "checkpoint.pt"), "-n", "50", "--out", str(png), "--sigma2", "beta_tilde",
                 "--device", "cpu"]) == 0
    assert torch.load(png.with_suffix(".pt"), weights_only=True).shape == (50, 2)
    assert "energy" in capsys.readouterr().out.lower()


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
    assert main(["train", "--data", "mnist", "--mnist-root", str(tmp_path), "--steps", "2", "--batch-size", "8",
                 "--T", "5", "--samples", "4", "--out", str(out), "--device", "cpu"]) == 0
    assert torch.load(out / "samples.pt", weights_only=True).shape == (4, 1, 28, 28)
    assert main(["elbo", str(out / "checkpoint.pt"), "-n", "4", "--device", "cpu"]) == 0
    assert "bits/dim" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "0"], "steps must be >= 1, got 0"),
    (["train", "--data", "mnist"], "--mnist-root"),
    (["train", "--data", "tg", "--network", "unet", "--width", "8"], "--width and --depth apply to --network fc"),
    (["train", "--T", "0"], "T must be >= 1, got 0"),
    (["train", "--beta-T", "1.5"], "beta_T = 1.5 is outside the open interval (0, 1)"),
    (["sample", "missing.pt"], "no checkpoint at 'missing.pt'"),
    (["derive", "nonsense"], "no claim named 'nonsense'"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_mnist_missing_folder_names_the_files(tmp_path, capsys):
    assert main(["train", "--data", "mnist", "--mnist-root", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


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
