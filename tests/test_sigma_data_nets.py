"""The Swissroll and its distance to the curve, the sigma MLP, and flow matching [6.S183 Q2]."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from ddpm.data import DATASETS, Swissroll, toy_dataset
from ddpm.data.swissroll import T_MIN, T_SPAN, distance_to_spiral, spiral_curve
from ddpm.nets import NETWORKS, SigmaMLP, build_network
from ddpm.oracles import SigmaOptimalEps
from ddpm.sigma.flow_matching import (
    VelocityFromEps,
    fm_euler_sample,
    fm_euler_steps,
    fm_interpolate,
    fm_loss,
    fm_to_ve,
    ts_from_sigmas,
    ve_to_fm,
)
from ddpm.sigma.sampler import gam_mu_sample
from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas

F64 = torch.float64


def test_swissroll_is_the_notebooks_200_points():
    data = Swissroll()
    assert "swissroll" in DATASETS and isinstance(toy_dataset("swissroll"), Swissroll)
    assert data.points.shape == (200, 2) and data.points.dtype == F64
    t = np.pi / 2 + np.linspace(0, 1, 200) * 5 * np.pi
    want = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (5 * np.pi)
    assert np.allclose(data.points.numpy(), want, rtol=0, atol=1e-14)
    x = data.sample(1000, torch.Generator().manual_seed(0))
    assert x.shape == (1000, 2) and x.dtype == torch.float32
    assert float(data.distance(x).max()) < 1e-6  # every draw is one of the points, which lie on the curve
    with pytest.raises(ValueError):
        Swissroll(n=1)


def _distance_mpmath(x: np.ndarray) -> float:
    """min_t ||x - c(t)|| by a 200001-point grid.

    Then the root of d/dt ||x - c(t)||^2 at 30 digits (or an end).
    """
    t = np.linspace(T_MIN, T_MIN + T_SPAN, 200001)
    d2 = (t * np.cos(t) / T_SPAN - x[0]) ** 2 + (t * np.sin(t) / T_SPAN - x[1]) ** 2
    j = int(np.argmin(d2))
    with mpmath.workdps(30):
        X, Y = mpmath.mpf(float(x[0])), mpmath.mpf(float(x[1]))
        f = lambda s: (s * mpmath.cos(s) / T_SPAN - X) ** 2 + (s * mpmath.sin(s) / T_SPAN - Y) ** 2  # noqa: E731
        candidates = [mpmath.mpf(T_MIN), mpmath.mpf(T_MIN + T_SPAN)]
        if 0 < j < len(t) - 1:
            candidates.append(mpmath.findroot(lambda s: mpmath.diff(f, s), mpmath.mpf(float(t[j]))))
        return float(mpmath.sqrt(min(f(s) for s in candidates if T_MIN <= s <= T_MIN + T_SPAN)))


def test_distance_to_spiral_against_mpmath():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 2, generator=g, dtype=F64) * 2.4 - 1.2
    got = distance_to_spiral(x)
    want = np.array([_distance_mpmath(row) for row in x.numpy()])
    assert np.allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def test_distance_to_spiral_on_and_beside_the_curve():
    t = torch.linspace(T_MIN + 0.3, T_MIN + T_SPAN - 0.3, 101, dtype=F64)
    on = spiral_curve(t)
    assert float(distance_to_spiral(on).max()) < 1e-9
    tangent = torch.stack([torch.cos(t) - t * torch.sin(t), torch.sin(t) + t * torch.cos(t)], -1)
    normal = torch.stack([-tangent[:, 1], tangent[:, 0]], -1) / tangent.norm(dim=1, keepdim=True)
    for delta in (1e-3, 0.01, 0.05):  # well inside the 0.4 gap between arms and the curvature radius
        assert torch.allclose(
            distance_to_spiral(on + delta * normal), torch.full((101,), delta, dtype=F64), rtol=1e-9, atol=1e-12
        )
    # past the inner end, backwards along the tangent (-pi/2, 1) there: the nearest point is the end itself
    end = spiral_curve(torch.tensor([T_MIN], dtype=F64))
    back = torch.tensor([[math.pi / 2, -1.0]], dtype=F64) / math.hypot(math.pi / 2, 1)
    assert math.isclose(float(distance_to_spiral(end + 0.03 * back)[0]), 0.03, rel_tol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        distance_to_spiral(torch.zeros(3))


def test_sigma_mlp_shapes_and_embedding():
    assert NETWORKS["sigma_mlp"] is SigmaMLP
    torch.manual_seed(0)
    net = build_network("sigma_mlp", input_dim=2, hidden_dims=[16, 32])
    assert isinstance(net, SigmaMLP)
    x = torch.randn(5, 2)
    sigma = torch.tensor([0.005, 0.1, 1.0, 3.0, 10.0])
    out = net(x, sigma)
    assert out.shape == (5, 2)
    assert torch.allclose(net(x, torch.tensor(1.0)), net(x, torch.ones(5)))
    # the input layer sees [x, sin(log(sigma)/2), cos(log(sigma)/2)]
    seen: dict[str, torch.Tensor] = {}
    net.network[0].register_forward_hook(lambda m, i, o: seen.update(inp=i[0]))
    net(x, sigma)
    half = torch.log(sigma) / 2
    assert torch.allclose(seen["inp"], torch.cat([x, torch.sin(half)[:, None], torch.cos(half)[:, None]], 1))
    assert SigmaMLP().config == dict(input_dim=2, hidden_dims=[16, 128, 128, 128, 128, 16], activation="gelu")
    with pytest.raises(ValueError, match="shape"):
        net(x, sigma[:2])
    with pytest.raises(ValueError):
        SigmaMLP(hidden_dims=[])


# --- flow matching --------------------------------------------------------------------------------


def test_fm_loss_is_the_notebooks_formula():
    g = torch.Generator().manual_seed(2)
    x0, eps, t = (
        torch.randn(6, 2, generator=g, dtype=F64),
        torch.randn(6, 2, generator=g, dtype=F64),
        torch.rand(6, generator=g, dtype=F64),
    )
    v = lambda u, tt: u * tt[:, None] ** 2 - 1  # noqa: E731
    u = (1 - t[:, None]) * x0 + t[:, None] * eps
    assert torch.allclose(fm_interpolate(x0, t, eps), u, rtol=1e-15, atol=0)
    assert torch.allclose(fm_loss(v, x0, t, eps), ((v(u, t) - (eps - x0)) ** 2).sum(1), rtol=1e-15, atol=0)


def test_fm_euler_is_the_notebooks_update():
    g = torch.Generator().manual_seed(3)
    v = lambda u, tt: torch.sin(u) * tt[:, None]  # noqa: E731
    ts = torch.tensor([1.0, 0.7, 0.3, 0.0], dtype=F64)
    us = list(fm_euler_steps(v, ts, shape=(4, 2), generator=torch.Generator().manual_seed(4), dtype=F64))
    u = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=F64)  # u_1 ~ N(0, I)
    for i, (a, b) in enumerate(zip(ts[:-1].tolist(), ts[1:].tolist())):
        u = u + (b - a) * v(u, torch.full((4,), a, dtype=F64))
        assert torch.allclose(us[i], u, rtol=1e-15, atol=1e-15)
    assert torch.equal(
        fm_euler_sample(v, ts, shape=(4, 2), generator=torch.Generator().manual_seed(4), dtype=F64), us[-1]
    )
    with pytest.raises(ValueError, match="decreasing"):
        fm_euler_sample(v, ts.flip(0), shape=(4, 2))
    del g


def test_fm_map_round_trip():
    x = torch.randn(3, 2, dtype=F64)
    sigma = torch.tensor([0.1, 1.0, 9.0], dtype=F64)
    t = ts_from_sigmas(sigma)
    assert torch.allclose(fm_to_ve(ve_to_fm(x, sigma), t), x, rtol=1e-14, atol=0)


@pytest.mark.parametrize("k", [5, 10, 50])
def test_fm_euler_with_v_star_is_ddim_under_the_map(k):
    """Euler on du/dt = v* is DDIM on dx/dsigma = eps* under u = x / (1 + sigma), t = sigma / (1 + sigma)."""
    data = Swissroll()
    eps_star = data.ideal_denoiser()
    sigmas = sample_sigmas(log_linear_sigmas(), k)
    x = float(sigmas[0]) * torch.randn(300, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    ddim = gam_mu_sample(eps_star, sigmas, x.clone())
    fm = fm_euler_sample(VelocityFromEps(eps_star), ts_from_sigmas(sigmas), ve_to_fm(x, float(sigmas[0])))
    back = fm_to_ve(fm, float(ts_from_sigmas(sigmas)[-1]))
    assert torch.allclose(back, ddim, rtol=1e-9, atol=1e-9)


def test_velocity_from_eps_of_a_gaussian_is_the_conditional_mean_of_eps_minus_x0():
    """E[eps - x_0 | u_t = u] in closed form vs VelocityFromEps(eps*), for x_0 ~ N(m, c).

    The closed form is a Gaussian regression.
    """
    m, c = torch.tensor([0.4, -0.2], dtype=F64), 0.3
    v = VelocityFromEps(SigmaOptimalEps.gaussian(m, c))
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    u = torch.randn(3, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    # (u, y = eps - x_0) jointly Gaussian: E[u] = (1-t) m, Var u = (1-t)^2 c + t^2, Cov(y, u) = t - (1-t) c, E[y] = -m
    var_u = (1 - t) ** 2 * c + t**2
    want = -m + ((t - (1 - t) * c) / var_u)[:, None] * (u - (1 - t)[:, None] * m)
    assert torch.allclose(v(u, t), want, rtol=1e-12, atol=1e-12)


# --- the 6.S183 run's report ----------------------------------------------------------------------


def test_swissroll_quality_report_and_plot(tmp_path):
    from ddpm.sigma.run import (
        format_swissroll_report,
        plot_swissroll,
        sample_sigma_world,
        sampler_settings,
        swissroll_quality,
    )

    data = Swissroll()
    x = sample_sigma_world(
        data.ideal_denoiser(),
        log_linear_sigmas(),
        300,
        sampler="ddim",
        steps=10,
        generator=torch.Generator().manual_seed(3),
    )
    report = swissroll_quality(x, sampler="ddim", steps=10, seed=3)
    # the same sampler from the same seed: the ideal denoiser's number is that of these very samples
    assert report["mean_distance_to_curve"] == pytest.approx(report["ideal_denoiser_mean_distance"], rel=1e-5)
    assert report["mean_distance_to_curve"] < 0.02 and report["n"] == 300 and report["gamma"] == 1.0
    noisy = swissroll_quality(x + 0.1, sampler="ddim", steps=10, seed=3)
    assert noisy["mean_distance_to_curve"] > 0.05
    assert "mean distance to the spiral curve" in format_swissroll_report(report)
    plot_swissroll(tmp_path / "s.png", x)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sampler_settings("accel", 1.5) == dict(gam=1.5, mu=0.0)
    with pytest.raises(ValueError, match="unknown sampler"):
        sampler_settings("euler")


def _fm_loss_raise(v_model, n, generator, delta=0.1):
    """Paired: fm_loss(v + delta u) - fm_loss(v) on the same draws, for x_0 ~ N(m, c I).

    t ~ U(0.05, 0.95).
    """
    from ddpm.stats import mean_stderr

    m, c = torch.tensor([0.4, -0.2], dtype=F64), 0.3
    u = torch.tensor([1.0, -2.0], dtype=F64)
    x0 = m + math.sqrt(c) * torch.randn(n, 2, generator=generator, dtype=F64)
    eps = torch.randn(n, 2, generator=generator, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(n, generator=generator, dtype=F64)
    base = fm_loss(v_model, x0, t, eps)
    raised = fm_loss(lambda uu, tt: v_model(uu, tt) + delta * u, x0, t, eps)
    est, se = mean_stderr(raised - base)
    return est, se, delta**2 * float(u @ u)


def test_fm_loss_is_minimised_by_v_star(gen):
    """At v* = E[eps - x_0 | u_t] a constant perturbation raises the loss by a known amount.

    A perturbation delta u raises it by exactly delta^2 ||u||^2 (the cross term
    has mean 0); at a wrong v it does not. One check_mc at the suite's false-alarm rate."""
    from ddpm.stats import assert_power, check_mc

    v_star = VelocityFromEps(SigmaOptimalEps.gaussian(torch.tensor([0.4, -0.2], dtype=F64), 0.3))
    est, se, want = _fm_loss_raise(v_star, 40000, gen)
    check_mc("fm_loss(v* + delta u) - fm_loss(v*)", est, se, want, 40000)
    wrong = lambda uu, tt: v_star(uu, tt) + 0.3  # noqa: E731  (z ~ 29 where 3k ~ 15; at + 0.2, z ~ 20)
    est, se, want = _fm_loss_raise(wrong, 40000, gen)
    assert_power(check_mc("planted: v* + 0.3", est, se, want, 40000, raise_on_fail=False))
