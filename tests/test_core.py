"""The core formulas against independent references: mpmath at 50 digits, Gaussian conditioning done
by linear algebra, torch.distributions, and the bad-input errors."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

import ddpm
from ddpm.beta.losses import gaussian_kl
from ddpm.beta.schedule import Schedule, cosine_schedule, linear_schedule
from ddpm.specs._bind import alpha_bars, linear_betas

mpmath.mp.dps = 50


def mp_linear_alpha_bar(T: int, beta_1: float, beta_T: float) -> list[mpmath.mpf]:
    """alpha_bar_0..T of the linear schedule in 50-digit arithmetic (specs' one high-precision alpha_bar)."""
    return alpha_bars(linear_betas(T, beta_1, beta_T), dps=50)


@pytest.mark.parametrize("T, beta_1, beta_T", [(1000, 1e-4, 0.02), (100, 1e-4, 0.02), (1, 0.3, 0.3), (50, 1e-8, 0.5)])
def test_linear_schedule_matches_high_precision(T, beta_1, beta_T):
    s = linear_schedule(T, beta_1, beta_T)
    ref = mp_linear_alpha_bar(T, beta_1, beta_T)
    ab = np.array([float(v) for v in ref])
    omab = np.array([float(1 - v) for v in ref])
    # float64 inputs (linspace) differ from exact decimals by ~1 ulp; products of T terms keep ~T ulp.
    np.testing.assert_allclose(s.alpha_bar.numpy(), ab, rtol=T * 4e-16, atol=0)
    np.testing.assert_allclose(s.one_minus_alpha_bar.numpy(), omab, rtol=T * 4e-16 + 1e-15, atol=0)
    bt_ref = [0.0, 0.0] + [float((1 - ref[t - 1]) / (1 - ref[t]) * (1 - ref[t] / ref[t - 1])) for t in range(2, T + 1)]
    np.testing.assert_allclose(s.beta_tilde.numpy(), bt_ref, rtol=T * 4e-16 + 1e-14, atol=0)


def test_one_minus_alpha_bar_keeps_precision_at_small_t():
    s = linear_schedule(1000, 1e-8, 0.02)
    # 1 - alpha_bar_1 = beta_1 = 1e-8 exactly; the naive 1 - alpha_bar loses half the digits.
    assert s.one_minus_alpha_bar[1].item() == pytest.approx(1e-8, rel=1e-15)
    assert abs((1 - s.alpha_bar[1]).item() - 1e-8) > 1e-24  # the naive form is measurably off


def test_paper_figures():
    """alpha_bar_T of Ho et al.'s linear schedule, T = 1000 [Ho20 §4], and of the 02460 default T = 100.

    Neither source prints these values: 4.0358e-5 and 0.36356 are the 50-digit products of the exact
    decimal schedules (``ddpm derive ex31`` prints them), recomputed here, not quoted.
    """
    for T, figure in [(1000, 4.0358e-5), (100, 0.36356)]:
        exact = float(alpha_bars(linear_betas(T, "1e-4", "0.02"), dps=50)[T])
        assert exact == pytest.approx(figure, rel=1e-4)  # the figure the docs quote
        assert linear_schedule(T).alpha_bar[T].item() == pytest.approx(exact, rel=T * 4e-16)


def test_cosine_schedule_matches_closed_form():
    T, s_ = 200, 0.008
    s = cosine_schedule(T, s_)
    f = [mpmath.cos((mpmath.mpf(t) / T + s_) / (1 + s_) * mpmath.pi / 2) ** 2 for t in range(T + 1)]
    beta = [min(float(1 - f[t] / f[t - 1]), 0.999) for t in range(1, T + 1)]
    np.testing.assert_allclose(s.beta[1:].numpy(), beta, rtol=1e-12)
    assert s.beta.max().item() == 0.999  # the cap binds at t = T


@pytest.mark.parametrize(
    "betas, message",
    [
        ([0.1, 1.0], "beta_2 = 1.0 is outside the open interval (0, 1)"),
        ([0.0, 0.1], "beta_1 = 0.0 is outside"),
        ([0.1, float("nan")], "beta_2 = nan is outside"),
        ([], "length T >= 1"),
    ],
)
def test_schedule_rejects_bad_betas(betas, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Schedule(torch.tensor(betas, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(T=0), "T must be an integer >= 1, got 0"),
        (dict(T=2.5), "T must be an integer >= 1, got 2.5"),
        (dict(beta_1=0.1, beta_T=0.01), "beta_1 = 0.1 must not exceed beta_T = 0.01"),
        (dict(beta_T=1.5), "beta_T = 1.5 is outside"),
        (dict(beta_1=float("inf")), "beta_1 = inf is outside"),
    ],
)
def test_linear_schedule_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        linear_schedule(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(s=-0.5), "s = -0.5 must be a finite offset >= 0"),
        (dict(s=float("nan")), "s = nan must be a finite offset >= 0"),
        (dict(max_beta=0.0), "max_beta = 0.0 is outside the open interval (0, 1)"),
        (dict(max_beta=1.0), "max_beta = 1.0 is outside the open interval (0, 1)"),
        (dict(T=0), "T must be an integer >= 1, got 0"),
    ],
)
def test_cosine_schedule_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cosine_schedule(**kwargs)


def test_schedule_names_the_first_bad_beta():
    with pytest.raises(ValueError, match=r"^beta_2 = 0.0 is outside"):
        Schedule(torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64))


def test_reverse_variance_choices():
    s = linear_schedule(10)
    beta, bt = ddpm.reverse_variance(s, "beta"), ddpm.reverse_variance(s, "beta_tilde")
    assert torch.equal(beta[2:], s.beta[2:]) and torch.equal(bt[2:], s.beta_tilde[2:])
    # sigma_1^2 = beta_tilde_2 for both choices, as in the paper's released code (diffusion_utils_2.py)
    assert beta[1] == s.beta_tilde[2] and bt[1] == s.beta_tilde[2]
    assert ddpm.reverse_variance(linear_schedule(1, 0.3, 0.3), "beta")[1] == 0.3  # T = 1: beta_1
    with pytest.raises(ValueError, match="sigma2 must be one of"):
        ddpm.reverse_variance(s, "sigma")


def test_decoder_variance_convention_costs_bits_with_a_perfect_mean():
    """sigma_1^2 = beta_1 instead of beta_tilde_2 costs 0.41 bits/dim.

    With the decoder's mean exactly at x_0.

    The linear schedule of [Ho20 §4]: beta_1 = 1e-4 (std 0.010), beta_tilde_2 = 5.45e-5 (std 0.0074), bins of
    width 2/255; the README's figure for the convention comes from this computation.
    """
    s = linear_schedule(1000)
    x0 = torch.zeros(1, dtype=torch.float64)
    bits = [
        -ddpm.discretized_gaussian_log_likelihood(x0, x0, var).item() / math.log(2)
        for var in (s.beta[1], s.beta_tilde[2])
    ]
    assert bits[0] - bits[1] == pytest.approx(0.41, abs=0.005)


def test_forward_composition_is_the_marginal():
    """Composing q(x_t | x_{t-1}) [eq. 2] t times gives q(x_t | x_0) [eq. 4].

    Mean and variance recurrences.
    """
    s = linear_schedule(300)
    x0 = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    mean, var = x0, torch.zeros(())
    for t in range(1, 301):
        step_mean, step_var = ddpm.q_step_mean_var(s, mean, t)
        mean, var = step_mean, s.alpha[t] * var + step_var
        m, v = ddpm.q_mean_var(s, x0, t)
        torch.testing.assert_close(mean, m, rtol=1e-12, atol=0)
        torch.testing.assert_close(var, v.reshape(()), rtol=1e-12, atol=0)


def test_posterior_is_gaussian_conditioning():
    """mu_tilde and beta_tilde [eq. 7] against conditioning a joint Gaussian by linear algebra.

    The joint is that of (x_{t-1}, x_t) given x_0.
    """
    s = linear_schedule(50, 1e-3, 0.2)
    x0 = torch.tensor([[0.3]], dtype=torch.float64)
    xt = torch.tensor([[-0.8]], dtype=torch.float64)
    for t in (2, 3, 17, 50):
        ab_prev = float(s.alpha_bar[t - 1])
        a = math.sqrt(1 - float(s.beta[t]))
        # x_{t-1} = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) e1 ; x_t = a x_{t-1} + sqrt(beta_t) e2
        mean = np.array([math.sqrt(ab_prev), a * math.sqrt(ab_prev)]) * 0.3
        v_prev = 1 - ab_prev
        cov = np.array([[v_prev, a * v_prev], [a * v_prev, a * a * v_prev + float(s.beta[t])]])
        cond_mean = mean[0] + cov[0, 1] / cov[1, 1] * (-0.8 - mean[1])
        cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        mu, var = ddpm.posterior_mean_var(s, x0, xt, t)
        assert mu.item() == pytest.approx(cond_mean, rel=1e-12)
        assert var.item() == pytest.approx(cond_var, rel=1e-10)


def test_eps_parameterisation_recovers_posterior_mean():
    """mu_from_eps with the true eps equals mu_tilde(x_t, x_0) [eqs. 9-11].

    And x0_from_eps inverts q_sample.
    """
    s = linear_schedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 3, generator=g, dtype=torch.float64)
    t = torch.randint(2, 101, (8,), generator=g)
    xt = ddpm.q_sample(s, x0, t, eps)
    torch.testing.assert_close(ddpm.x0_from_eps(s, xt, t, eps), x0, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        ddpm.mu_from_eps(s, xt, t, eps), ddpm.posterior_mean_var(s, x0, xt, t)[0], rtol=1e-10, atol=1e-12
    )


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    v1, v2 = (
        torch.rand(100, generator=g, dtype=torch.float64) + 0.01,
        torch.rand(100, generator=g, dtype=torch.float64) + 0.01,
    )
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, v1.sqrt()), torch.distributions.Normal(m2, v2.sqrt())
    )
    torch.testing.assert_close(ddpm.normal_kl(m1, v1, m2, v2), ref, rtol=1e-12, atol=1e-14)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(4)
    eye = torch.eye(3, dtype=torch.float64)
    L1, L2 = (torch.randn(3, 3, generator=g, dtype=torch.float64) + 2 * eye for _ in range(2))
    m1, m2 = torch.randn(3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    cov1, cov2 = L1 @ L1.T, L2 @ L2.T
    MVN = torch.distributions.MultivariateNormal
    ref = torch.distributions.kl_divergence(MVN(m1, cov1), MVN(m2, cov2))
    torch.testing.assert_close(gaussian_kl(m1, cov1, m2, cov2), ref, rtol=1e-10, atol=1e-12)
    # a batch of two pairs (leading dimensions broadcast): each pair's KL
    batched = gaussian_kl(
        torch.stack([m1, m2]), torch.stack([cov1, cov2]), torch.stack([m2, m1]), torch.stack([cov2, cov1])
    )
    other = torch.distributions.kl_divergence(MVN(m2, cov2), MVN(m1, cov1))
    torch.testing.assert_close(batched, torch.stack([ref, other]), rtol=1e-10, atol=1e-12)
    # diagonal covariances: the sum of normal_kl over coordinates
    v1, v2 = (torch.rand(3, generator=g, dtype=torch.float64) + 0.1 for _ in range(2))
    torch.testing.assert_close(
        gaussian_kl(m1, torch.diag(v1), m2, torch.diag(v2)),
        ddpm.normal_kl(m1, v1, m2, v2).sum(),
        rtol=1e-12,
        atol=1e-14,
    )


@pytest.mark.parametrize(
    "k, mean, std",
    [
        (0, 0.0, 0.1),
        (255, 0.0, 0.1),
        (128, 0.01, 0.02),
        (3, 0.9, 0.01),
        (250, -0.95, 0.01),
        (100, 0.2, 1e-3),
        (17, -0.9, 0.3),
    ],
)
def test_discretized_likelihood_matches_high_precision(k, mean, std):
    """The bin probability [eq. 13] against mpmath's normal CDF at 50 digits, tails included."""
    x = 2 * k / 255 - 1
    lo = -mpmath.inf if k == 0 else (mpmath.mpf(x) - mpmath.mpf(1) / 255 - mean) / std
    hi = mpmath.inf if k == 255 else (mpmath.mpf(x) + mpmath.mpf(1) / 255 - mean) / std
    # Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi): the lower-tail form keeps 50 digits far above the mean.
    ref = float(mpmath.log(mpmath.ncdf(-lo) - mpmath.ncdf(-hi) if lo > 0 else mpmath.ncdf(hi) - mpmath.ncdf(lo)))
    got = ddpm.discretized_gaussian_log_likelihood(
        torch.tensor([x], dtype=torch.float64),
        torch.tensor([mean], dtype=torch.float64),
        torch.tensor([std**2], dtype=torch.float64),
    ).item()
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_discretized_likelihood_sums_to_one_over_the_grid():
    grid = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1
    for mean, var in [(0.0, 0.01), (0.999, 1e-4), (-1.2, 0.5)]:
        logp = ddpm.discretized_gaussian_log_likelihood(grid, torch.full_like(grid, mean), torch.tensor(var))
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_l_simple_is_the_squared_error():
    s = linear_schedule(10)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    t = torch.tensor([1, 5, 10, 3])
    assert torch.allclose(ddpm.l_simple(lambda x, t: torch.zeros_like(x), s, x0, t, eps), (eps**2).sum((1, 2, 3)))
    assert torch.allclose(ddpm.l_simple(lambda x, t: eps, s, x0, t, eps), torch.zeros(4))


def test_prior_kl_matches_closed_form():
    s = linear_schedule(1000)
    x0 = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    ab = mp_linear_alpha_bar(1000, 1e-4, 0.02)[-1]
    ref = sum(0.5 * (-mpmath.log(1 - ab) + (1 - ab) + ab * x**2 - 1) for x in (1.0, -1.0, 0.0))
    assert ddpm.prior_kl(s, x0).item() == pytest.approx(float(ref), rel=1e-9)
    # ~1e-5 bits/dim for data in [-1, 1] [Ho20 §4]
    assert float(ref) / (3 * math.log(2)) < 3e-5


def test_vlb_term_with_the_true_noise_is_the_variance_mismatch():
    """With eps_theta = the true eps, mu_theta = mu_tilde and L_{t-1} is the KL of the variances alone."""
    s = linear_schedule(100)
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([2, 3, 10, 50, 99, 100])
    for sigma2 in ("beta", "beta_tilde"):
        got = ddpm.vlb_terms(lambda x, t_: eps, s, x0, t, eps, sigma2)
        var, bt = ddpm.reverse_variance(s, sigma2)[t], s.beta_tilde[t]
        ref = 2 * 0.5 * (torch.log(var / bt) + bt / var - 1)
        torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-12)


def test_vlb_terms_have_finite_gradients_in_a_batch_with_t_1():
    """Training on the bound: the unused KL at t = 1 (beta_tilde_1 = 0) must not put NaN in the gradient."""
    s, net = linear_schedule(10), torch.nn.Linear(2, 2).double()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (4, 2), generator=g).double() * 2 / 255 - 1
    eps = torch.randn(4, 2, generator=g, dtype=torch.float64)
    terms = ddpm.vlb_terms(lambda x, t: net(x), s, x0, torch.tensor([1, 2, 5, 10]), eps)
    terms.sum().backward()
    assert torch.isfinite(terms).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_negative_elbo_terms_layout():
    s = linear_schedule(5)
    x0 = torch.randint(0, 256, (3, 4)).double() * 2 / 255 - 1
    bound = ddpm.negative_elbo(lambda x, t: torch.zeros_like(x), s, x0, generator=torch.Generator().manual_seed(0))
    assert bound.terms.shape == (3, 5) and bound.prior.shape == (3,)
    torch.testing.assert_close(bound.total, bound.prior + bound.terms.sum(1))
    torch.testing.assert_close(bound.bits_per_dim(4), bound.total / (4 * math.log(2)))


@pytest.mark.parametrize("shape", [(5000, 2), (4, 1, 28, 28)])
def test_sampler_shapes_and_trajectory(shape):
    s = linear_schedule(4)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x, xs = ddpm.sample(zero, s, shape, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert x.shape == tuple(shape) and xs.shape == (5, *shape)
    assert torch.equal(xs[0], x)
    # with eps_theta = 0 and no noise at t = 1, x_0 = x_1 / sqrt(alpha_1) exactly [alg. 2, line 4]
    torch.testing.assert_close(xs[0], xs[1] / s.alpha[1].sqrt().float())


def test_gaussian_mixture_rejects_bad_parameters():
    from ddpm.oracles import GaussianMixture

    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture.isotropic([0.5, 0.4], [[0.0], [1.0]], 1.0)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture.isotropic([1.2, -0.2], [[0.0], [1.0]], 1.0)
    with pytest.raises(ValueError, match="do not fit"):
        GaussianMixture(torch.ones(2, dtype=torch.float64) / 2, torch.zeros(2, 3), torch.ones(3))
    GaussianMixture.isotropic([0.5, 0.5 + 1e-9], [[0.0], [1.0]], 1.0)  # within the tolerance of the sum


def test_linear_schedule_defaults_are_the_papers():
    """T = 1000, beta_1 = 1e-4, beta_T = 0.02 [Ho20 §4]; cosine s = 0.008, capped at 0.999 [ND21 eq. 17]."""
    s = linear_schedule()
    assert s.T == 1000 and s.beta[1].item() == 1e-4 and s.beta[1000].item() == 0.02
    assert torch.equal(cosine_schedule().betas, cosine_schedule(1000, 0.008, 0.999).betas)


def test_mixture_log_prob_matches_torch_distributions():
    """p of x = a x_0 + s eps for an isotropic and a full-covariance mixture, against MixtureSameFamily."""
    from ddpm.oracles import GaussianMixture

    w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    m = torch.tensor([[-1.0, 0.5], [1.5, -0.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]]], dtype=torch.float64)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, s, eye = 0.8, 0.6, torch.eye(2, dtype=torch.float64)
    iso = torch.tensor([0.3, 0.5], dtype=torch.float64)
    D = torch.distributions
    for mixture, c in [(GaussianMixture(w, m, covs), covs), (GaussianMixture(w, m, iso), iso[:, None, None] * eye)]:
        ref = D.MixtureSameFamily(D.Categorical(w), D.MultivariateNormal(a * m, a**2 * c + s**2 * eye)).log_prob(x)
        torch.testing.assert_close(mixture.log_prob(x, a, s), ref, rtol=1e-12, atol=1e-12)


def test_mixture_log_prob_defaults_to_p0_and_a_zero_weight_is_a_valid_mixture():
    """log_prob(x) with no (a, s) is log p_0; a component of weight 0 is allowed and changes nothing."""
    from ddpm.oracles import GaussianMixture

    w = torch.tensor([0.3, 0.7, 0.0], dtype=torch.float64)
    m = torch.tensor([[-1.0, 0.5], [1.5, -0.5], [9.0, 9.0]], dtype=torch.float64)
    c = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    D = torch.distributions
    ref = D.MixtureSameFamily(D.Categorical(w[:2]), D.MultivariateNormal(m[:2], c[:2, None, None] * torch.eye(2)))
    torch.testing.assert_close(GaussianMixture(w, m, c).log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-12)


def test_isotropic_mixture_takes_one_std_per_component_or_one_for_all():
    """Three components in two dimensions (K != D), a scalar std and one per component."""
    from ddpm.oracles import GaussianMixture

    means = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    shared = GaussianMixture.isotropic([0.2, 0.3, 0.5], means, 0.1)
    assert shared.covs.shape == (3,) and torch.allclose(shared.covs, torch.full((3,), 0.01, dtype=torch.float64))
    own = GaussianMixture.isotropic([0.2, 0.3, 0.5], means, [0.1, 0.2, 0.3])
    torch.testing.assert_close(own.covs, torch.tensor([0.01, 0.04, 0.09], dtype=torch.float64))


@pytest.mark.parametrize("form", ["isotropic", "full"])
def test_mixture_sample_has_the_mixture_mean_and_covariance(form, gen):
    """E[x] = sum_k w_k m_k and E[x x^T] = sum_k w_k (C_k + m_k m_k^T): one check_mc each."""
    from torch.special import ndtr

    from ddpm.oracles import GaussianMixture
    from ddpm.stats import binomial_z, check_mc

    f64 = torch.float64
    w, m = torch.tensor([0.3, 0.7], dtype=f64), torch.tensor([[-1.0, 0.5], [2.0, -0.5]], dtype=f64)
    var = torch.tensor([0.3, 0.6], dtype=f64)
    C = torch.tensor([[[0.5, 0.2], [0.2, 0.3]], [[0.2, -0.1], [-0.1, 0.4]]], dtype=f64)
    if form == "isotropic":
        mixture, C = GaussianMixture(w, m, var), var[:, None, None] * torch.eye(2, dtype=f64)
    else:
        mixture = GaussianMixture(w, m, C)
    n = 40_000
    x = mixture.sample(n, generator=gen)
    mean = (w[:, None] * m).sum(0)
    second = (w[:, None, None] * (C + m[:, :, None] * m[:, None, :])).sum(0)
    check_mc("mixture sample mean", x.mean(0), x.std(0) / math.sqrt(n), mean, n)
    products = x[:, :, None] * x[:, None, :]
    check_mc("mixture sample second moment", products.mean(0), products.std(0) / math.sqrt(n), second, n)
    # Heavy tails can pass a studentized mean (their sample std grows too): hold the marginal CDFs,
    # P(x_j <= c) = sum_k w_k Phi((c - m_kj) / sqrt(C_kjj)), as exact binomial counts.
    z = [
        binomial_z(int((x[:, j] <= c).sum()), n, float((w * ndtr((c - m[:, j]) / C[:, j, j].sqrt())).sum()))
        for j in range(2)
        for c in (-1.5, -0.5, 0.5, 1.5, 2.5)
    ]
    check_mc("mixture sample marginal CDFs", torch.tensor(z), 1.0, 0.0, n)


def test_full_covariance_point_mass_samples_its_mean():
    """A component with covariance 0 in full form: every draw is its mean (Cholesky of 0 + 1e-300 I)."""
    from ddpm.oracles import GaussianMixture

    mixture = GaussianMixture(
        torch.ones(1, dtype=torch.float64), torch.tensor([[1.0, -2.0]]).double(), torch.zeros(1, 2, 2).double()
    )
    x = mixture.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.tensor([[1.0, -2.0]]).double().expand(5, 2))


@pytest.mark.parametrize("weights", [[-0.2, 1.2], [0.5, 0.6], [0.5, 0.4]])
def test_mixture_refuses_weights_that_are_not_a_distribution(weights):
    from ddpm.oracles import GaussianMixture

    with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
        GaussianMixture.isotropic(weights, [[-1.0, 0.0], [1.0, 0.5]], 0.4)


def test_oracles_keep_the_batch_shape():
    """A scalar (a, s) and the same values per sample give the same (batch, D) result, for batch != D."""
    from ddpm.oracles import GaussianMixture, OptimalEps

    mixture = GaussianMixture.isotropic([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], 0.4)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for f in (mixture.posterior_mean, mixture.eps_star, mixture.score):
        a, sd = (torch.full((5,), v, dtype=torch.float64) for v in (0.8, 0.6))
        scalar, per_sample = f(x, 0.8, 0.6), f(x, a, sd)
        assert scalar.shape == (5, 2)
        torch.testing.assert_close(scalar, per_sample, rtol=1e-14, atol=1e-14)
    s = linear_schedule(10)
    t = torch.tensor([1, 4, 4, 9, 10])
    eps = OptimalEps(mixture, s)(x, t)
    a, sd = s.alpha_bar[t].sqrt(), s.one_minus_alpha_bar[t].sqrt()
    rows = [mixture.eps_star(x[i : i + 1], float(a[i]), float(sd[i]))[0] for i in range(5)]
    torch.testing.assert_close(eps, torch.stack(rows))


def test_full_covariance_posterior_mean_is_gaussian_conditioning():
    """E[x_0 | a x_0 + s eps = x] for x_0 ~ N(m, C).

    m + a C (a^2 C + s^2 I)^-1 (x - a m), by numpy's solve.
    """
    from ddpm.oracles import GaussianMixture

    m = np.array([0.5, -1.0])
    C = np.array([[0.4, 0.15], [0.15, 0.3]])
    mixture = GaussianMixture(torch.ones(1, dtype=torch.float64), torch.tensor(m)[None], torch.tensor(C)[None])
    x = np.array([[0.3, 0.2], [-1.0, 2.0], [2.5, -0.5]])
    a, s = 0.7, 0.5
    want = m + a * np.linalg.solve(a**2 * C + s**2 * np.eye(2), (x - a * m).T).T @ C.T
    np.testing.assert_allclose(mixture.posterior_mean(torch.tensor(x), a, s).numpy(), want, rtol=1e-12, atol=1e-14)
