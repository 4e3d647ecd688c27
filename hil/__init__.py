"""hil-ep: Equilibrium Propagation in the loop, on a resistive board or its software twin."""

import logging

from hil.interface import Crossbar, Measurement, Nudge, ProgramReport, Topology
from hil.workspace import Workspace, open_workspace

__all__ = ["Crossbar", "Measurement", "Nudge", "ProgramReport", "Topology", "Workspace", "open_workspace"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
