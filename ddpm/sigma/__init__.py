"""The noise-level world of 6.S183: x_sigma = x_0 + sigma eps, with sigma as time [6.S183 Q1b].

Sigma schedules and their bridge to a beta schedule, the (gam, mu) sampler family with DDIM and DDPM in
it [PY23 App. A], the training loss, flow matching, and the Swissroll run.
"""
