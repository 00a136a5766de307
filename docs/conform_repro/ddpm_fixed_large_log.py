# DDPMScheduler(variance_type="fixed_large_log"): step() returns nan (the square root of log(beta) < 0).
import torch
from diffusers import DDPMScheduler

s = DDPMScheduler(variance_type="fixed_large_log")
s.set_timesteps(10)
x = torch.zeros(1, 8)
out = s.step(x, s.timesteps[0], x, generator=torch.Generator().manual_seed(0)).prev_sample
assert torch.isfinite(out).all(), f"step({int(s.timesteps[0])}) of zeros gives {out}"
