"""One loopback TCP server per emulated instrument (raw socket, as `TCPIP::host::port::SOCKET`).

Each server listens on 127.0.0.1 only, accepts any number of connections (one thread
each, every socket with a timeout), frames program messages (`\\n`, binary blocks
kept whole), runs them on the instrument model and sends the reply.  Scripted faults
act here: between the wire and the model.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from hil.simulators.emulator.faults import FaultPlan, garble, truncate
from hil.simulators.emulator.params import split_message
from hil.simulators.emulator.scpi import Instrument

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

HOST = "127.0.0.1"


class InstrumentServer:
    def __init__(self, model: Instrument, faults: FaultPlan, port: int = 0, nodelay: bool = True) -> None:
        self.model = model
        self.faults = faults
        self.nodelay = nodelay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.down_until = 0.0
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, name=f"emu-{model.name}", daemon=True)

    @property
    def address(self) -> str:
        return f"TCPIP0::{HOST}::{self.port}::SOCKET"

    def start(self) -> InstrumentServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.close_connections()
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout=2.0)
        for t in self.threads:
            t.join(timeout=1.0)

    def close_connections(self) -> None:
        with self.conns_lock:
            conns, self.conns = list(self.conns), set()
        for c in conns:
            _close(c)

    def unplug(self, down_s: float) -> None:
        """The link down for `down_s`: connections closed, connects refused; the instrument keeps its state."""
        self.down_until = time.monotonic() + down_s
        self.close_connections()

    def reboot(self, boot_s: float) -> None:
        """Power cycle: state lost, connections closed, connects refused while booting."""
        self.unplug(boot_s)
        self.model.power_cycle()

    # --- threads --------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            if time.monotonic() < self.down_until:  # still booting: the connection is reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                _close(conn)
                continue
            if self.nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.1)
            with self.conns_lock:
                self.conns.add(conn)
            self.connections += 1
            if hasattr(self.model, "link_up"):
                self.model.link_up()
            t = threading.Thread(target=self._serve, args=(conn,), name=f"emu-{self.model.name}-conn", daemon=True)
            self.threads = [x for x in self.threads if x.is_alive()] + [t]
            t.start()

    def _alive(self, conn: socket.socket) -> bool:
        with self.conns_lock:
            return conn in self.conns

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while not self.stopped.is_set() and self._alive(conn):
                try:
                    chunk = conn.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while True:
                    msg, buf = split_message(buf)
                    if msg is None:
                        break
                    if not self._message(conn, msg.rstrip(b"\r")):
                        return
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            _close(conn)
            if hasattr(self.model, "link_down"):
                self.model.link_down()

    def _message(self, conn: socket.socket, msg: bytes) -> bool:
        """Run one message with its faults; False when the connection is gone."""
        faults = self.faults.firing(self.model.name, msg)
        kinds = {f.kind: f for f in faults}
        if "reboot" in kinds:
            log.warning("emulator: %s reboots (fault)", self.model.name)
            self.reboot(kinds["reboot"].boot_s)
            return False
        if "unplug" in kinds:
            log.warning("emulator: %s's link is down for %g s (fault)", self.model.name, kinds["unplug"].down_s)
            self.unplug(kinds["unplug"].down_s)
            return False
        if "trip" in kinds:
            self.model.trip()
        if "drop" in kinds:
            log.warning("emulator: %s drops its connection (fault)", self.model.name)
            with self.conns_lock:
                self.conns.discard(conn)
            _close(conn)
            return False
        if "hang" in kinds:
            return True
        reply = self.model.handle(msg)
        if "error" in kinds:
            self.model.push_error(*kinds["error"].error)
        if reply is None:
            return True
        if "garble" in kinds:
            reply = garble(reply)
        if "truncate" in kinds:
            reply = truncate(reply)
        if "delay" in kinds:  # this connection's next messages wait: replies keep their order
            self.stopped.wait(kinds["delay"].delay_s)
            if not self._alive(conn) or self.stopped.is_set():
                return False
        try:
            conn.sendall(reply)
        except OSError:
            return False
        return True


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
