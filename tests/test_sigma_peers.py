"""The sigma world's samplers against independent code.

diffusers' DDIMScheduler and DDPMScheduler through
the VE-VP bridge (step by step, same noise, float64), and smalldiffusion, the library the 6.S183 notebook
builds on (an opt-in extra: ``pip install -e .[smalldiffusion]``; it pulls torchvision and a CUDA torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm.beta.schedule import cosine_schedule, linear_schedule
from ddpm.nets import FcNetwork
from ddpm.sigma.sampler import DDIM, DDPM, VPEpsAsSigma, gam_mu_steps
from ddpm.sigma.schedule import log_linear_sigmas, sample_sigmas, sigma_twin, ve_to_vp, vp_to_ve

F64 = torch.float64


def _network(T: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FcNetwork(2, num_hidden=32, T=T).double().eval()


class ShiftedTimesteps(torch.nn.Module):
    """The network as diffusers calls it, ``model(x, timestep)`` with its 0-based timestep.

    t = timestep + 1.
    """

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.net(x, (timestep + 1).expand(x.shape[0]))


def _float64_schedule(scheduler, schedule) -> None:
    """diffusers keeps its coefficients in float32.

    Give it ours in float64 so the comparison is of formulas, not of
    float32 rounding (the same alpha_bar that ``trained_betas`` would give, unrounded)."""
    scheduler.betas = schedule.betas.clone()
    scheduler.alphas = 1 - scheduler.betas
    scheduler.alphas_cumprod = schedule.alpha_bar[1:].clone()
    if hasattr(scheduler, "final_alpha_cumprod"):
        scheduler.final_alpha_cumprod = (
            torch.tensor(1.0, dtype=F64) if scheduler.config.set_alpha_to_one else scheduler.alphas_cumprod[0]
        )
    if hasattr(scheduler, "one"):
        scheduler.one = torch.tensor(1.0, dtype=F64)


def _assert_round_off(name: str, got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-11) -> float:
    err = float((got - want).abs().max() / want.abs().max())
    assert err <= rtol, f"{name}: relative difference {err:.3g} > {rtol:g}"
    return err


def compare_ddim(schedule, k: int, set_alpha_to_one: bool, levels=lambda twin: twin[1:]) -> float:
    """diffusers' DDIM beside gam_mu_steps(**DDIM) on ``sample_sigmas(levels(twin), k)``.

    The worst difference.
    """
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler  # the class itself, not its package's stand-in

    T = schedule.T
    scheduler = DDIMScheduler(
        num_train_timesteps=T,
        trained_betas=schedule.betas.numpy(),
        clip_sample=False,
        set_alpha_to_one=set_alpha_to_one,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    _float64_schedule(scheduler, schedule)
    scheduler.set_timesteps(k)
    net = _network(T)
    twin = sigma_twin(schedule)
    sigmas = sample_sigmas(levels(twin), k)
    if set_alpha_to_one:
        sigmas = torch.cat([sigmas[:-1], twin[:1]])
    x_vp = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    ours = gam_mu_steps(
        VPEpsAsSigma(net, schedule), sigmas, vp_to_ve(x_vp, schedule.alpha_bar[int(scheduler.timesteps[0]) + 1]), **DDIM
    )
    model = ShiftedTimesteps(net)
    abar_after = [
        *(schedule.alpha_bar[int(j) + 1] for j in scheduler.timesteps[1:]),
        1.0 if set_alpha_to_one else schedule.alpha_bar[1],
    ]
    worst = 0.0
    with torch.no_grad():
        for j, x_ve, ab in zip(scheduler.timesteps, ours, abar_after):
            x_vp = scheduler.step(model(x_vp, j), j, x_vp, eta=0.0).prev_sample
            worst = max(worst, _assert_round_off(f"DDIM at timestep {int(j)}", ve_to_vp(x_ve, ab), x_vp))
    return worst


@pytest.mark.parametrize("k", [10, 50])
@pytest.mark.parametrize("set_alpha_to_one", [False, True])
@pytest.mark.parametrize(
    "make", [lambda: linear_schedule(1000), lambda: cosine_schedule(1000)], ids=["linear", "cosine"]
)
def test_ddim_is_diffusers_ddim_through_the_bridge(k, set_alpha_to_one, make):
    """DDIMScheduler(eta = 0, trailing, clip_sample = False) step by step equals gam_mu_steps(**DDIM).

    On the sigma twin.

    diffusers walks timesteps round(T (1 - i/k)) - 1 (its 0-based t - 1): ``sample_sigmas`` of the twin's
    levels t = 1..T. Its last step goes to alpha_bar_1 (sigma_1, as sample_sigmas ends) or, with
    ``set_alpha_to_one``, to alpha_bar = 1 (sigma = 0). T is a multiple of k: diffusers' DDIM takes its previous
    timestep as t - T // k, which is the next one in its own trailing list only then. Measured: ~1e-15 relative.
    """
    pytest.importorskip("diffusers", reason="diffusers is in the test extra: pip install -e .[test]")
    compare_ddim(make(), k, set_alpha_to_one)


def test_ddim_comparison_rejects_levels_one_step_off():
    """The same comparison with the twin's levels shifted by one fails.

    The levels t = 0..T-1 stand for t = 1..T (sigma_{t-1} where sigma_t belongs).
    """
    pytest.importorskip("diffusers", reason="diffusers is in the test extra: pip install -e .[test]")
    with pytest.raises(AssertionError, match="relative difference"):
        compare_ddim(linear_schedule(1000), 10, False, levels=lambda twin: torch.cat([twin[:1] + 1e-3, twin[1:-1]]))


@pytest.mark.parametrize("make", [lambda: linear_schedule(200), lambda: cosine_schedule(100)], ids=["linear", "cosine"])
def test_ddpm_is_diffusers_ddpm_fixed_small_through_the_bridge(make):
    """DDPMScheduler(fixed_small, clip_sample = False) is gam_mu_steps(**DDPM) on the sigma twin.

    At every step, on the full sigma twin.

    The same noise: x_T first, then one draw per step from the same seed (diffusers draws none at its last
    step, where our eta is 0).
    """
    diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra: pip install -e .[test]")

    schedule = make()
    T = schedule.T
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        trained_betas=schedule.betas.numpy(),
        variance_type="fixed_small",
        clip_sample=False,
        prediction_type="epsilon",
    )
    _float64_schedule(scheduler, schedule)
    scheduler.set_timesteps(T)
    net = _network(T)
    g_peer, g_ours = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x_vp = torch.randn(64, 2, generator=g_peer, dtype=F64)
    start = vp_to_ve(torch.randn(64, 2, generator=g_ours, dtype=F64), schedule.alpha_bar[T])
    ours = gam_mu_steps(VPEpsAsSigma(net, schedule), sigma_twin(schedule).flip(0), start, generator=g_ours, **DDPM)
    model = ShiftedTimesteps(net)
    worst = 0.0
    with torch.no_grad():
        for j, x_ve in zip(scheduler.timesteps, ours):
            x_vp = scheduler.step(model(x_vp, j), j, x_vp, generator=g_peer).prev_sample
            worst = max(
                worst, _assert_round_off(f"DDPM at timestep {int(j)}", ve_to_vp(x_ve, schedule.alpha_bar[int(j)]), x_vp)
            )
    print(f"DDPM T={T}: worst relative difference {worst:.2g}")


def test_diffusers_trailing_spacing_is_sample_sigmas():
    diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra: pip install -e .[test]")
    schedule = linear_schedule(1000)
    net = VPEpsAsSigma(lambda x, t: x, schedule)
    for k in (1, 4, 10, 20, 50, 250, 1000):
        scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
        scheduler.set_timesteps(k)
        ours = net.t_of(sample_sigmas(sigma_twin(schedule)[1:], k)[:-1]) - 1
        assert scheduler.timesteps.tolist() == ours.tolist(), k


def test_vp_eps_as_sigma_rejects_levels_off_the_twin():
    net = VPEpsAsSigma(lambda x, t: x, linear_schedule(100))
    with pytest.raises(ValueError, match="not levels"):
        net(torch.zeros(2, 2, dtype=F64), torch.tensor([0.5, 0.5], dtype=F64))


# --- smalldiffusion (opt-in) ----------------------------------------------------------------------


def _smalldiffusion():
    return pytest.importorskip(
        "smalldiffusion",
        reason="smalldiffusion is an opt-in extra (pip install -e .[smalldiffusion]): "
        "it pulls torchvision and a multi-GB CUDA torch, so the default test run leaves it out",
    )


def test_smalldiffusion_schedule_and_swissroll():
    sd = _smalldiffusion()
    from ddpm.data import Swissroll

    schedule = sd.ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)
    theirs = np.array([float(schedule[i]) for i in range(len(schedule))])
    assert np.allclose(theirs, log_linear_sigmas().numpy(), rtol=1e-6)
    for k in (1, 7, 10, 50, 200):
        assert np.allclose(
            np.asarray(schedule.sample_sigmas(k), dtype=np.float64),
            sample_sigmas(log_linear_sigmas(), k).numpy(),
            rtol=1e-6,
        )
    data = sd.Swissroll(np.pi / 2, 5 * np.pi, 200)
    points = torch.stack([torch.as_tensor(data[i]) for i in range(len(data))]).to(F64)
    assert torch.allclose(points, Swissroll().points, atol=1e-6)


@pytest.mark.parametrize("gam, mu", [(1.0, 0.0), (2.0, 0.0), (1.0, 0.5)])
def test_smalldiffusion_samples_with_the_ideal_denoiser(gam, mu):
    """smalldiffusion's ``samples`` with its IdealDenoiser vs gam_mu_steps with ours, from the same start.

    smalldiffusion writes sigma' = sigma^(1 - mu) sigma_p^mu where PY23 (and ddpm) write sigma^mu sigma_p^(1 - mu):
    the two agree at mu = 0 and mu = 1/2, the presets. Its noise comes from the global generator, one draw per step;
    ours from a generator seeded alike.
    """
    sd = _smalldiffusion()
    from ddpm.data import Swissroll

    data = sd.Swissroll(np.pi / 2, 5 * np.pi, 200)
    model = sd.IdealDenoiser(data)
    # its noise, whatever the version's rand_input signature: one N(0, I) draw a step from the global generator
    model.rand_input = lambda *args, **kwargs: torch.randn(256, 2)
    sigmas = sd.ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10).sample_sigmas(10)
    x = float(sigmas[0]) * torch.randn(256, 2, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(4)
    theirs = list(sd.samples(model, sigmas, gam=gam, mu=mu, xt=x.clone(), batchsize=256))
    ours = list(
        gam_mu_steps(
            Swissroll().ideal_denoiser(),
            sigmas.to(F64),
            x.clone(),
            gam=gam,
            mu=mu,
            generator=torch.Generator().manual_seed(4),
        )
    )
    for i, (a, b) in enumerate(zip(ours, theirs)):
        # float32 on both sides: agreement to float32 round-off amplified by the softmax at small sigma
        assert float((a - b.to(a.dtype)).abs().max()) <= 1e-3 * max(1.0, float(b.abs().max())), i
