"""Parsing of SCPI program messages and their parameters (IEEE 488.2 framing, SCPI-99 data types).

Framing follows IEEE 488.2 on a socket: a program message ends at `\\n`, except inside a
definite-length binary block `#<n><len><data>` (whose data may hold any byte) or a
quoted string.  A message may hold several commands separated by `;`.  Numeric
parameters take MINimum / MAXimum / DEFault names; a value outside the allowed range is
-222 "Data out of range", a malformed one -104 "Data type error".
"""

from __future__ import annotations

import re

import numpy as np

from hil.simulators.emulator.errors import (
    DATA_OUT_OF_RANGE,
    DATA_TYPE,
    ILLEGAL_VALUE,
    MISSING_PARAMETER,
    ScpiError,
    err,
)


def split_message(buf: bytes) -> tuple[bytes | None, bytes]:
    """One program message off the front of `buf` (without its `\\n`), or None when incomplete."""
    i, n, quoted = 0, len(buf), False
    while i < n:
        c = buf[i : i + 1]
        if c == b'"':
            quoted = not quoted
        elif not quoted and c == b"#" and i + 1 < n and buf[i + 1 : i + 2].isdigit() and buf[i + 1 : i + 2] != b"0":
            d = int(buf[i + 1 : i + 2])
            if n < i + 2 + d:
                return None, buf
            length = int(buf[i + 2 : i + 2 + d] or b"0")
            i = i + 2 + d + length
            continue
        elif not quoted and c == b"\n":
            return buf[:i], buf[i + 1 :]
        i += 1
    return None, buf


def split_commands(msg: bytes) -> list[bytes]:
    """The `;`-separated commands of one message (not inside quotes, parentheses or binary blocks)."""
    out, start, i, n, quoted, depth = [], 0, 0, len(msg), False, 0
    while i < n:
        c = msg[i : i + 1]
        if c == b'"':
            quoted = not quoted
        elif not quoted and c == b"(":
            depth += 1
        elif not quoted and c == b")":
            depth = max(0, depth - 1)
        elif not quoted and c == b"#" and i + 1 < n and msg[i + 1 : i + 2].isdigit() and msg[i + 1 : i + 2] != b"0":
            d = int(msg[i + 1 : i + 2])
            length = int(msg[i + 2 : i + 2 + d] or b"0")
            i = i + 2 + d + length
            continue
        elif not quoted and depth == 0 and c == b";":
            out.append(msg[start:i])
            start = i + 1
        i += 1
    out.append(msg[start:])
    return [m.strip() for m in out if m.strip()]


def split_params(text: str) -> list[str]:
    """Comma-separated parameters, keeping quoted strings and `(@...)` channel lists whole."""
    out, cur, quoted, depth = [], "", False, 0
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and not quoted and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip() or out:
        out.append(cur.strip())
    return out


def block_data(param: bytes) -> bytes:
    """The data of an IEEE 488.2 definite-length block parameter."""
    if not param.startswith(b"#") or not param[1:2].isdigit() or param[1:2] == b"0":
        raise err(DATA_TYPE, "expected a definite-length block")
    d = int(param[1:2])
    length = int(param[2 : 2 + d])
    data = param[2 + d : 2 + d + length]
    if len(data) != length:
        raise ScpiError(-160, "Block data error")
    return data


def definite_block(data: bytes) -> bytes:
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data


def channel_list(text: str) -> list[int]:
    """`(@101,103:105)` -> [101, 103, 104, 105] (SCPI-99 8.3.2)."""
    m = re.fullmatch(r"\s*\(@([0-9,:\s]*)\)\s*", text)
    if not m:
        raise ScpiError(-171, "Invalid expression; channel list")
    out: list[int] = []
    for part in filter(None, (p.strip() for p in m.group(1).split(","))):
        if ":" in part:
            lo, hi = (int(p) for p in part.split(":"))
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def number(text: str, lo: float | None = None, hi: float | None = None, names: dict[str, float] | None = None) -> float:
    """A numeric parameter (with MIN/MAX/DEF names), checked against [lo, hi] (-222 outside)."""
    t = text.strip().upper()
    if not t:
        raise err(MISSING_PARAMETER)
    table = {"MIN": lo, "MINIMUM": lo, "MAX": hi, "MAXIMUM": hi, **{k.upper(): v for k, v in (names or {}).items()}}
    if t in table and table[t] is not None:
        return float(table[t])  # type: ignore[arg-type]
    try:
        v = float(t)
    except ValueError:
        raise err(DATA_TYPE, text[:20]) from None
    if not np.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise err(DATA_OUT_OF_RANGE, text[:20])
    return v


def boolean(text: str) -> bool:
    t = text.strip().upper()
    if t in ("ON", "1"):
        return True
    if t in ("OFF", "0"):
        return False
    raise err(ILLEGAL_VALUE, text[:20])


def unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    return t


def text(raw: bytes) -> str:
    return raw.decode("latin-1").strip()
