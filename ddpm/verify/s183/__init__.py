"""``ddpm verify --course 6.S183``.

The two code answers of the 6.S183 problem set 1 notebook, checked exactly.

- ``specs``: the twelve specs, their claims and citations.
- ``notebook``: read a ``.ipynb`` or a script export; run only imports and definitions.
- ``standins``: the verifier's smalldiffusion / accelerate / tqdm stand-ins and its probe network.
- ``observe``: the child side; drives ``training_loop`` and ``samples``, emits raw records.
- ``decide``: the parent side; every outcome from the records, against the sigma core:
  - ``records``: the records as types, the schema the stream is held to, grouped into runs;
  - ``source``: the notebook's text, and the student's lines behind an outcome;
  - ``wording``: how an outcome is worded;
  - ``loss``: the six loss specs, from the training runs;
  - ``states``: a run of ``samples`` read back as coefficients over the start and the network's answers;
  - ``sampler``: the six sampler specs, from those coefficients and the law runs.
"""
