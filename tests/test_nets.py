"""The networks eps_theta(x_t, t): shapes, the 02460 template's FcNetwork, the step's normalisation,
rebuilding from ``config``, the U-Net's time embedding, channels_last inputs and gradient flow."""

from __future__ import annotations

import json
import math
from typing import TypedDict

import pytest
import torch
from torch import nn

from ddpm.nets import FcNetwork, UNet, build_network
from ddpm.nets.unet import timestep_embedding

T = 1000


class UNetSize(TypedDict):
    channels: int
    channel_mult: tuple[int, ...]
    groups: int


SMALL_UNET = UNetSize(channels=8, channel_mult=(1, 2, 2), groups=4)


def steps(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(1, T + 1, (n,), generator=gen)


def randomise_output(net: UNet, gen: torch.Generator) -> UNet:
    """Give the zero-initialised output convolution random weights: the output then depends on the input."""
    with torch.no_grad():
        for p in net.conv_out.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net


@pytest.mark.parametrize(
    "name, config, shape",
    [
        ("fc", dict(input_dim=2), (5, 2)),
        ("fc", dict(input_dim=784, num_hidden=16, num_layers=3, activation="silu"), (5, 1, 28, 28)),
        ("unet", SMALL_UNET, (5, 1, 28, 28)),
        ("unet", dict(SMALL_UNET, attention=False), (5, 1, 28, 28)),
    ],
)
def test_output_shape_equals_input_shape(name, config, shape, gen):
    net = build_network(name, T=T, **config)
    x = torch.randn(shape, generator=gen)
    assert net(x, steps(shape[0], gen)).shape == shape


def test_fc_default_is_the_02460_template():
    D, h = 2, 64
    net = FcNetwork(D)
    expected = (D + 1) * h + h + h * h + h + h * D + D  # Linear(D+1, h), Linear(h, h), Linear(h, D)
    assert sum(p.numel() for p in net.parameters()) == expected == 4546
    # The template's layout: network = Sequential(Linear, ReLU, Linear, ReLU, Linear).
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        "network.0.weight": (h, D + 1),
        "network.0.bias": (h,),
        "network.2.weight": (h, h),
        "network.2.bias": (h,),
        "network.4.weight": (D, h),
        "network.4.bias": (D,),
    }
    assert [type(m) for m in net.network] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]


def test_fc_feeds_the_normalised_step():
    net = FcNetwork(2, T=T)
    seen = []
    net.network[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = torch.zeros(3, 2)
    net(x, torch.tensor([T, 1, T // 2]))
    # t / T in float32 is the correctly rounded quotient: exactly 1 at t = T.
    assert torch.equal(seen[0][:, 2], torch.tensor([1.0, 1 / T, 0.5]))
    assert torch.equal(seen[0][:, :2], x)


def test_fc_silu_and_depth():
    net = FcNetwork(3, num_hidden=8, num_layers=4, activation="silu")
    assert sum(isinstance(m, nn.Linear) for m in net.network) == 5
    assert sum(isinstance(m, nn.SiLU) for m in net.network) == 4


@pytest.mark.parametrize(
    "name, config",
    [
        ("fc", dict(input_dim=2, num_hidden=32, num_layers=3, T=50, activation="silu")),
        ("unet", dict(T=50, attention=False, **SMALL_UNET)),
    ],
)
def test_rebuild_from_config(name, config, gen):
    net = build_network(name, **config)
    assert isinstance(net, (FcNetwork, UNet))
    assert net.name == name
    json.dumps(net.config)  # plain Python values only
    again = build_network(net.name, **net.config)
    assert again.config == net.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    again.load_state_dict(net.state_dict())
    x = torch.randn(4, 2) if name == "fc" else torch.randn(4, 1, 28, 28)
    t = torch.randint(1, 51, (4,), generator=gen)
    assert torch.equal(again(x, t), net(x, t))


def test_unet_starts_at_zero(gen):
    net = UNet(**SMALL_UNET)
    assert torch.equal(net(torch.randn(3, 1, 28, 28, generator=gen), steps(3, gen)), torch.zeros(3, 1, 28, 28))


def test_unet_channels_last_gives_the_contiguous_output(gen):
    # float64, so that the two memory layouts' different summation orders differ only by rounding (~1e-16).
    net = randomise_output(UNet(T=T, attention=True, **SMALL_UNET), gen).double()
    x, t = torch.randn(4, 1, 28, 28, generator=gen, dtype=torch.float64), steps(4, gen)
    expected = net(x, t)
    assert expected.abs().max() > 0.01
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x_cl, t), expected, rtol=1e-10, atol=1e-12)
    # Module.to takes memory_format at run time; torch's overloads for it leave the keyword out
    net_cl = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    torch.testing.assert_close(net_cl(x_cl, t), expected, rtol=1e-10, atol=1e-12)


def test_timestep_embedding_is_the_sinusoid():
    t, dim = torch.tensor([1, 17, 1000]), 8
    got = timestep_embedding(t, dim).double()
    for row, step in zip(got, t.tolist()):
        w = [10_000 ** (-i / (dim // 2)) for i in range(dim // 2)]
        expected = [math.sin(step * wi) for wi in w] + [math.cos(step * wi) for wi in w]
        # float32 angles up to 1000 carry an absolute rounding error of about 1000 * 6e-8.
        torch.testing.assert_close(row, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=2e-4)


@pytest.mark.parametrize(
    "name, config, shape",
    [
        ("fc", dict(input_dim=2, num_layers=3, activation="silu"), (16, 2)),
        ("unet", dict(attention=True, **SMALL_UNET), (4, 1, 28, 28)),
    ],
)
def test_gradients_reach_every_parameter(name, config, shape, gen):
    net = build_network(name, T=T, **config)
    if name == "unet":
        assert isinstance(net, UNet)
        randomise_output(net, gen)  # a zero output layer passes no gradient further back
    x = torch.randn(shape, generator=gen)
    net(x, steps(shape[0], gen)).square().sum().backward()
    for key, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, key


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: build_network("resnet"), "unknown network 'resnet'"),
        (lambda: build_network("fc", input_dim=2, width=3), "bad configuration for network 'fc'"),
        (lambda: FcNetwork(2, activation="tanh"), "activation must be one of"),
        (lambda: FcNetwork(2, num_layers=0), "num_layers must be an integer >= 1"),
        (lambda: UNet(channels=12), "divisible by groups = 8"),
        (lambda: FcNetwork(2)(torch.zeros(4, 3), torch.ones(4, dtype=torch.long)), "3 entries per sample"),
        (lambda: FcNetwork(2)(torch.zeros(4, 2), torch.ones(4, 1, dtype=torch.long)), r"t must have shape \(4,\)"),
        (lambda: UNet(**SMALL_UNET)(torch.zeros(2, 1, 30, 30), torch.ones(2, dtype=torch.long)), "divisible by 4"),
    ],
)
def test_bad_configuration_or_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
