"""A small interpreter of the TSP (Lua) lines hosts send to Keithley 2600B and 707B instruments.

Enough of the language for instrument control: assignments (`a.b=expr`, `x,y=f()`),
calls (`f(args)`), numbers, strings, dotted names and instrument attributes, several
statements on one line.  Names are resolved by the instrument (`get`, `set`,
`call`); local variables live for the line.  An unknown name or a syntax error queues
-285 ("TSP syntax error") or -286 ("TSP runtime error") as the 2600B reference
manual's error list does, and the rest of the line is skipped.  `print()` output is
the reply; `*IDN?` and the other common commands are understood as well.
"""

from __future__ import annotations

import re
from typing import Any

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.scpi import ESR_PON, Instrument

_TOKEN = re.compile(
    r"""\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<str>"[^"]*"|'[^']*')|"""
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>[(),=]))"""
)


class TspError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def tokenize(line: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    line = line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            if line[pos:].strip() == "":
                break
            raise TspError(-285, f"TSP Syntax error at line 1: unexpected symbol near '{line[pos:pos + 10]}'")
        pos = m.end()
        if m["num"] is not None:
            out.append(("num", float(m["num"])))
        elif m["str"] is not None:
            out.append(("str", m["str"][1:-1]))
        elif m["name"] is not None:
            out.append(("name", m["name"]))
        else:
            out.append(("op", m["op"]))
    return out


class TspInstrument(Instrument):
    """Base of TSP instruments: `get(name)`, `set(name, value)`, `call(name, args)` are the instrument's."""

    def execute(self, message: bytes) -> bytes | None:
        line = message.decode("latin-1").strip()
        self.commands_seen += 1
        if line.startswith("*"):
            common = {"*IDN?": self.idn, "*OPC?": "1", "*TST?": "0"}
            head = line.split()[0].upper()
            if head in common:
                return common[head].encode() + b"\n"
            if head == "*ESR?":
                value, self.esr = self.esr, 0
                return f"{value}\n".encode()
            if head == "*CLS":
                self.errors.clear()
                self.esr = 0
                return None
            if head == "*RST":
                self.reset()
                return None
            self.push_error(-285, f"TSP Syntax error; unknown common command {head}")
            return None
        self.output: list[str | bytes] = []
        self.local: dict[str, Any] = {}
        try:
            tokens = tokenize(line)
            pos = 0
            while pos < len(tokens):
                pos = self._statement(tokens, pos)
        except TspError as exc:
            self.push_error(exc.code, exc.message)
        except ScpiError as exc:
            self.push_error(exc.code, exc.message)
        if not self.output:
            return None
        return b"".join(o if isinstance(o, bytes) else o.encode("latin-1") for o in self.output) + b"\n"

    # --- parser ---------------------------------------------------------------------------------
    def _statement(self, tokens: list[tuple[str, Any]], pos: int) -> int:
        kind, value = tokens[pos]
        if kind != "name":
            raise TspError(-285, f"TSP Syntax error at line 1: unexpected symbol near '{value}'")
        targets = [value]
        pos += 1
        if pos < len(tokens) and tokens[pos] == ("op", "("):
            _, pos = self._call(value, tokens, pos)
            return pos
        while pos < len(tokens) and tokens[pos] == ("op", ","):
            if pos + 1 >= len(tokens) or tokens[pos + 1][0] != "name":
                raise TspError(-285, "TSP Syntax error at line 1: '=' expected")
            targets.append(tokens[pos + 1][1])
            pos += 2
        if pos >= len(tokens) or tokens[pos] != ("op", "="):
            raise TspError(-285, f"TSP Syntax error at line 1: '=' expected near '{targets[-1]}'")
        values, pos = self._expr(tokens, pos + 1)
        if not isinstance(values, tuple):
            values = (values,)
        for i, t in enumerate(targets):
            v = values[i] if i < len(values) else None
            if "." in t:
                self.set(t, v)
            else:
                self.local[t] = v
        return pos

    def _expr(self, tokens: list[tuple[str, Any]], pos: int) -> tuple[Any, int]:
        if pos >= len(tokens):
            raise TspError(-285, "TSP Syntax error at line 1: unexpected end")
        kind, value = tokens[pos]
        if kind in ("num", "str"):
            return value, pos + 1
        if kind == "name":
            if pos + 1 < len(tokens) and tokens[pos + 1] == ("op", "("):
                return self._call(value, tokens, pos + 1)
            if value in self.local:
                return self.local[value], pos + 1
            if value == "nil":
                return None, pos + 1
            return self.get(value), pos + 1
        raise TspError(-285, f"TSP Syntax error at line 1: unexpected symbol near '{value}'")

    def _call(self, name: str, tokens: list[tuple[str, Any]], pos: int) -> tuple[Any, int]:
        assert tokens[pos] == ("op", "(")
        pos += 1
        args: list[Any] = []
        while pos < len(tokens) and tokens[pos] != ("op", ")"):
            value, pos = self._expr(tokens, pos)
            if isinstance(value, tuple):
                value = value[0] if value else None
            args.append(value)
            if pos < len(tokens) and tokens[pos] == ("op", ","):
                pos += 1
        if pos >= len(tokens):
            raise TspError(-285, "TSP Syntax error at line 1: ')' expected")
        return self.call(name, args), pos + 1

    # --- built-ins --------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")

    def set(self, name: str, value: Any) -> None:
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "print":
            self.output.append("\t".join(_tostring(a) for a in args))
            return None
        if name == "string.format":
            fmt = str(args[0])
            try:
                return re.sub(r"%(\d*)d", r"%\1d", fmt) % tuple(
                    int(a) if isinstance(a, float) and a.is_integer() else a for a in args[1:]
                )
            except (TypeError, ValueError) as exc:
                raise TspError(-286, f"TSP Runtime error at line 1: bad argument to 'format' ({exc})") from None
        if name == "errorqueue.next":
            code, message = self.next_error()
            if code == 0:
                message = "Queue Is Empty"
            return (float(code), message, 0.0, 0.0)
        if name == "errorqueue.clear":
            self.errors.clear()
            return None
        if name == "delay":
            return None  # time passes instantly on the emulator
        if name == "reset":
            self.reset()
            return None
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to call a nil value (field '{name}')")

    def get_common(self, name: str) -> Any:
        if name == "errorqueue.count":
            return float(len(self.errors))
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")

    def power_cycle(self) -> None:
        with self.lock:
            self.errors.clear()
            self.esr = ESR_PON
            self.reset()


def _tostring(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, float):
        return f"{v:.12g}" if not v.is_integer() or abs(v) >= 1e15 else f"{v:.12g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
