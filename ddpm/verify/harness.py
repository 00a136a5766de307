"""The verifier's settings under their old import path: :class:`ddpm.verify.dtu.specs.Config`.

The command line imports ``Config`` from here; the 02460 plug-in keeps it in ``ddpm.verify.dtu.specs``.
"""

from ddpm.verify.dtu.specs import Config

__all__ = ["Config"]
