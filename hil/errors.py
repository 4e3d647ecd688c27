"""Errors that are the user's to fix: the CLI prints them on one line and exits with 2."""


class UserError(Exception):
    """Bad input (config, data, station file, address); never a bug in hil-ep."""

    exit_code = 2


class ConfigError(UserError):
    """A config or calibration file that does not validate; the message names file and key."""

    def __init__(self, message: str, *, key: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.key = key  # the dotted key path at fault, so that `--set` can take the blame
        self.detail = detail or message  # the message without its source


class DataError(UserError):
    """A data file that is missing, truncated or does not match its labels."""


class LimitError(UserError):
    """A request that would take an instrument outside the station's limits; nothing was sent."""


class StoreError(UserError):
    """The run store (workspace folder, hil.db, checkpoints) cannot be read or written; names the file."""
