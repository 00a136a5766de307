# EulerDiscreteScheduler(interpolation_type="log_linear") lists n + 2 levels for n steps: sampling stops short of 0.
from diffusers import EulerDiscreteScheduler

s = EulerDiscreteScheduler(interpolation_type="log_linear")
s.set_timesteps(10)
n, levels = len(s.timesteps), s.sigmas.tolist()
assert len(levels) == n + 1, f"{len(levels)} levels for {n} steps: the last ends at {levels[n]:.4g}, not {levels[-1]:g}"
