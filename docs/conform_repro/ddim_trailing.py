# DDIMScheduler(timestep_spacing="trailing") with 7 steps lists 999, 856, ... but step() at 999 lands at 857.
import torch
from diffusers import DDIMScheduler

s = DDIMScheduler(timestep_spacing="trailing")
s.set_timesteps(7)
t, t_next = int(s.timesteps[0]), int(s.timesteps[1])  # 999, 856
ab = s.alphas_cumprod.double()
x0, eps = torch.full((1, 8), 0.5).double(), torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).double()
x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps  # eps is the exact noise: DDIM must land on q(x_t' | x_0)
err = (s.step(eps, t, x_t).prev_sample - (ab[t_next].sqrt() * x0 + (1 - ab[t_next]).sqrt() * eps)).abs().max()
assert err < 1e-5, f"step({t}) misses the listed timestep {t_next} by {err:.2g}"
