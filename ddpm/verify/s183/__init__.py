"""``ddpm verify --course 6.S183``.

The two code answers of the 6.S183 problem set 1 notebook, checked exactly.

- ``notebook``: read a ``.ipynb`` or a script export; run only imports and definitions.
- ``standins``: the verifier's smalldiffusion / accelerate / tqdm stand-ins and its probe network.
- ``observe``: the child side; drives ``training_loop`` and ``samples``, emits raw records.
- ``decide``: the parent side; every outcome from the records, against the sigma core.
"""
