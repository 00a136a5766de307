"""The data sets: the toy sets' exact densities and samplers against independent references, MNIST's
IDX files (round trip, missing and corrupt files) and the two pixel maps into [-1, 1]."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from scipy.stats import multivariate_normal, norm

from ddpm.data import DATASETS, Chequerboard, TwoGaussians, toy_dataset
from ddpm.data.mnist import FILES, dequantise, load_mnist, read_idx, to_grid, write_idx
from ddpm.oracles import GaussianMixture
from ddpm.stats import assert_power, binomial_z, check_mc

# Draws per sampler check: a binomial share of 0.2 has stderr 0.0018, so the planted 0.05 shifts sit at
# z ~ 28 (sd ~1.1), about 11 sd beyond the 3k ~ 16 that assert_power asks. At 20,000 draws they sat at
# z ~ 18, 2-3 sd beyond it: seed 40 of the sweep fell short (z = 15.4).
N = 50_000


# -- toy sets: densities ------------------------------------------------------------------------------


def midpoint_integral(log_prob, lo: float, hi: float, cells: int) -> float:
    """The midpoint rule for the integral of exp(log_prob) over [lo, hi]^2 on cells x cells squares.

    In float64.
    """
    h = (hi - lo) / cells
    c = lo + h * (torch.arange(cells, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(c, c)
    return float(torch.exp(log_prob(grid)).sum() * h * h)


def test_two_gaussians_integrates_to_one():
    # Over [-3, 3]^2 the components (std 0.2, centres at +-0.5) leave out less than 1e-20 of their mass,
    # and the midpoint rule for a Gaussian of std s on step h errs by about 2 exp(-2 pi^2 s^2 / h^2) < 1e-100
    # (Poisson summation): what remains is the float64 rounding of the 90000-term sum, < 1e-12.
    assert midpoint_integral(TwoGaussians().log_prob, -3, 3, 300) == pytest.approx(1, rel=1e-12, abs=0)


def test_chequerboard_integrates_to_one():
    # Cells of side 2/9 tile [-5/3, 5/3]^2 along the squares' edges, so every midpoint lies inside a
    # square or off the support and the rule is exact for the piecewise constant density up to rounding.
    assert midpoint_integral(Chequerboard().log_prob, -5 / 3, 5 / 3, 15) == pytest.approx(1, rel=1e-12, abs=0)


@pytest.mark.parametrize("dataset", [TwoGaussians(), Chequerboard()], ids=["tg", "cb"])
def test_quadrature_rejects_a_density_without_the_jacobian(dataset):
    """Planted: the [0, 1]^2 density used in [-1, 1]^2 coordinates, its log-Jacobian -2 log 2 forgotten."""
    lo, hi, cells = (-3, 3, 300) if dataset.name == "tg" else (-5 / 3, 5 / 3, 15)
    integral = midpoint_integral(lambda x: dataset.log_prob(x) + 2 * math.log(2), lo, hi, cells)
    assert integral != pytest.approx(1, rel=1e-12, abs=0)


def test_two_gaussians_log_prob_is_the_02460_mixture_moved_to_minus_one_one(gen):
    """log p(x) = log p_[0,1]((x + 1) / 2) - log 4, p_[0,1] the course's mixture, by scipy."""
    x = 4 * torch.rand(500, 2, generator=gen, dtype=torch.float64) - 2  # [-2, 2]^2: p > 1e-70, no underflow
    u = ((x + 1) / 2).numpy()
    p01 = 1 / 5 * multivariate_normal([0.75, 0.75], 0.1**2).pdf(u) + 4 / 5 * multivariate_normal(
        [0.25, 0.25], 0.1**2
    ).pdf(u)
    expected = np.log(p01) - math.log(4)
    # float64 throughout: both sides keep log p to a few ulp of its size (|log p| < 160).
    np.testing.assert_allclose(TwoGaussians().log_prob(x).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_two_gaussians_is_an_oracle_mixture():
    m = TwoGaussians().mixture
    assert isinstance(m, GaussianMixture)
    assert torch.equal(m.weights, torch.tensor([0.2, 0.8], dtype=torch.float64))
    assert torch.equal(m.means, torch.tensor([[0.5, 0.5], [-0.5, -0.5]], dtype=torch.float64))
    torch.testing.assert_close(m.covs, torch.full((2,), 0.04, dtype=torch.float64), rtol=1e-15, atol=0)


def test_chequerboard_log_prob_is_the_02460_board_moved_to_minus_one_one(gen):
    """Against the course's construction in [0, 1]^2.

    A uniform mixture of uniforms on the squares i + j even.
    """
    lows = torch.tensor([[i / 3, j / 3] for i in range(3) for j in range(3) if (i + j) % 2 == 0], dtype=torch.float64)
    squares = td.Independent(td.Uniform(lows, lows + 1 / 3, validate_args=False), 1, validate_args=False)
    course = td.MixtureSameFamily(td.Categorical(torch.ones(5, dtype=torch.float64)), squares, validate_args=False)
    u = lows[torch.randint(5, (400,), generator=gen)] + torch.rand(400, 2, generator=gen, dtype=torch.float64) / 3
    torch.testing.assert_close(Chequerboard().log_prob(2 * u - 1), course.log_prob(u) - math.log(4), rtol=1e-14, atol=0)


def test_chequerboard_support():
    cb = Chequerboard()
    inside = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [-0.9, 0.9], [-1 / 3, -1 / 3]])
    outside = torch.tensor([[0.0, -0.9], [-0.9, 0.0], [0.9, 0.0], [0.0, 0.9], [1.01, 1.0], [-1.0, -1.01], [5.0, 5.0]])
    assert torch.equal(cb.log_prob(inside), torch.full((6,), math.log(9 / 20)))
    assert torch.equal(cb.log_prob(outside), torch.full((7,), -math.inf))


# -- toy sets: samplers -------------------------------------------------------------------------------


def square_shares(x: torch.Tensor) -> torch.Tensor:
    """The share of the points x (n, 2) in each of the 5 support squares, told in [0, 1]^2 coordinates."""
    cell = torch.floor(3 * (x.double() + 1) / 2).clamp(0, 2)
    return torch.stack([((cell[:, 0] == i) & (cell[:, 1] == j)).double().mean() for i, j in Chequerboard.squares])


def check_square_shares(x: torch.Tensor, raise_on_fail: bool = True):
    """Each square's count held to its exact binomial tail at 1/5 (one check over the five)."""
    z = [binomial_z(round(float(share) * len(x)), len(x), 0.2) for share in square_shares(x)]
    return check_mc("chequerboard square shares", torch.tensor(z), 1.0, 0.0, len(x), raise_on_fail=raise_on_fail)


def test_chequerboard_samples_lie_in_the_support_in_equal_shares(gen):
    x = Chequerboard().sample(N, generator=gen)
    assert x.shape == (N, 2) and x.dtype == torch.float32
    assert torch.isfinite(Chequerboard().log_prob(x)).all()
    check_square_shares(x)


def test_chequerboard_checks_reject_planted_samplers(gen):
    x = Chequerboard().sample(N, generator=gen)
    # Planted: the map u -> 2u - 1 forgotten, samples left in [0, 1]^2.
    assert not torch.isfinite(Chequerboard().log_prob((x + 1) / 2)).all()
    # Planted: the first square drawn with probability 1/4, the others 3/16.
    corners = torch.tensor(Chequerboard.squares, dtype=torch.float64)
    k = torch.multinomial(torch.tensor([4.0, 3, 3, 3, 3]), N, replacement=True, generator=gen)
    skewed = -1 + 2 / 3 * (corners[k] + torch.rand(N, 2, generator=gen, dtype=torch.float64))
    assert_power(check_square_shares(skewed, raise_on_fail=False))


def upper_share_expected(weight_upper: float) -> float:
    """P(x_1 + x_2 > 0) for a two-Gaussian mixture.

    The mixture is weight_upper N((0.5, 0.5), 0.04 I) + (1 - weight_upper) N((-0.5, -0.5), 0.04 I).

    x_1 + x_2 is N(+-1, 2 * 0.04) within a component, so each side's probability is a normal tail.
    """
    tail = norm.sf(1 / math.sqrt(2 * 0.04))
    return weight_upper * (1 - tail) + (1 - weight_upper) * tail


def check_upper_share(x: torch.Tensor, raise_on_fail: bool = True):
    """The count above the diagonal held to its exact binomial tail."""
    z = binomial_z(int((x.double().sum(1) > 0).sum()), len(x), upper_share_expected(1 / 5))
    return check_mc("two gaussians upper share", z, 1.0, 0.0, len(x), raise_on_fail=raise_on_fail)


def test_two_gaussians_samples_have_the_02460_weights_and_mean(gen):
    x = TwoGaussians().sample(N, generator=gen)
    assert x.shape == (N, 2) and x.dtype == torch.float32
    check_upper_share(x)
    check_mean(x)


def check_mean(x: torch.Tensor, raise_on_fail: bool = True):
    mean, stderr = x.double().mean(0), x.double().std(0) / math.sqrt(len(x))
    return check_mc("two gaussians mean", mean, stderr, 1 / 5 * 0.5 + 4 / 5 * -0.5, len(x), raise_on_fail=raise_on_fail)


def test_two_gaussians_mean_check_rejects_the_unmoved_set(gen):
    """Planted: the map u -> 2u - 1 forgotten, draws left in [0, 1]^2 (mean 0.35 instead of -0.3)."""
    planted = (TwoGaussians().sample(N, generator=gen) + 1) / 2
    assert_power(check_mean(planted, raise_on_fail=False))


def test_two_gaussians_share_check_rejects_the_weights_1_5_and_3_5(gen):
    """Planted: weights [1/5, 3/5] (found in a copy of ToyData.py), which torch normalises to 1/4, 3/4."""
    planted = GaussianMixture.isotropic([1 / 4, 3 / 4], [[0.5, 0.5], [-0.5, -0.5]], 0.2).sample(N, generator=gen)
    assert_power(check_upper_share(planted, raise_on_fail=False))


def test_toy_dataset_by_name():
    assert DATASETS == ("tg", "cb", "swissroll", "mnist")
    assert isinstance(toy_dataset("tg"), TwoGaussians) and toy_dataset("tg").name == "tg"
    assert isinstance(toy_dataset("cb"), Chequerboard) and toy_dataset("cb").name == "cb"
    with pytest.raises(ValueError, match=r"unknown toy data set 'moons'; expected one of \['cb', 'swissroll', 'tg'\]"):
        toy_dataset("moons")


# -- MNIST files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 7 - 40).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)


def test_idx_header_is_the_standard_one(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("0000080100000003030104")
    write_idx(tmp_path / "ints", np.array([[1, -2]], dtype=np.int32))
    assert (tmp_path / "ints").read_bytes() == bytes.fromhex("00000c02000000010000000200000001fffffffe")


GOOD = bytes.fromhex("000008020000000200000002") + bytes(range(4))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "bad magic number"),
        (b"\x12\x34" + GOOD[2:], "bad magic number 1234"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "bad magic number 00000702"),
        (GOOD[:9], "truncated: its header needs 12 bytes"),
        (GOOD[:-1], "truncated: shape (2, 2) of uint8 needs 4 data bytes, the file has 3"),
        (GOOD + b"\0", "trailing bytes"),
        (gzip.compress(GOOD, mtime=0)[:-6], "corrupt gzip file"),
    ],
    ids=["empty", "magic", "magic-type", "short-header", "short-data", "trailing", "gzip"],
)
def test_corrupt_idx_is_a_value_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "broken-idx2-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken-idx2-ubyte") as info:
        read_idx(path)
    assert match in str(info.value)


def fake_mnist(folder, split: str, n: int, gen: torch.Generator, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8).numpy()
    labels = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8).numpy()
    folder.mkdir(parents=True, exist_ok=True)
    image_name, label_name = FILES[split]
    write_idx(folder / f"{image_name}{suffix}", images)
    write_idx(folder / f"{label_name}{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("layout, suffix", [(".", ""), (".", ".gz"), ("MNIST/raw", ".gz")])
def test_load_mnist(tmp_path, gen, layout, suffix):
    images, labels = fake_mnist(tmp_path / layout, "test", 7, gen, suffix)
    x, y = load_mnist(tmp_path, "test")
    assert x.dtype == torch.uint8 and x.shape == (7, 28, 28) and np.array_equal(x.numpy(), images)
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()


def test_missing_mnist_folder_or_file_says_what_to_put_where(tmp_path, gen):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        load_mnist(tmp_path / "nowhere")
    for text in ("nowhere", "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "MNIST/raw"):
        assert text in str(info.value)
    fake_mnist(tmp_path, "train", 3, gen)
    (tmp_path / FILES["train"][1]).unlink()
    with pytest.raises(FileNotFoundError, match="missing from") as info:
        load_mnist(tmp_path, "train")
    assert "train-labels-idx1-ubyte" in str(info.value).split(";")[0]
    assert "train-images-idx3-ubyte" not in str(info.value).split(";")[0]
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path, "test")


def test_mnist_files_of_the_wrong_kind(tmp_path, gen):
    fake_mnist(tmp_path, "train", 3, gen)
    write_idx(tmp_path / FILES["train"][1], np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*expected 3 uint8 labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / FILES["train"][0], np.zeros((3, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*expected uint8 \(N, 28, 28\)"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist(tmp_path, "validation")


# -- pixels into [-1, 1] ------------------------------------------------------------------------------


def test_dequantise_is_the_02460_transform(gen):
    k = torch.randint(0, 256, (50, 28, 28), generator=gen, dtype=torch.uint8)
    k[0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)
    state = gen.get_state()
    x = dequantise(k, generator=gen)
    u = torch.rand(k.shape, generator=torch.Generator().set_state(state))  # the same draws, replayed
    assert x.shape == (50, 1, 28, 28) and x.dtype == torch.float32
    # Bit for bit the sheet's ToTensor, x + rand / 255, (x - 0.5) * 2.
    assert torch.equal(x[:, 0], ((k.float() / 255 + u / 255) - 0.5) * 2.0)
    assert x.min() >= -1 and x.max() < 1 + 2 / 255
    # floor recovers k, but where u lies within float32 rounding of 0 or 1 (k + u lands on an integer).
    recovered = torch.floor((x[:, 0] / 2 + 0.5) * 255)
    clear = (u > 1e-4) & (u < 1 - 1e-4)
    assert torch.equal(recovered[clear], k[clear].float())
    assert (recovered - k.float()).abs().max() <= 1


def test_to_grid():
    k = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = to_grid(k)
    assert x.shape == (1, 1, 16, 16) and x.dtype == torch.float32
    # float32 round-to-nearest of 2k/255 - 1 in [-1, 1]: within half an ulp of 1, 2^-25.
    exact = 2 * torch.arange(256, dtype=torch.float64) / 255 - 1
    assert (x.flatten().double() - exact).abs().max() <= 2**-25
    assert x.flatten()[0] == -1 and x.flatten()[-1] == 1 and (x.flatten().diff() > 0).all()


def test_pixel_maps_reject_non_uint8():
    with pytest.raises(ValueError, match="expected uint8 images"):
        dequantise(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="expected uint8 images"):
        to_grid(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
