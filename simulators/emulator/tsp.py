"""A small interpreter of the TSP (Lua 5.0) lines hosts send to Keithley 2600B and 707B instruments.

Enough of the language for instrument control and the manuals' examples: assignments
(`a.b = expr`, `x, y = f()`, `local v = ...`), calls, `;` or spaces between
statements, numbers, strings, `nil`/`true`/`false`, dotted names, indexing
(`smua.nvbuffer1[1]`), arithmetic (`+ - * / % ^`, unary minus, parentheses), `..`
(concatenation), comparisons and `and`/`or`/`not`.  A call that ends an argument list
or an assignment gives all its values (Lua's multiple results).  Names are resolved by
the instrument (`get`, `set`, `call`, `index`); locals live for the line.  An unknown
name or a syntax error queues -285 ("TSP syntax error") or -286 ("TSP runtime error")
as the 2600B reference manual's error list does, and the rest of the line is skipped.
`print()` writes its values separated by tabs, numbers in `format.asciiprecision`
digits (`%.{p-1}e`, default 6: `2.50000e-01`, `1.00000e+00`), and ends its line: a line with
two `print()` calls answers two lines, as the instrument's output queue does.
`errorCode, message, severity, errorNode = errorqueue.next()` gives each entry its level
from the manual's error summary list (`error_levels`; 0 NO_SEVERITY for the empty queue,
10 INFORMATIONAL, 20 RECOVERABLE, 30 SERIOUS, 40 FATAL) and the local node, 1 on a
stand-alone instrument;
`*IDN?` and the other common commands are understood as well.
"""

from __future__ import annotations

import re
from typing import Any

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.scpi import ESR_PON, Instrument

_TOKEN = re.compile(
    r"""\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<str>"[^"]*"|'[^']*')|"""
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|"""
    r"""(?P<op>\.\.|==|~=|<=|>=|[-+*/%^(),=\[\]<>;]))"""
)
KEYWORDS = {"and", "or", "not", "nil", "true", "false", "local"}
BINARY = [("or",), ("and",), ("<", ">", "<=", ">=", "==", "~="), ("..",), ("+", "-"), ("*", "/", "%")]


class TspError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def syntax(near: Any) -> TspError:
    return TspError(-285, f"TSP Syntax error at line 1: unexpected symbol near '{near}'")


def tokenize(line: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos, line = 0, line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            if line[pos:].strip() == "":
                break
            raise syntax(line[pos : pos + 10].strip())
        pos = m.end()
        if m["num"] is not None:
            out.append(("num", float(m["num"])))
        elif m["str"] is not None:
            out.append(("str", m["str"][1:-1]))
        elif m["name"] is not None:
            out.append(("kw" if m["name"] in KEYWORDS else "name", m["name"]))
        else:
            out.append(("op", m["op"]))
    return out


def _number(v: Any, op: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (float, str)):
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to perform arithmetic ({op}) on a "
                             f"{'nil' if v is None else type(v).__name__} value")
    try:
        return float(v)
    except ValueError:
        raise TspError(-286, "TSP Runtime error at line 1: attempt to perform arithmetic on a string") from None


def binary(op: str, a: Any, b: Any) -> Any:
    if op == "..":
        return tostring(a) + tostring(b)
    if op in ("==", "~="):
        return (a == b) == (op == "==")
    if op in ("<", ">", "<=", ">="):
        x, y = _number(a, op), _number(b, op)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
    x, y = _number(a, op), _number(b, op)
    if op in ("/", "%") and y == 0:
        return float("nan") if op == "%" or x == 0 else float("inf") * (1 if x > 0 else -1)
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else 0.0, "%": x % y if y else 0.0, "^": x**y}[op]


#: errorqueue.next() severities used here (2600B and 707B reference manuals, "Error levels":
#: 0 NO_SEVERITY, 10 INFORMATIONAL, 20 RECOVERABLE, 30 SERIOUS, 40 FATAL)
NO_SEVERITY, RECOVERABLE, SERIOUS = 0.0, 20.0, 30.0


class TspInstrument(Instrument):
    """Base of TSP instruments: `get`, `set`, `call`, `index` of names are the instrument's."""

    asciiprecision = 6.0
    #: level of each code the instrument queues (its manual's error summary list); others RECOVERABLE,
    #: the level of every command and parameter error of the list
    error_levels: dict[int, float] = {-350: RECOVERABLE, -286: RECOVERABLE, -285: RECOVERABLE, 1405: RECOVERABLE}
    #: TSP-Link node number of the instrument: 1, the stand-alone instrument's localnode
    node = 1.0

    def execute(self, message: bytes) -> bytes | None:
        line = message.decode("latin-1").strip()
        self.commands_seen += 1
        if line.startswith("*"):
            return self._common(line.split()[0].upper())
        self.output: list[str | bytes] = []
        self.local: dict[str, Any] = {}
        try:
            self.tokens, self.pos = tokenize(line), 0
            while self.pos < len(self.tokens):
                if self._peek() == ("op", ";"):
                    self.pos += 1
                    continue
                self._statement()
        except (TspError, ScpiError) as exc:
            self.push_error(exc.code, exc.message)
        if not self.output:
            return None
        return b"".join((o if isinstance(o, bytes) else o.encode("latin-1")) + b"\n" for o in self.output)

    def _common(self, head: str) -> bytes | None:
        if head in ("*IDN?", "*OPC?", "*TST?"):
            if head == "*OPC?":
                self.wait_idle()
            return {"*IDN?": self.idn, "*OPC?": "1", "*TST?": "0"}[head].encode() + b"\n"
        if head == "*ESR?":
            value, self.esr = self.esr, 0
            return f"{value}\n".encode()
        if head in ("*CLS", "*RST", "*WAI"):
            if head == "*CLS":
                self.errors.clear()
                self.esr = 0
            elif head == "*RST":
                self.reset()
            return None
        self.push_error(-285, f"TSP Syntax error; unknown common command {head}")
        return None

    # --- parser (recursive descent over self.tokens) ------------------------------------------------
    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, op: str) -> None:
        if self._peek() != ("op", op):
            tok = self._peek()
            raise TspError(-285, f"TSP Syntax error at line 1: '{op}' expected near '{tok[1] if tok else '<eof>'}'")
        self.pos += 1

    def _statement(self) -> None:
        tok = self._peek()
        is_local = tok == ("kw", "local")
        if is_local:
            self.pos += 1
            tok = self._peek()
        if tok is None or tok[0] != "name":
            raise syntax(tok[1] if tok else "<eof>")
        self.pos += 1
        if not is_local and self._peek() == ("op", "("):
            self._call(tok[1])
            return
        targets = [tok[1]]
        while self._peek() == ("op", ","):
            self.pos += 1
            nxt = self._peek()
            if nxt is None or nxt[0] != "name":
                raise TspError(-285, "TSP Syntax error at line 1: '=' expected")
            targets.append(nxt[1])
            self.pos += 1
        if self._peek() != ("op", "=") and is_local:
            values: list[Any] = []
        else:
            self._take("=")
            values = self._exprlist()
        for i, t in enumerate(targets):
            v = values[i] if i < len(values) else None
            if "." in t and not is_local and t.split(".")[0] not in self.local:
                self.set(t, v)
            else:
                self.local[t] = v

    def _exprlist(self) -> list[Any]:
        """Comma-separated expressions; the last one gives all its values when it is a call."""
        values: list[Any] = []
        while True:
            v = self._expr()
            if self._peek() == ("op", ","):
                values.append(v[0] if isinstance(v, tuple) else v)
                self.pos += 1
                continue
            values.extend(v if isinstance(v, tuple) else [v])
            return values

    def _expr(self, level: int = 0) -> Any:
        if level == len(BINARY):
            return self._unary()
        left = self._expr(level + 1)
        while (tok := self._peek()) is not None and tok[0] in ("op", "kw") and tok[1] in BINARY[level]:
            self.pos += 1
            if tok[1] in ("and", "or"):
                right = self._expr(level + 1)
                a, b = _first(left), _first(right)
                left = (b if a not in (None, False) else a) if tok[1] == "and" else (a if a not in (None, False) else b)
                continue
            right = self._expr(level + 1) if tok[1] != ".." else self._expr(level)  # `..` is right-associative
            left = binary(tok[1], _first(left), _first(right))
        return left

    def _unary(self) -> Any:
        tok = self._peek()
        if tok == ("op", "-"):
            self.pos += 1
            return -_number(_first(self._unary()), "-")
        if tok == ("kw", "not"):
            self.pos += 1
            return _first(self._unary()) in (None, False)
        base = self._primary()
        if self._peek() == ("op", "^"):
            self.pos += 1
            return binary("^", _first(base), _first(self._unary()))
        return base

    def _primary(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise TspError(-285, "TSP Syntax error at line 1: unexpected symbol near '<eof>'")
        self.pos += 1
        kind, value = tok
        if kind in ("num", "str"):
            result: Any = value
        elif kind == "kw" and value in ("nil", "true", "false"):
            result = {"nil": None, "true": True, "false": False}[value]
        elif tok == ("op", "("):
            result = _first(self._expr())
            self._take(")")
        elif kind == "name":
            if self._peek() == ("op", "("):
                result = self._call(value)
            else:
                result = self.local[value] if value in self.local else self._get(value)
        else:
            raise syntax(value)
        while self._peek() == ("op", "["):
            self.pos += 1
            key = _first(self._expr())
            self._take("]")
            result = self.index(_first(result), key)
        return result

    def _get(self, name: str) -> Any:
        head, _, rest = name.partition(".")
        if head in self.local and rest:
            raise TspError(-286, f"TSP Runtime error at line 1: attempt to index local '{head}'")
        return self.get(name)

    def _call(self, name: str) -> Any:
        self._take("(")
        args = [] if self._peek() == ("op", ")") else self._exprlist()
        self._take(")")
        return self.call(name, args)

    # --- built-ins --------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        if name == "localnode.model":
            return self.idn.split(",")[1].strip().removeprefix("Model ")
        if name == "localnode.linefreq":
            return float(self.line_hz)
        if name == "localnode.serialno":
            return self.idn.split(",")[2].strip()
        if name == "localnode.revision":
            return self.idn.split(",")[3].strip()
        if name == "errorqueue.count":
            return float(len(self.errors))
        if name == "format.asciiprecision":
            return self.asciiprecision
        if name == "math.pi":
            return 3.141592653589793
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")

    def set(self, name: str, value: Any) -> None:
        if name in ("localnode.prompts", "localnode.showerrors", "localnode.prompts4882"):
            return  # the emulator never prompts and never prints errors unasked
        if name == "format.asciiprecision":
            if not isinstance(value, float) or not 1 <= value <= 16:
                raise TspError(1405, "Invalid ASCII precision")
            self.asciiprecision = value
            return
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")

    def index(self, value: Any, key: Any) -> Any:
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a {type(value).__name__} value")

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "print":
            self.output.append("\t".join(tostring(a, int(self.asciiprecision)) for a in args))
            return None
        if name == "tostring":
            return tostring(args[0] if args else None)
        if name == "tonumber":
            try:
                return float(args[0]) if args else None
            except (TypeError, ValueError):
                return None
        if name == "string.format":
            return _format(args)
        if name == "errorqueue.next":
            code, message = self.next_error()
            if code == 0:
                return (0.0, "Queue Is Empty", NO_SEVERITY, 0.0)
            return (float(code), message, self.error_levels.get(code, RECOVERABLE), self.node)
        if name == "errorqueue.clear":
            self.errors.clear()
            return None
        if name == "delay":
            self.work(_number(args[0] if args else None, "delay"))
            return None
        if name in ("waitcomplete", "opc"):
            self.wait_idle()
            return None
        if name == "reset":
            self.reset()
            return None
        if name in ("math.abs", "math.sqrt", "math.floor", "math.log10"):
            import math

            return float(getattr(math, name.split(".")[1] if name != "math.abs" else "fabs")(_number(args[0], name)))
        raise TspError(-286, f"TSP Runtime error at line 1: attempt to call a nil value (field '{name}')")

    def power_cycle(self) -> None:
        with self.lock:
            self.errors.clear()
            self.esr = ESR_PON
            self.busy_until = 0.0
            self.asciiprecision = 6.0
            self.reset()


def _first(v: Any) -> Any:
    return (v[0] if v else None) if isinstance(v, tuple) else v


def _format(args: list[Any]) -> str:
    fmt = str(args[0]) if args else ""
    try:
        return fmt % tuple(int(a) if isinstance(a, float) and a.is_integer() and re.search(r"%\d*d", fmt) else a
                           for a in args[1:])
    except (TypeError, ValueError) as exc:
        raise TspError(-286, f"TSP Runtime error at line 1: bad argument to 'format' ({exc})") from None


def tostring(v: Any, precision: int | None = None) -> str:
    """A value as `print` writes it (numbers in `%.{precision-1}e`), or as `..` and `tostring` do (`%.14g`)."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.14g}" if precision is None else f"{v:.{max(precision - 1, 0)}e}"
    return str(v)
