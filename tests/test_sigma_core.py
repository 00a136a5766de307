"""The sigma world's core against independent references.

Closed forms, exact rational rounding, mpmath,
and loops written here from the notebook's and the paper's text [6.S183 Q2, Q3; PY23 App. A; Song21 §4.3]."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import pytest
import torch

from ddpm.beta.schedule import cosine_schedule, linear_schedule
from ddpm.oracles import GaussianMixture, OptimalEps, SigmaOptimalEps
from ddpm.sigma.losses import sample_train_sigmas, sigma_loss
from ddpm.sigma.sampler import (
    ACCEL,
    DDIM,
    DDPM,
    eps_bar,
    gam_mu_sample,
    gam_mu_step,
    gam_mu_steps,
    gaussian_gam_law,
    gaussian_gam_recursion,
    step_levels,
)
from ddpm.sigma.schedule import (
    log_linear_sigmas,
    sample_sigmas,
    sigma_twin,
    sigmas_from_alpha_bar,
    trailing_indices,
    ve_to_vp,
    vp_to_ve,
)

F64 = torch.float64


# --- schedules --------------------------------------------------------------------------------------


def test_log_linear_sigmas_is_the_notebooks_schedule():
    s = log_linear_sigmas()
    assert s.dtype == F64 and s.shape == (200,)
    assert float(s[0]) == 0.005 and float(s[-1]) == 10.0
    ratios = s[1:] / s[:-1]  # a constant ratio (10 / 0.005)^(1/199)
    want = (10 / 0.005) ** (1 / 199)
    assert torch.allclose(ratios, torch.full_like(ratios, want), rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "kwargs", [dict(N=1), dict(sigma_min=0.0), dict(sigma_min=2.0, sigma_max=1.0), dict(sigma_max=float("inf"))]
)
def test_log_linear_sigmas_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        log_linear_sigmas(**kwargs)


def _round_half_even(q: Fraction) -> int:
    f = math.floor(q)
    rest = q - f
    return f + (1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and f % 2) else 0)


@pytest.mark.parametrize("N", [1, 2, 7, 200, 1000])
def test_trailing_indices_are_exact_rounding(N):
    for k in range(1, N + 1):
        want = [_round_half_even(Fraction(N) * (1 - Fraction(i, k))) - 1 for i in range(k)] + [0]
        assert trailing_indices(N, k) == want


def test_sample_sigmas_10_steps_of_the_notebook():
    s = log_linear_sigmas()
    got = sample_sigmas(s, 10)
    assert got.shape == (11,)
    assert torch.equal(got, s[[199, 179, 159, 139, 119, 99, 79, 59, 39, 19, 0]])
    assert (got[:-1] > got[1:]).all()
    with pytest.raises(ValueError, match="1..200"):
        sample_sigmas(s, 0)
    with pytest.raises(ValueError, match="increasing"):
        sample_sigmas(s.flip(0), 10)


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(100)], ids=["linear", "cosine"])
def test_sigma_twin_against_mpmath(schedule):
    twin, direct = sigma_twin(schedule), sigmas_from_alpha_bar(schedule.alpha_bar)
    assert twin[0] == 0 and direct[0] == 0
    with mpmath.workdps(30):
        ab = mpmath.mpf(1)
        for t in range(1, schedule.T + 1):
            ab *= 1 - mpmath.mpf(float(schedule.betas[t - 1]))
            want = float(mpmath.sqrt((1 - ab) / ab))
            assert abs(float(twin[t]) - want) <= 1e-13 * want, t
            assert abs(float(direct[t]) - want) <= 1e-12 * want, t


def test_bridge_is_one_division():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=F64)
    ab = torch.rand(5, generator=g, dtype=F64) * 0.9 + 0.05
    ve = vp_to_ve(x, ab)
    assert torch.allclose(ve, x / ab.sqrt()[:, None], rtol=1e-15, atol=0)
    assert torch.allclose(ve_to_vp(ve, ab), x, rtol=1e-15, atol=0)
    assert torch.allclose(vp_to_ve(x, 0.25), 2 * x, rtol=0, atol=0)
    with pytest.raises(ValueError):
        sigmas_from_alpha_bar(torch.tensor([1.0, 0.0]))


# --- the step ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu", [0.0, 0.25, 0.5, 0.9])
def test_step_levels_keep_the_marginal_level(mu):
    for s, sn in [(10.0, 7.0), (1.0, 0.5), (0.01, 0.005), (3.0, 0.0)]:
        p, eta = step_levels(s, sn, mu)
        assert 0 <= p <= sn
        assert math.isclose(p**2 + eta**2, sn**2, rel_tol=1e-14, abs_tol=1e-300)
        assert math.isclose(
            sn, s**mu * p ** (1 - mu), rel_tol=1e-14, abs_tol=1e-300
        )  # sigma' = sigma^mu sigma_p^(1-mu)
        pt, etat = step_levels(torch.tensor(s, dtype=F64), torch.tensor(sn, dtype=F64), mu)
        assert math.isclose(float(pt), p, rel_tol=1e-15, abs_tol=1e-300) and math.isclose(
            float(etat), eta, rel_tol=1e-14, abs_tol=1e-300
        )
    assert step_levels(2.0, 1.0, 0.0) == (1.0, 0.0)
    assert step_levels(2.0, 1.0, 0.5) == (0.5, math.sqrt(0.75))


def test_gam_mu_step_is_the_papers_update():
    g = torch.Generator().manual_seed(1)
    x, e, z = (torch.randn(4, 2, generator=g, dtype=F64) for _ in range(3))
    assert torch.equal(gam_mu_step(x, 2.0, 1.5, e), x - 0.5 * e)
    got = gam_mu_step(x, 2.0, 1.0, e, mu=0.5, z=z)
    assert torch.allclose(got, x - 1.5 * e + math.sqrt(0.75) * z, rtol=1e-15, atol=1e-15)
    per_sample = gam_mu_step(x, torch.tensor([2.0, 2, 1, 1], dtype=F64), torch.tensor([1.0, 1, 0.5, 0.5], dtype=F64), e)
    assert torch.allclose(per_sample, x - torch.tensor([1.0, 1, 0.5, 0.5], dtype=F64)[:, None] * e, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="noise z"):
        gam_mu_step(x, 2.0, 1.0, e, mu=0.5)
    with pytest.raises(ValueError, match="mu"):
        gam_mu_step(x, 2.0, 1.0, e, mu=1.0, z=z)
    assert torch.equal(eps_bar(x, None, 2.0), x)
    assert torch.allclose(eps_bar(x, e, 2.0), 2 * x - e, rtol=1e-15, atol=0)


def test_presets():
    assert DDIM == dict(gam=1.0, mu=0.0) and DDPM == dict(gam=1.0, mu=0.5) and ACCEL == dict(gam=2.0, mu=0.0)


class _Linear:
    """A toy eps_theta(x, sigma) = W x / (1 + sigma) + sigma b, recording its calls."""

    def __init__(self, dim: int, g: torch.Generator):
        self.W = torch.randn(dim, dim, generator=g, dtype=F64) * 0.3
        self.b = torch.randn(dim, generator=g, dtype=F64)
        self.calls: list[float] = []

    def __call__(self, x, sigma):
        assert sigma.shape == (x.shape[0],) and sigma.dtype == x.dtype
        self.calls.append(float(sigma[0]))
        return x @ self.W.T / (1 + sigma[:, None]) + sigma[:, None] * self.b


def _notebook_loop(model, sigmas, x, gam, mu, noise):
    """The sampler as the notebook's Q3 and PY23 App. A state it, with sigma' = sigma^mu sigma_p^(1 - mu)."""
    eps_prev, xs = None, []
    for i in range(len(sigmas) - 1):
        sig, sig_next = float(sigmas[i]), float(sigmas[i + 1])
        eps = model(x, torch.full((x.shape[0],), sig, dtype=x.dtype))
        e = eps if i == 0 else gam * eps + (1 - gam) * eps_prev
        sig_p = (
            sig_next
            if mu == 0
            else math.exp((math.log(sig_next) - mu * math.log(sig)) / (1 - mu))
            if sig_next > 0
            else 0.0
        )
        x = x - (sig - sig_p) * e
        if mu > 0:
            x = x + math.sqrt(sig_next**2 - sig_p**2) * noise[i]
        eps_prev = eps
        xs.append(x)
    return xs


@pytest.mark.parametrize("preset", [DDIM, DDPM, ACCEL, dict(gam=1.5, mu=0.3)], ids=["ddim", "ddpm", "accel", "other"])
def test_gam_mu_sample_against_the_loop_written_out(preset):
    g = torch.Generator().manual_seed(2)
    model = _Linear(3, g)
    sigmas = sample_sigmas(log_linear_sigmas(50, 0.01, 5.0), 7)
    seed = torch.Generator().manual_seed(3)
    got = list(gam_mu_steps(model, sigmas, shape=(6, 3), generator=seed, dtype=F64, **preset))
    replay = torch.Generator().manual_seed(3)
    x = float(sigmas[0]) * torch.randn(6, 3, generator=replay, dtype=F64)
    noise = [torch.randn(6, 3, generator=replay, dtype=F64) for _ in range(7)] if preset["mu"] > 0 else None
    want = _notebook_loop(model, sigmas, x, preset["gam"], preset["mu"], noise)
    assert len(got) == len(want) == 7
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-13, atol=1e-13)
    assert model.calls[:7] == pytest.approx(sigmas[:-1].tolist(), rel=1e-15)
    last = gam_mu_sample(model, sigmas, shape=(6, 3), generator=torch.Generator().manual_seed(3), dtype=F64, **preset)
    assert torch.equal(last, got[-1])


def test_gam_mu_sample_rejects_bad_levels():
    model = lambda x, s: x  # noqa: E731
    with pytest.raises(ValueError, match="decreasing"):
        gam_mu_sample(model, torch.tensor([1.0, 2.0]), shape=(2, 2))
    with pytest.raises(ValueError, match="> 0"):
        gam_mu_sample(model, torch.tensor([1.0, 0.0, 0.0]), shape=(2, 2))
    with pytest.raises(ValueError, match="shape"):
        gam_mu_sample(model, torch.tensor([1.0, 0.5]))


# --- the oracle and the closed-form law ----------------------------------------------------------------


def test_sigma_eps_star_of_a_gaussian_is_the_closed_form():
    m, c = torch.tensor([0.3, -1.0], dtype=F64), 0.25
    oracle = SigmaOptimalEps.gaussian(m, c)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(4), dtype=F64) * 3
    sigma = torch.linspace(0.01, 20, 7, dtype=F64)
    want = sigma[:, None] * (x - m) / (c + sigma[:, None] ** 2)
    # (x - E[x_0 | x]) / sigma loses |x| / sigma ulps to cancellation at small sigma: hold it to that scale
    scale = (x.abs() + m.abs()) / sigma[:, None] + want.abs()
    assert ((oracle(x, sigma) - want).abs() <= 1e-14 * scale).all()


def test_sigma_eps_star_is_the_beta_worlds_through_the_bridge():
    """eps*_VE(x_VP / sqrt(alpha_bar_t), sigma_t) = eps*_VP(x_VP, t) [Song21 §4.3].

    For a mixture and a finite set.
    """
    schedule = linear_schedule(100)
    twin = sigma_twin(schedule)
    g = torch.Generator().manual_seed(5)
    for mixture in (
        GaussianMixture.isotropic([0.3, 0.7], [[-1.0, 0.5], [1.0, 0.0]], [0.2, 0.5]),
        GaussianMixture.finite(torch.randn(9, 2, generator=g, dtype=F64)),
    ):
        t = torch.randint(1, 101, (16,), generator=g)
        x_vp = torch.randn(16, 2, generator=g, dtype=F64)
        vp = OptimalEps(mixture, schedule)(x_vp, t)
        ve = SigmaOptimalEps(mixture)(vp_to_ve(x_vp, schedule.alpha_bar[t]), twin[t])
        assert torch.allclose(ve, vp, rtol=1e-9, atol=1e-11)


def test_ideal_denoiser_is_the_softmax_over_points():
    g = torch.Generator().manual_seed(6)
    points, x = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    sigma = 0.7
    w = torch.softmax(-((x[:, None] - points[None]) ** 2).sum(-1) / (2 * sigma**2), dim=1)
    want = (x - w @ points) / sigma
    assert torch.allclose(SigmaOptimalEps.finite(points)(x, sigma), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gam", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("k", [10, 20])
def test_gaussian_law_is_the_samplers_affine_map(gam, k):
    """With mu = 0 the output is exactly m + gain (x_start - m): held for a batch of starts, to round-off."""
    m, c = torch.tensor([0.5, -0.25], dtype=F64), 0.25
    sigmas = sample_sigmas(log_linear_sigmas(), k)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 2, generator=g, dtype=F64) * 10
    out = gam_mu_sample(SigmaOptimalEps.gaussian(m, c), sigmas, x.clone(), gam=gam)
    gain, var = gaussian_gam_recursion(c, sigmas, gam)
    assert torch.allclose(out, m + gain * (x - m), rtol=1e-12, atol=1e-12)
    law = gaussian_gam_law(m, c, sigmas, gam)
    assert torch.allclose(law.mean, m * (1 - gain), rtol=1e-15, atol=0)
    assert math.isclose(float(law.std), abs(gain) * 10.0, rel_tol=1e-12)


def test_gaussian_law_scales_of_the_issue():
    """The output scale over the exact flow's, for c = 0.25 and 10 steps.

    It is about 0.83, 0.97, 1.09 at gam = 1, 1.5, 2.

    The exact flow dx/dsigma = eps*(x, sigma) = sigma (x - m) / (c + sigma^2) keeps (x - m) / sqrt(c + sigma^2),
    so started at sigma_max z it ends with scale sigma_max sqrt(c + sigma_min^2) / sqrt(c + sigma_max^2).
    """
    sigmas = sample_sigmas(log_linear_sigmas(), 10)
    c, top, bottom = 0.25, float(sigmas[0]), float(sigmas[-1])
    exact = top * math.sqrt(c + bottom**2) / math.sqrt(c + top**2)
    ratios = [float(gaussian_gam_law(0.0, c, sigmas, gam).std) / exact for gam in (1.0, 1.5, 2.0)]
    assert ratios == pytest.approx([0.83, 0.97, 1.09], abs=0.005)


def test_sigma_loss_and_training_levels():
    g = torch.Generator().manual_seed(8)
    model = _Linear(2, g)
    x0, eps = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g, dtype=F64)
    sigma = torch.tensor([0.1, 1, 2, 3, 4], dtype=F64)
    want = ((model(x0 + sigma[:, None] * eps, sigma) - eps) ** 2).sum(1)
    assert torch.allclose(sigma_loss(model, x0, sigma, eps), want, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="shape"):
        sigma_loss(model, x0, sigma[:3], eps)
    levels = log_linear_sigmas()
    drawn = sample_train_sigmas(levels, 1000, torch.Generator().manual_seed(9))
    assert drawn.dtype == F64 and bool(torch.isin(drawn, levels).all())
