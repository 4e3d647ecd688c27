"""The instrument errors every emulated instrument queues: SCPI-99 codes (chapter 21) and the exception."""

from __future__ import annotations


class ScpiError(Exception):
    """An error the instrument puts in its queue: SCPI code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code, self.message = code, message


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")
DATA_TYPE = (-104, "Data type error")
SETTINGS_CONFLICT = (-221, "Settings conflict")


def err(pair: tuple[int, str], detail: str = "") -> ScpiError:
    return ScpiError(pair[0], pair[1] + (f"; {detail}" if detail else ""))
