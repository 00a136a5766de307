"""Ancestral sampling, Algorithm 2 of Ho et al. (2020) [Ho20 alg. 2].

``sample`` is the algorithm line by line; it is the reference that faster paths are checked against.
``FastSampler`` (and its one-shot form ``sample_fast``) is the same algorithm with the same noise in
the same order, its per-step work cut to eps_theta and four in-place kernels; on CUDA it captures the
whole loop once as a CUDA graph and replays it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, overload

import torch
from torch import Tensor

from ddpm.beta.losses import EpsModel
from ddpm.beta.posterior import mu_from_eps
from ddpm.beta.schedule import Schedule, at, reverse_variance

__all__ = ["sample", "sample_fast", "FastSampler", "gaussian_law", "noise_draws"]


def noise_draws(
    shape: Sequence[int],
    T: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[Tensor]:
    """Algorithm 2's standard normal draws in their one documented order [Ho20 alg. 2].

    x_T, then z at t = T, ..., 2.

    ``sample`` draws through it; a replay of Algorithm 2 with the same generator uses it too.
    """
    for _ in range(T):  # x_T, then T - 1 draws of z
        yield torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


@overload
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = ...,
    generator: torch.Generator | None = ...,
    device: torch.device | str | None = ...,
    dtype: torch.dtype = ...,
    return_trajectory: Literal[False] = ...,
    progress: Callable[[int], None] | None = ...,
) -> Tensor: ...


@overload
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = ...,
    generator: torch.Generator | None = ...,
    device: torch.device | str | None = ...,
    dtype: torch.dtype = ...,
    return_trajectory: Literal[True],
    progress: Callable[[int], None] | None = ...,
) -> tuple[Tensor, Tensor]: ...


@overload
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = ...,
    generator: torch.Generator | None = ...,
    device: torch.device | str | None = ...,
    dtype: torch.dtype = ...,
    return_trajectory: bool,
    progress: Callable[[int], None] | None = ...,
) -> Tensor | tuple[Tensor, Tensor]: ...


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = "beta",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    return_trajectory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Draw x_0 of the given ``shape`` (batch first) by Algorithm 2 [Ho20 alg. 2].

    ``sigma2`` is "beta" or "beta_tilde" [Ho20 §3.2]. Noise comes from ``generator`` (on ``device``,
    which defaults to the generator's), drawn in the order x_T, then z at t = T..2. With
    ``return_trajectory`` the result is ``(x_0, xs)`` where ``xs[t]`` is x_t, t = 0..T.
    ``progress(t)`` is called after each step.
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    schedule = schedule.to(device)
    sigma = reverse_variance(schedule, sigma2).sqrt()
    draws = noise_draws(shape, schedule.T, generator=generator, device=device, dtype=dtype)

    x = next(draws)  # line 1: x_T ~ N(0, I)
    trajectory = [x]
    for t in range(schedule.T, 0, -1):  # line 2: for t = T, ..., 1
        steps = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        x = mu_from_eps(schedule, x, t, eps_model(x, steps))  # line 4: the mean, eq. 11
        if t > 1:  # line 3: z ~ N(0, I) if t > 1, else z = 0
            x = x + at(sigma, t, x) * next(draws)  # line 4: + sigma_t z
        if return_trajectory:
            trajectory.append(x)
        if progress is not None:
            progress(t)
    if return_trajectory:
        return x, torch.stack(trajectory[::-1])
    return x  # line 6: return x_0


def gaussian_law(schedule: Schedule, A: Tensor, b: Tensor, sigma2: str = "beta") -> tuple[Tensor, Tensor]:
    """The exact law N(mean, cov) of Algorithm 2's x_0 when eps_theta(x, t) = A_t x + b_t [Ho20 alg. 2].

    ``A`` (T + 1, D, D) and ``b`` (T + 1, D) are indexed by t. Line 4 is then affine plus Gaussian noise:
    mean <- M_t mean + c_t, cov <- M_t cov M_t^T + sigma_t^2 I (no noise at t = 1), with
    M_t = (I - k_t A_t) / sqrt(alpha_t), c_t = -k_t b_t / sqrt(alpha_t), k_t = beta_t / sqrt(1 - alpha_bar_t),
    from x_T ~ N(0, I). Written from the schedule's coefficients alone (not from ``mu_from_eps`` or
    ``reverse_variance``), so that it can hold the sampler's own steps to account; float64.
    """
    D = A.shape[-1]
    eye = torch.eye(D, dtype=torch.float64)
    mean, cov = torch.zeros(D, dtype=torch.float64), eye.clone()  # line 1: x_T ~ N(0, I)
    noise = schedule.beta if sigma2 == "beta" else schedule.beta_tilde
    for t in range(schedule.T, 0, -1):
        k = schedule.beta[t] / schedule.one_minus_alpha_bar[t].sqrt()
        M = (eye - k * A[t].to(torch.float64)) / schedule.alpha[t].sqrt()
        mean = M @ mean - k * b[t].to(torch.float64) / schedule.alpha[t].sqrt()
        cov = M @ cov @ M.T
        if t > 1:  # line 3: no noise at t = 1
            cov = cov + noise[t] * eye
    return mean, cov


class FastSampler:
    """Algorithm 2 with the per-step overhead removed, drawing the same noise as ``sample`` [Ho20 alg. 2].

    Built once for a network, schedule, ``shape`` and ``generator``; each call returns a fresh batch
    x_0 and advances ``generator`` exactly as ``sample`` would, so the same seed gives the same x_0
    to round-off. What makes it fast:

    - the coefficients of every step are computed once, in float64, and passed to the kernels as
      scalars: no gather, no cast and no host-device traffic inside the loop;
    - the steps t are views of one ``arange`` (no allocation), the noise z is drawn in place into one
      buffer, and x is updated in place;
    - nothing in the loop reads a tensor value on the host, so nothing waits for the device;
    - on CUDA (``cuda_graph=None`` or ``True``) the first call captures the whole loop, x_T's draw
      included, as one CUDA graph (``generator`` registered with it, so every replay advances it as
      the eager loop does) and every call replays it: one launch per sample. ``capture_s`` holds the
      capture time, which belongs to the first call only.

    The network must be a pure function of its inputs for the graph (no host sync, no data-dependent
    control flow); pass ``cuda_graph=False`` otherwise.
    """

    def __init__(
        self,
        eps_model: EpsModel,
        schedule: Schedule,
        shape: Sequence[int],
        *,
        sigma2: str = "beta",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        cuda_graph: bool | None = None,
    ):
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        self.device, self.dtype, self.shape = torch.device(device), dtype, tuple(shape)
        if len(self.shape) < 1 or min(self.shape) < 1:
            raise ValueError(f"shape must be (batch, ...) with every size >= 1, got {self.shape}")
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device, got {self.device}")
        self.eps_model, self.generator, self.T = eps_model, generator, schedule.T
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        # Host scalars, one per step, computed once in float64 [Ho20 eq. 11, §3.2].
        self.eps_coef = schedule.eps_coef.tolist()  # beta_t / sqrt(1 - alpha_bar_t)
        self.sqrt_alpha = schedule.alpha.sqrt().tolist()  # sqrt(alpha_t)
        self.sigma = reverse_variance(schedule, sigma2).sqrt().tolist()  # sigma_t
        # steps[t] is a (batch,) view filled with t: no tensor is made inside the loop.
        self.steps = torch.arange(self.T + 1, device=self.device).unsqueeze(1).expand(-1, self.shape[0]).unbind(0)
        self.capture_s: float | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._x: Tensor | None = None  # the graph's static buffers, made by _capture
        self._z: Tensor | None = None

    @torch.no_grad()
    def __call__(self) -> Tensor:
        """One batch x_0 [Ho20 alg. 2]: a graph replay on CUDA, the eager loop elsewhere."""
        if not self.cuda_graph:
            return self._loop(self._empty(), self._empty())
        if self._graph is None:
            self._graph = self._capture()
        self._graph.replay()
        assert self._x is not None  # _capture made it
        return self._x.clone()  # the next replay overwrites the static buffer

    def _empty(self) -> Tensor:
        return torch.empty(self.shape, device=self.device, dtype=self.dtype)

    def _loop(self, x: Tensor, z: Tensor) -> Tensor:
        """Algorithm 2 in place on the buffers x and z; returns x, now x_0."""
        g = self.generator
        x.normal_(generator=g)  # line 1: x_T ~ N(0, I)
        for t in range(self.T, 0, -1):  # line 2: for t = T, ..., 1
            eps = self.eps_model(x, self.steps[t])
            x.sub_(eps, alpha=self.eps_coef[t]).div_(self.sqrt_alpha[t])  # line 4: the mean, eq. 11
            if t > 1:  # line 3: z ~ N(0, I) if t > 1, else z = 0
                x.add_(z.normal_(generator=g), alpha=self.sigma[t])  # line 4: + sigma_t z
        return x  # line 6: return x_0

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Record the whole loop into one CUDA graph, after warming the network up on a side stream."""
        start = time.perf_counter()
        x, z = self._empty().zero_(), self._empty()
        self._x, self._z = x, z
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # lazy initialisation (cuBLAS, cuDNN autotuning) must not be captured
            for _ in range(3):
                self.eps_model(x, self.steps[self.T])
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:  # the default generator is registered by torch itself
            graph.register_generator_state(self.generator)
        with torch.cuda.graph(graph):
            self._loop(x, z)
        torch.cuda.synchronize(self.device)
        self.capture_s = time.perf_counter() - start
        return graph


def sample_fast(
    eps_model: EpsModel,
    schedule: Schedule,
    shape: Sequence[int],
    *,
    sigma2: str = "beta",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One batch x_0 by Algorithm 2 on the fast path [Ho20 alg. 2].

    The same draw as ``sample`` to round-off.

    The eager fast loop of :class:`FastSampler`; build a ``FastSampler`` instead to sample repeatedly,
    and on CUDA to replay a captured graph.
    """
    return FastSampler(
        eps_model, schedule, shape, sigma2=sigma2, generator=generator, device=device, dtype=dtype, cuda_graph=False
    )()
