"""Benchmarks of ddpm's sampler and training step beside a peer (diffusers' DDPMScheduler loops); see README.md."""
