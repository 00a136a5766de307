"""A small U-Net eps_theta(x_t, t) for 28 x 28 images, shaped like Ho et al.'s [Ho20 §4, app. B].

The step t enters through a sinusoidal embedding [Vaswani et al. 2017 §3.5] and an MLP, and is added
inside every residual block (GroupNorm, SiLU, 3 x 3 convolutions). Stride-2 convolutions take 28 x 28
to 14 x 14 to 7 x 7 and nearest-neighbour upsampling brings it back, the down path's features
concatenated into the up path's residual blocks; a self-attention block (optional) sits at 7 x 7.
The output convolution starts at zero, so the untrained network predicts eps_theta = 0. Every reshape
is layout-agnostic, so ``channels_last`` inputs work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNet", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """[sin(t w_i), cos(t w_i)], w_i = max_period^(-i / (dim / 2)) [Ho20 §4; Vaswani et al. 2017 §3.5]."""
    half = dim // 2
    w = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angle = t.to(torch.float32)[:, None] * w[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class ResBlock(nn.Module):
    """h = x + conv(SiLU(GN(conv(SiLU(GN(x))) + W emb))); a 1 x 1 convolution on x if the width changes."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """x + W_o softmax(Q K^T / sqrt(c)) V over the H W positions, one head [Ho20 app. B]."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # each (b, hw, c)
        a = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t, t) for images (batch, in_channels, H, W), H and W divisible by 4 [Ho20 §4, app. B].

    Args:
        T: the number of diffusion steps (kept for the checkpoint; the embedding takes t in 1..T as is).
        channels: the width C at full resolution; the three resolutions have C * channel_mult[i].
        channel_mult: the width multipliers of the 28, 14 and 7 pixel levels.
        attention: one self-attention block at the lowest resolution, as in Ho et al.'s network; at
            7 x 7 it costs about 2% of a training step, so it is on by default.
        groups: GroupNorm groups; every width must be divisible by it.
        in_channels: the image channels (1 for MNIST).
    """

    name = "unet"

    def __init__(
        self,
        T: int = 1000,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        attention: bool = True,
        groups: int = 8,
        in_channels: int = 1,
    ):
        super().__init__()
        widths = [channels * m for m in channel_mult]
        if len(widths) != 3 or min(widths) < 1 or channels % 2 or any(w % groups for w in [channels, *widths]):
            raise ValueError(
                f"channels must be even, channel_mult must hold 3 positive multipliers, and channels "
                f"and every width channels * m must be divisible by groups = {groups}; "
                f"got channels = {channels}, channel_mult = {channel_mult}"
            )
        if T < 1 or in_channels < 1:
            raise ValueError(f"T and in_channels must be >= 1, got T = {T}, in_channels = {in_channels}")
        self.config = dict(
            T=T,
            channels=channels,
            channel_mult=list(channel_mult),
            attention=attention,
            groups=groups,
            in_channels=in_channels,
        )
        self.T, self.channels = T, channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        c0, c1, c2 = widths
        self.down = nn.ModuleList(
            [
                ResBlock(channels, c0, emb_dim, groups),
                ResBlock(c0, c1, emb_dim, groups),
                ResBlock(c1, c2, emb_dim, groups),
            ]
        )
        self.downsample = nn.ModuleList(
            [nn.Conv2d(c0, c0, 3, stride=2, padding=1), nn.Conv2d(c1, c1, 3, stride=2, padding=1)]
        )
        self.mid = ResBlock(c2, c2, emb_dim, groups)
        self.attn = SelfAttention(c2, groups) if attention else nn.Identity()
        self.up = nn.ModuleList(
            [
                ResBlock(2 * c2, c1, emb_dim, groups),
                ResBlock(2 * c1, c0, emb_dim, groups),
                ResBlock(2 * c0, channels, emb_dim, groups),
            ]
        )
        self.norm_out = nn.GroupNorm(groups, channels)
        self.conv_out = nn.Conv2d(channels, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None  # Conv2d's default bias=True
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t) for x_t (batch, in_channels, H, W) and t an int64 tensor (batch,) in 1..T."""
        if x.ndim != 4 or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"x must have shape (batch, channels, H, W) with H and W divisible by 4, got {tuple(x.shape)}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), one step per sample, got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.channels).to(x.dtype))
        h = self.conv_in(x)
        skips = []
        for i, block in enumerate(self.down):  # 28 -> 14 -> 7
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.attn(self.mid(h, emb))
        for i, block in enumerate(self.up):  # 7 -> 14 -> 28
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.up) - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h)))
