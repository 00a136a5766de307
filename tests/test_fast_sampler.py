"""The fast sampler is Algorithm 2: ``sample``'s draw for the same noise, and its specs [Ho20 alg. 2].

Equality is checked in float64, where the only differences are the order of rounding (a fused
multiply-add, a scalar coefficient rounded once): 50 to 1000 steps of a network keep them below 1e-10 of
the samples' size (observed: 1e-15). In float32 the same comparison holds to 1e-5 of the size
(about 100 units of round-off, 1.2e-7 each; observed: 1e-6 after 1000 steps). The statistical checks are the specs' own
(``specs/alg2_sampler_mc.py``), run with the fast sampler in place of ``sample``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddpm.beta.sampler import FastSampler, sample, sample_fast
from ddpm.beta.schedule import linear_schedule
from ddpm.nets import FcNetwork, UNet
from ddpm.specs.alg2_sampler_mc import N_LINEAR, N_MIXTURE, check_linear_eps_recursion, check_reproduces_mixture
from ddpm.stats import assert_power

RTOL64, RTOL32 = 1e-10, 1e-5


def seeded_net(make, dtype=torch.float32) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = make()
        if isinstance(net, UNet):  # its output layer starts at zero: make eps_theta non-trivial
            nn.init.normal_(net.conv_out.weight, std=0.1)
    return net.to(dtype).eval()


def assert_same_draw(fast: torch.Tensor, plain: torch.Tensor, rtol: float) -> None:
    scale = float(plain.abs().max())
    torch.testing.assert_close(fast, plain, rtol=0.0, atol=rtol * scale)


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_fast_equals_plain_float64(sigma2):
    net, schedule = seeded_net(lambda: FcNetwork(2), torch.float64), linear_schedule(50)
    g_plain, g_fast = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    plain = sample(net, schedule, (64, 2), sigma2=sigma2, generator=g_plain, dtype=torch.float64)
    fast = sample_fast(net, schedule, (64, 2), sigma2=sigma2, generator=g_fast, dtype=torch.float64)
    assert_same_draw(fast, plain, RTOL64)
    assert torch.equal(g_plain.get_state(), g_fast.get_state()), "the fast path drew a different amount of noise"


def test_fast_equals_plain_images():
    net = seeded_net(lambda: UNet(T=4, channels=8, groups=4), torch.float64)
    schedule = linear_schedule(4, 0.01, 0.2)
    shape = (2, 1, 8, 8)
    plain = sample(net, schedule, shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fast = sample_fast(net, schedule, shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert fast.shape == shape
    assert_same_draw(fast, plain, RTOL64)


def test_fast_equals_plain_float32():
    net, schedule = seeded_net(lambda: FcNetwork(2)), linear_schedule(1000)
    plain = sample(net, schedule, (64, 2), generator=torch.Generator().manual_seed(3))
    fast = sample_fast(net, schedule, (64, 2), generator=torch.Generator().manual_seed(3))
    assert fast.dtype == torch.float32
    assert_same_draw(fast, plain, RTOL32)


def test_repeated_calls_continue_the_generator():
    """Two calls of one FastSampler are two calls of ``sample`` on the same generator: fresh, equal draws."""
    net, schedule = seeded_net(lambda: FcNetwork(2), torch.float64), linear_schedule(50)
    g_plain = torch.Generator().manual_seed(4)
    sampler = FastSampler(net, schedule, (32, 2), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    first, second = sampler(), sampler()
    assert not torch.equal(first, second)
    for fast in (first, second):
        assert_same_draw(fast, sample(net, schedule, (32, 2), generator=g_plain, dtype=torch.float64), RTOL64)


def test_equality_check_fails_on_other_noise():
    """The comparison can fail: a different seed is a different draw, far outside the tolerance."""
    net, schedule = seeded_net(lambda: FcNetwork(2), torch.float64), linear_schedule(100)
    plain = sample(net, schedule, (64, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fast = sample_fast(net, schedule, (64, 2), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with pytest.raises(AssertionError):
        assert_same_draw(fast, plain, RTOL64)


# --- the specs of Algorithm 2, with the fast sampler ------------------------------------------------


@pytest.mark.slow  # 4e6 oracle evaluations, like the spec it reuses
@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_fast_reproduces_mixture(sigma2, gen):
    check_reproduces_mixture(sigma2, N_MIXTURE, gen, sampler=sample_fast)


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_fast_linear_eps_matches_recursion(sigma2, gen):
    check_linear_eps_recursion(sigma2, N_LINEAR, gen, sampler=sample_fast)


def planted(corrupt):
    """The fast sampler with one precomputed coefficient list replaced by ``corrupt(sampler, schedule)``."""

    def sampler(eps_model, schedule, shape, *, sigma2, generator, dtype):
        fast = FastSampler(eps_model, schedule, shape, sigma2=sigma2, generator=generator, dtype=dtype)
        corrupt(fast, schedule)
        return fast()

    return sampler


PLANTED = {
    "sigma_without_sqrt": lambda s, schedule: setattr(s, "sigma", [v * v for v in s.sigma]),
    "alpha_bar_in_line_4": lambda s, schedule: setattr(s, "sqrt_alpha", schedule.alpha_bar.sqrt().tolist()),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_fast_linear_eps_rejects_planted(name, gen):
    assert_power(check_linear_eps_recursion("beta", N_LINEAR, gen, sampler=planted(PLANTED[name]), raise_on_fail=False))


def test_the_network_is_called_once_per_step_from_T_down_to_1():
    """Algorithm 2's line 2: T calls, at t = T, ..., 1, each with the batch's t; none at t = 0."""
    seen = []

    def eps_model(x, t):
        seen.append(t.tolist())
        return 0.1 * x

    for draw in (sample, sample_fast):
        seen.clear()
        draw(eps_model, linear_schedule(7), (3, 2), generator=torch.Generator().manual_seed(0))
        assert seen == [[t] * 3 for t in range(7, 0, -1)], draw.__name__


def test_a_batch_of_scalars_is_a_valid_shape():
    """shape (batch,): x_t holds one number per draw; the fast path gives the plain path's draw."""
    schedule = linear_schedule(20)
    plain = sample(lambda x, t: 0.1 * x, schedule, (5,), generator=torch.Generator().manual_seed(3))
    fast = sample_fast(lambda x, t: 0.1 * x, schedule, (5,), generator=torch.Generator().manual_seed(3))
    assert fast.shape == (5,)
    assert_same_draw(fast, plain, RTOL32)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_named():
    net, schedule = FcNetwork(2), linear_schedule(10)
    with pytest.raises(ValueError, match="sigma2"):
        FastSampler(net, schedule, (4, 2), sigma2="large")
    for shape in [(0, 2), ()]:
        with pytest.raises(ValueError, match=r"shape must be \(batch, \.\.\.\) with every size >= 1"):
            FastSampler(net, schedule, shape)
    with pytest.raises(ValueError, match="cuda_graph"):
        FastSampler(net, schedule, (4, 2), device="cpu", cuda_graph=True)
