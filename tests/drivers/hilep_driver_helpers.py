"""Helpers of the driver tests: binary replies as the instruments send them."""

from __future__ import annotations

import numpy as np


def block0(values, dtype: str = "<f4") -> bytes:
    """An indefinite-length block `#0<data>\\n` (2400 REAL,32 and 2600 printbuffer REAL32)."""
    return b"#0" + np.asarray(values, dtype=dtype).tobytes() + b"\n"


def block(values, dtype: str = "<f4") -> bytes:
    """A definite-length IEEE 488.2 block `#<n><len><data>\\n`."""
    data = np.asarray(values, dtype=dtype).tobytes()
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data + b"\n"


def ramp(values: list[float]) -> list[str]:
    return [f"{v:g}" for v in values]
