# DDPMScheduler(fixed_large, trailing): the last step (t = 99 -> x_0) adds noise; Algorithm 2 adds none [Ho20].
import torch
from diffusers import DDPMScheduler

s = DDPMScheduler(variance_type="fixed_large", timestep_spacing="trailing")
s.set_timesteps(10)
t, ab = int(s.timesteps[-1]), s.alphas_cumprod.double()[int(s.timesteps[-1])]  # t = 99, the step to x_0
x0, eps = torch.full((1, 1000), 0.5).double(), torch.randn(1, 1000, generator=torch.Generator().manual_seed(0)).double()
out = s.step(eps, t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps, generator=torch.Generator().manual_seed(0)).prev_sample
assert (out - x0).abs().max() < 1e-3, f"the final sample is x_0 plus noise of std {(out - x0).std():.3f}"
