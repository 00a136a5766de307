# DDIMScheduler(timestep_spacing="linspace") lists 999, 888, ... but step() at 999 lands at 899 [Song21 eq. 12].
import torch
from diffusers import DDIMScheduler

s = DDIMScheduler(timestep_spacing="linspace")
s.set_timesteps(10)
t, t_next = int(s.timesteps[0]), int(s.timesteps[1])  # 999, 888
ab = s.alphas_cumprod.double()
x0, eps = torch.full((1, 8), 0.5).double(), torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).double()
x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps  # eps is the exact noise: DDIM must land on q(x_t' | x_0)
err = (s.step(eps, t, x_t).prev_sample - (ab[t_next].sqrt() * x0 + (1 - ab[t_next]).sqrt() * eps)).abs().max()
assert err < 1e-5, f"step({t}) misses the listed timestep {t_next} by {err:.2g}"
