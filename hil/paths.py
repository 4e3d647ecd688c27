"""Paths built from user text (run names, run ids) stay inside their folder: the one helper for them."""

from __future__ import annotations

import re
from pathlib import Path

from hil.errors import UserError

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_component(text: str, what: str = "name") -> str:
    """`text` if it is one plain folder or file name (no separator, no `..`, no leading dot); else a UserError."""
    if not isinstance(text, str) or not _COMPONENT.fullmatch(text):
        raise UserError(f"{what} {text!r}: expected 1 to 128 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    return text


def inside(root: Path, *parts: str, what: str = "name") -> Path:
    """`root/part/...`, each part a plain name, and (symbolic links followed) still under `root`."""
    path = root.joinpath(*(safe_component(p, what) for p in parts))
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserError(f"{path}: leads outside {root} (a symbolic link?)")
    return path
