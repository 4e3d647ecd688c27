"""Tiny TCP instruments on 127.0.0.1 for the LabCrossbar tests that need real sockets.

Each `FakeInstrument` listens on an ephemeral loopback port, records every message it
receives (binary blocks kept whole) and answers the few queries a 2-2-1 board station
asks: a conductance board (binary transfer) and a DAQ970A.  `mode` may be switched to
"silent" (read and drop, never answer) or the server `kill`ed (connections closed) to
make a dead link.  `late(on, delay_s, after)` makes it a serial line: its replies, in order, go
to the newest connection (one wire, whatever the host reopened), and one query matching
`on` is answered `delay_s` late.  Threads are daemons and every socket has a timeout.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import numpy as np

IDN = {
    "conductance_board": "HIL-EP,GBOARD-4,FAKE0001,1.0",
    "daq970a": "Keysight Technologies,DAQ970A,MY00000001,A.02.02",
}


class FakeInstrument:
    def __init__(self, kind: str, mode: str = "normal") -> None:
        self.kind = kind
        self.mode = mode
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.blocks = {"G1": np.full((2, 2), 1e-5), "G2": np.full((2, 1), 1e-5)}
        self.sweeps = 1
        self.scan: list[int] = []
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.wire: list[tuple[float, bytes]] | None = None  # serial: (when, reply) not yet sent
        self.reads = 0  # READ? queries answered
        self.late_on, self.late_s, self.late_after = "", 0.0, 0

    def late(self, on: str, delay_s: float, after: int = 0) -> None:
        """A serial line from now on (no `*ESR?`, each READ? reading its own number); the query matching
        `on` (a regex) after `after` others that match is answered `delay_s` late."""
        self.late_on, self.late_s, self.late_after = on, delay_s, after
        self.wire = []
        threading.Thread(target=self._send_wire, daemon=True).start()

    def _send_wire(self) -> None:
        while not self.stopped.is_set():
            with self.lock:
                due = [r for r in self.wire if r[0] <= time.monotonic()] if self.wire else []
                self.wire = self.wire[len(due):]
            for _, reply in due:
                try:
                    self.clients[-1].sendall(reply)
                except (OSError, IndexError):
                    pass
            time.sleep(0.005)

    @property
    def address(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    def messages(self) -> list[bytes]:
        with self.lock:
            return list(self.received)

    def text(self) -> list[str]:
        return [m.decode("latin-1") for m in self.messages()]

    def drop_clients(self) -> None:
        """Close the open connections but keep listening: a dropped session that can be reopened."""
        for c in list(self.clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.clients.clear()

    def kill(self) -> None:
        """Close every connection and the listening socket: later writes fail, connects are refused."""
        self.stopped.set()
        for c in list(self.clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.server.close()
        self.thread.join(timeout=2)

    # --- server ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.2)
            self.clients.append(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buf = b""
        while not self.stopped.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                msg, buf = _split(buf)
                if msg is None:
                    break
                with self.lock:
                    self.received.append(msg)
                if self.mode == "silent":
                    continue
                reply = self._answer(msg)
                if reply is not None and self.wire is not None:  # one wire: in order, to the newest connection
                    delay = 0.0
                    if self.late_on and re.search(self.late_on, msg.decode("latin-1")):
                        self.late_after -= 1
                        if self.late_after < 0:
                            delay, self.late_on = self.late_s, ""
                    with self.lock:
                        after = self.wire[-1][0] if self.wire else 0.0
                        self.wire.append((max(time.monotonic() + delay, after), reply))
                elif reply is not None:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def _answer(self, msg: bytes) -> bytes | None:
        text = msg.decode("latin-1")
        if text == "*IDN?":
            return IDN[self.kind].encode() + b"\n"
        if text == "SYST:ERR?":
            return b'+0,"No error"\n'
        if text == "*ESR?" and self.kind != "conductance_board" and self.wire is None:  # a serial line: no *ESR?
            return b"0\n"
        if self.kind == "conductance_board":
            if text == "BLK:CAT?":
                return b"G1,2,2;G2,2,1\n"
            if text == "SOUR:VOLT:COUN?":
                return b"3\n"
            if text == "G:RANG?":
                return b"1.000000E-06,1.000000E-03\n"
            if text.startswith("G:SET "):
                name = text[6:].split(",", 1)[0]
                data = _block_data(msg)
                self.blocks[name] = np.frombuffer(data, "<f4").astype(float).reshape(self.blocks[name].shape)
                return None
            if text.startswith("G:GET? "):
                data = self.blocks[text[7:]].astype("<f4").tobytes()
                n = str(len(data)).encode()
                return b"#" + str(len(n)).encode() + n + data + b"\n"
            return None
        if text.startswith("TRIG:COUN "):
            self.sweeps = int(text.split()[1])
        elif text.startswith("ROUT:SCAN "):
            self.scan = [int(c) for c in re.findall(r"\d+", text[10:])]
        elif text == "READ?":  # FORM:READ:CHAN ON: each reading with its channel, in ascending channel order
            chans = sorted(self.scan) * self.sweeps
            self.reads += 1
            if self.wire is not None:  # a serial line: every reading is the number of its READ?, to match replies
                return (",".join(f"{self.reads:+.6E},{c}" for c in chans)).encode() + b"\n"
            return (",".join(f"{0.01 * (i % 7):+.6E},{c}" for i, c in enumerate(chans))).encode() + b"\n"
        return None


def _split(buf: bytes) -> tuple[bytes | None, bytes]:
    """One message off the front of buf: up to '\\n', or past a binary block `#<n><len><data>`."""
    m = re.match(rb"^[^\n#]*#(\d)", buf)
    if m and m.group(1) != b"0":
        n = int(m.group(1))
        start = m.end()
        if len(buf) < start + n:
            return None, buf
        length = int(buf[start:start + n])
        end = start + n + length
        if len(buf) < end + 1:
            return None, buf
        return buf[:end], buf[end + 1:]
    i = buf.find(b"\n")
    if i < 0:
        return None, buf
    return buf[:i], buf[i + 1:]


def _block_data(msg: bytes) -> bytes:
    i = msg.index(b"#")
    n = int(msg[i + 1:i + 2])
    length = int(msg[i + 2:i + 2 + n])
    return msg[i + 2 + n:i + 2 + n + length]


def decode_levels(msg: bytes) -> np.ndarray | None:
    """The DAC vector of a `SOUR:VOLT:BLK` message, else None."""
    if not msg.startswith(b"SOUR:VOLT:BLK "):
        return None
    return np.frombuffer(_block_data(msg), "<f4").astype(float)


STATION = """\
name: fake-tcp
instruments:
  board: {{kind: conductance_board, address: "{board}", timeout_s: 1.0, cleanup_timeout_s: 0.3}}
  daq:   {{kind: daq970a, address: "{daq}", timeout_s: 1.0, cleanup_timeout_s: 0.3, nplc: 0.02}}
wiring:
  inputs: ["board.0:1"]
  layers: [["daq.101:102"], ["daq.103"]]
nudge:
  sources: ["board.2"]
  conductance: {{kind: board, instrument: board}}
conductances: {{kind: board, instrument: board}}
limits: {{v_abs_max: 1.0, compliance_a: 1.0e-4, cell_power_max_w: 1.0e-2, ramp_v_per_s: 20.0,
          ramp_step_s: 0.005, g_min_s: 1.0e-6, g_max_s: 1.0e-3}}
"""


def write_station(path, board: FakeInstrument, daq: FakeInstrument) -> None:
    path.write_text(STATION.format(board=board.address, daq=daq.address))
