# DPMSolverMultistepScheduler(use_karras_sigmas=True) hands the network one timestep at two levels.
from diffusers import DPMSolverMultistepScheduler

s = DPMSolverMultistepScheduler(use_karras_sigmas=True)
s.set_timesteps(128)
t, sigmas = s.timesteps.tolist(), s.sigmas.tolist()
twice = [(t[i], sigmas[i], sigmas[i + 1]) for i in range(len(t) - 1) if t[i] == t[i + 1]]
assert not twice, f"timestep {twice[0][0]} is handed to the network at levels {twice[0][1]:.4g} and {twice[0][2]:.4g}"
