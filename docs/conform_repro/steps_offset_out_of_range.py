# DDIMScheduler(steps_offset=1) (Stable Diffusion's config) with 1000 steps lists timestep 1000 of 0..999.
import torch
from diffusers import DDIMScheduler

s = DDIMScheduler(steps_offset=1)
s.set_timesteps(1000)
assert int(s.timesteps.max()) <= 999, f"timesteps start {s.timesteps[:3].tolist()}"
x = torch.zeros(1, 8)
s.step(x, s.timesteps[0], x)  # IndexError: index 1000 is out of bounds for dimension 0 with size 1000
