"""Benchmarks of ddpm's sampler and training step beside a peer (diffusers' DDPMScheduler loops).

See README.md.
"""
