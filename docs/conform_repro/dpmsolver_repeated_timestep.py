# DPMSolverMultistepScheduler with 1000 steps lists timestep 500 twice: a step of length zero.
from diffusers import DPMSolverMultistepScheduler

s = DPMSolverMultistepScheduler()
s.set_timesteps(1000)
t = s.timesteps.tolist()
repeated = sorted({k for k in t if t.count(k) > 1})
assert not repeated, f"set_timesteps(1000) lists {repeated} more than once ({len(set(t))} distinct of {len(t)})"
