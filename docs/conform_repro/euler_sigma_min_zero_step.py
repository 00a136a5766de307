# EulerDiscreteScheduler(final_sigmas_type="sigma_min") ends on two equal levels: 10 steps asked, 9 taken.
from diffusers import EulerDiscreteScheduler

s = EulerDiscreteScheduler(final_sigmas_type="sigma_min")
s.set_timesteps(10)
sigmas = s.sigmas.tolist()
assert sigmas[-2] != sigmas[-1], f"the last step goes from level {sigmas[-2]:.6g} to {sigmas[-1]:.6g}: length zero"
