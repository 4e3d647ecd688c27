"""hil-ep: Equilibrium Propagation in the loop, on a resistive board or its software twin.

The interface types load on first use (PEP 562), so that `import hil` (and `hil --help`)
does not import torch.
"""

import logging
from typing import Any

__all__ = ["Crossbar", "Measurement", "Nudge", "ProgramReport", "Topology", "Workspace", "open_workspace"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name in ("Workspace", "open_workspace"):
        from hil import workspace

        return getattr(workspace, name)
    if name in __all__:
        from hil import interface

        return getattr(interface, name)
    raise AttributeError(f"module 'hil' has no attribute {name!r}")
