"""The 02460 course plug-in of ``ddpm verify``: a DDPM written to the DTU 02460 week-3 template.

- :mod:`ddpm.verify.dtu.observe` (the child): loads the file, drives its DDPM with probe networks
  from states the verifier chooses, and emits raw records: probe inputs and outputs, every draw the
  code makes with its call site, shapes, exceptions with the student's line. It decides nothing.
- :mod:`ddpm.verify.dtu.decide` (the parent): computes every outcome from the records alone.
- :mod:`ddpm.verify.dtu.specs`: the specs, the configuration, the record kinds both sides share.
"""
