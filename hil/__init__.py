"""hil-ep: Equilibrium Propagation in the loop, on a resistive board or its software twin."""

import logging

from hil.interface import Crossbar, Measurement, Nudge, ProgramReport, Topology

__all__ = ["Crossbar", "Measurement", "Nudge", "ProgramReport", "Topology"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
