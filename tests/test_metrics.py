"""The energy distance against scipy and its expectation, the permutation p-value, the quality report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import norm

import ddpm.metrics as metrics
from ddpm.metrics import energy_distance, format_report, permutation_test, quality_report
from ddpm.oracles import GaussianMixture
from ddpm.stats import assert_power, check_mc, mean_stderr

# Deterministic float64 comparisons: the three means are sums of O(n^2) distances of size ~1, each
# rounded to ~1e-16 relative, and E_{n,m} >= 1e-3 here, so summation order changes it by < 1e-11
# relative; 1e-10 leaves room and still catches any wrong weight or a missing pair (>= 1e-3 relative).
RTOL = 1e-10


def scipy_energy(x: np.ndarray, y: np.ndarray) -> float:
    """The V-statistic 2 mean|x - y| - mean|x - x'| - mean|y - y'|, pairs i = j included [SR13]."""
    return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()


# -- energy_distance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, m, d", [(1, 1, 1), (7, 3, 2), (40, 55, 5)])
def test_energy_distance_matches_scipy(gen, n, m, d):
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(m, d, generator=gen, dtype=torch.float64) + 0.3
    expected = scipy_energy(x.numpy(), y.numpy())
    assert energy_distance(x, y) == pytest.approx(expected, rel=RTOL, abs=0)


def test_energy_distance_in_blocks_equals_in_one(gen, monkeypatch):
    x = torch.randn(103, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(61, 3, generator=gen, dtype=torch.float64) + 0.2
    whole = energy_distance(x, y)
    monkeypatch.setattr(metrics, "CHUNK", 500)  # blocks of 4 to 8 rows, the last one short
    assert energy_distance(x, y) == pytest.approx(whole, rel=RTOL, abs=0)
    assert whole == pytest.approx(scipy_energy(x.numpy(), y.numpy()), rel=RTOL, abs=0)


def test_energy_distance_of_point_masses_is_twice_their_distance():
    """n copies of a and m copies of b: E = 2 |a - b| exactly as the V-statistic, not as a U-statistic."""
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert energy_distance(a.expand(4, 2), b.expand(9, 2)) == pytest.approx(10.0, rel=1e-15)


def test_energy_distance_is_zero_for_equal_samples_and_grows_with_a_shift(gen):
    x = torch.randn(300, 2, generator=gen)
    y = torch.randn(300, 2, generator=gen)
    assert energy_distance(x, x.clone()) == 0.0  # 2 A - A - A with A computed identically twice
    # Shifts of 1 sd and more: at n = 300 the energy distance of a shift d ~ 1 is ~0.4 while the
    # unshifted value is ~0.01 +- 0.01, so no seed can reorder them (a shift of 0.25, ~0.03, could).
    shifted = [energy_distance(x, y + torch.tensor([s, 0.0])) for s in (1.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in zip(shifted, shifted[1:])), shifted
    assert energy_distance(x, y) < shifted[0]


def test_energy_distance_flattens_images(gen):
    x = torch.rand(5, 1, 3, 3, generator=gen)
    y = torch.rand(6, 1, 3, 3, generator=gen)
    assert energy_distance(x, y) == pytest.approx(energy_distance(x.flatten(1), y.flatten(1)), rel=1e-15)


def expected_abs(mu: float, var: float) -> float:
    """E|Z| for Z ~ N(mu, var): sigma sqrt(2/pi) exp(-mu^2 / 2 var) + mu (1 - 2 Phi(-mu / sigma))."""
    sigma = math.sqrt(var)
    return sigma * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * var)) + mu * (1 - 2 * norm.cdf(-mu / sigma))


def test_energy_distance_expectation_is_population_value_plus_v_statistic_bias(gen):
    """E[E_{n,m}] = D^2 + E|X - X'| / n + E|Y - Y'| / m for X ~ N(0, 1), Y ~ N(mu, 1) in one dimension.

    D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'| with X - Y ~ N(-mu, 2), X - X' ~ N(0, 2). At n = m = 40
    and 600 replicates the V-statistic's bias 2 (2 / sqrt(pi)) / 40 = 0.056 is about 15 standard errors,
    so the planted U-statistic (pairs i = j left out, mean D^2) fails the same check.
    """
    n, mu, reps = 40, 0.5, 600
    x = torch.randn(reps, n, 1, generator=gen, dtype=torch.float64)
    y = torch.randn(reps, n, 1, generator=gen, dtype=torch.float64) + mu
    e_xx = expected_abs(0.0, 2.0)
    d2 = 2 * expected_abs(-mu, 2.0) - 2 * e_xx
    expected = d2 + 2 * e_xx / n
    v = torch.tensor([energy_distance(a, b) for a, b in zip(x, y)])
    check_mc("E[E_{n,m}]", *mean_stderr(v), expected, reps)

    def u_statistic(a, b):  # the planted deviation: within-sample means over i != j
        return 2 * torch.cdist(a, b).mean() - (torch.cdist(a, a).sum() + torch.cdist(b, b).sum()) / (n * (n - 1))

    u = torch.stack([u_statistic(a, b) for a, b in zip(x, y)])
    with pytest.raises(AssertionError, match="E_{n,m}"):
        check_mc("E[E_{n,m}] of the U-statistic", *mean_stderr(u), expected, reps)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(3, 2), torch.zeros(3, 3), "same dimension"),
        (torch.zeros(0, 2), torch.zeros(3, 2), r"n >= 1"),
        (torch.zeros(3), torch.zeros(3), r"shape \(n, ...\)"),
        (torch.tensor([[0.0, math.nan]]), torch.zeros(3, 2), "non-finite"),
    ],
)
def test_energy_distance_rejects_bad_samples(x, y, match):
    with pytest.raises(ValueError, match=match):
        energy_distance(x, y)


# -- permutation_test ---------------------------------------------------------------------------------


def test_permutation_fast_path_equals_recomputing_each_split(gen):
    """The pooled-matrix path of energy_distance against recomputing scipy's statistic on the same splits."""
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(45, 2, generator=gen, dtype=torch.float64) + 0.3
    seed = int(torch.randint(2**31, (1,), generator=gen))
    fast = permutation_test(x, y, n_permutations=300, generator=torch.Generator().manual_seed(seed))
    slow = permutation_test(
        x,
        y,
        lambda a, b: scipy_energy(a.numpy(), b.numpy()),
        n_permutations=300,
        generator=torch.Generator().manual_seed(seed),
    )
    assert fast[0] == pytest.approx(slow[0], rel=RTOL, abs=0)
    assert fast[0] == pytest.approx(energy_distance(x, y), rel=RTOL, abs=0)
    assert fast[1] == slow[1]


def test_permutation_p_value_counts_ties_as_at_least_as_extreme(gen):
    """x = (1), y = (1, 0, 0), statistic mean(x) - mean(y): half the splits tie the observed value.

    So #{permuted >= observed} ~ Binomial(P, 1/2) and E[p] = (1 + P / 2) / (1 + P). The planted
    strict count #{permuted > observed} = 0 gives p = 1 / (1 + P), which the same check rejects.
    """
    P = 1000
    x, y = torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    observed, p = permutation_test(x, y, lambda a, b: float(a.mean() - b.mean()), n_permutations=P, generator=gen)
    assert observed == pytest.approx(2 / 3, rel=1e-15)
    expected, stderr = (1 + P / 2) / (1 + P), math.sqrt(P / 4) / (1 + P)
    check_mc("permutation p with ties", p, stderr, expected, P)
    with pytest.raises(AssertionError):
        check_mc("planted strict count", 1 / (1 + P), stderr, expected, P)


def check_null_p_values_are_uniform(shift: float, gen: torch.Generator, replicates: int = 300) -> None:
    """Under equal distributions, p = (1 + #{permuted >= observed}) / (1 + P) is uniform on
    {1/(P+1), ..., 1} (the observed split is exchangeable with the permuted ones; continuous data, no
    ties), so P(p <= 10 / (P + 1)) = 10 / (P + 1) exactly. Held to that over independent replicates."""
    P, alpha = 99, 10 / 100
    small = [
        permutation_test(*samples(shift, gen), n_permutations=P, generator=gen)[1] <= alpha + 1e-12
        for _ in range(replicates)
    ]
    frac = sum(small) / replicates
    check_mc("P(p <= 0.1) under the null", frac, math.sqrt(alpha * (1 - alpha) / replicates), alpha, replicates)


def samples(shift: float, gen: torch.Generator, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws of N(0, I) and n of N((shift, 0), I) in two dimensions."""
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen) + torch.tensor([shift, 0.0])


def test_permutation_p_value_is_valid_under_the_null(gen):
    check_null_p_values_are_uniform(0.0, gen)


def test_permutation_p_value_has_power(gen):
    """A shift of 1.5 sd at n = 40: nearly every replicate has p <= 0.1, z ~ 50 >> k = 4.9."""
    with pytest.raises(AssertionError, match="under the null"):
        check_null_p_values_are_uniform(1.5, gen)


def test_permutation_test_is_reproducible_and_validates(gen):
    x, y = samples(0.2, gen)
    first = permutation_test(x, y, n_permutations=50, generator=torch.Generator().manual_seed(3))
    assert first == permutation_test(x, y, n_permutations=50, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_test(x, y, n_permutations=0)
    with pytest.raises(ValueError, match="same dimension"):
        permutation_test(x, torch.zeros(4, 3))


# -- quality_report -----------------------------------------------------------------------------------


class UnitSquare:
    """Uniform on [0, 1]^2: log p = 0 inside, -inf outside; a stand-in with a bounded support."""

    def sample(self, n, generator=None):
        return torch.rand(n, 2, generator=generator)

    def log_prob(self, x):
        return torch.where(((x >= 0) & (x <= 1)).all(-1), 0.0, -math.inf).to(x.dtype)


def test_quality_report_counts_the_support(gen):
    model = UnitSquare().sample(400, gen)
    model[::2] += 2.0  # every other sample leaves the support
    report = quality_report(model, UnitSquare(), n=400, n_permutations=100, generator=gen)
    assert report["support"] == 0.5 and report["log_prob"] == 0.0
    assert report["baseline_support"] == 1.0 and report["baseline_log_prob"] == 0.0
    assert report["p_value"] == pytest.approx(1 / 101)  # no random split is as far apart as model and truth
    assert type(report["n"]) is int and type(report["n_permutations"]) is int and report["uniform"] is True
    assert all(type(v) is float for k, v in report.items() if k not in ("n", "n_permutations", "uniform"))


def test_quality_report_of_true_samples_matches_the_entropy(gen):
    """Samples of N(0, 0.3^2 I) itself: E[log p] = -log(2 pi 0.3^2) - 1 in two dimensions, for both.

    log p(X) = -log(2 pi s^2) - |Z|^2 / 2 has standard deviation 1, so at n = 2000 a planted missing
    "-1" is 45 standard errors away.
    """
    gaussian = GaussianMixture.isotropic([1.0], [[0.0, 0.0]], 0.3)
    samples = gaussian.sample(3000, gen)
    report = quality_report(samples, gaussian, generator=gen)
    assert report["n"] == 2000 and report["support"] == 1.0 and report["uniform"] is False
    expected, stderr = -math.log(2 * math.pi * 0.09) - 1, 1 / math.sqrt(2000)
    check_mc("mean log p of model samples", report["log_prob"], stderr, expected, 2000)
    check_mc("mean log p of true samples", report["baseline_log_prob"], stderr, expected, 2000)
    planted = check_mc("entropy without -1", report["log_prob"], stderr, expected + 1, 2000, raise_on_fail=False)
    assert_power(planted)


def test_quality_report_uses_at_most_the_samples_given(gen):
    report = quality_report(torch.rand(50, 2, generator=gen), UnitSquare(), n=2000, n_permutations=20, generator=gen)
    assert report["n"] == 50 and report["n_permutations"] == 20


def test_format_report_has_one_line_per_item(gen):
    gaussian = GaussianMixture.isotropic([1.0], [[0.0, 0.0]], 0.3)
    report = quality_report(gaussian.sample(100, gen), gaussian, n=100, n_permutations=20, generator=gen)
    lines = format_report(report).splitlines()
    assert len(lines) == 5
    assert "100 model, 100 true (20 permutations)" in lines[0]
    assert f"{report['energy_distance']:.3e}" in lines[1] and f"{report['p_value']:.3f}" in lines[1]
    assert f"mean log p(x) of model samples:   {report['log_prob']:.4f}" in lines[3]
    assert "100.0% inside the support" in lines[3]


def test_format_report_of_a_uniform_density_reports_the_support_alone(gen):
    """Uniform on its support (the Chequerboard, here the unit square): log p is one number inside, so the
    model's and the truth's means are equal whatever the model; the report says so, once, and gives the shares."""
    model = UnitSquare().sample(100, gen)
    model[:25] += 2.0
    report = quality_report(model, UnitSquare(), n=100, n_permutations=20, generator=gen)
    assert report["uniform"] is True and report["log_prob"] == report["baseline_log_prob"] == 0.0
    lines = format_report(report).splitlines()
    assert len(lines) == 5 and not any(line.startswith("mean log p") for line in lines)
    assert lines[3].startswith("model samples inside the support: 75.0%") and "uniform" in lines[3]
    assert lines[4] == "true samples inside the support:  100.0%"
