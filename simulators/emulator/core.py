"""`Emulator`: every instrument of a station served on loopback sockets, backed by one twin.

    with Emulator(station, {"sigma": 1e-3}, seed=0) as emu:
        emu.write_station("emu-station.yaml")        # loopback addresses, for LabCrossbar
        emu.inject("daq", "delay", on="READ?", after=3, delay_s=2.5)
        emu.model("board").outputs_on()              # what the instruments hold now

Time: every instrument works on one `Clock` (`speed` emulated seconds per real second;
1.0, the default, is the instruments' own pace) and sees mains at `line_hz`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml

from hil.simulators.emulator.board import ConductanceBoard
from hil.simulators.emulator.daq970a import DAQ970A, Agilent34970A
from hil.simulators.emulator.daq6510 import KeithleyDAQ6510
from hil.simulators.emulator.faults import Fault, FaultPlan
from hil.simulators.emulator.keithley707b import Keithley707B
from hil.simulators.emulator.keithley2400 import Keithley2400
from hil.simulators.emulator.keithley2450 import Keithley2450
from hil.simulators.emulator.keithley2600 import Keithley2600
from hil.simulators.emulator.scpi import Instrument
from hil.simulators.emulator.server import InstrumentServer
from hil.simulators.emulator.timing import LINE_HZ, Clock
from hil.simulators.emulator.world import World
from hil.simulators.twin import TwinConfig
from hil.station import Station, load_station

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

MODELS: dict[str, type[Instrument]] = {
    "keithley2400": Keithley2400,
    "keithley2450": Keithley2450,
    "keithley2600": Keithley2600,
    "daq970a": DAQ970A,
    "agilent34970a": Agilent34970A,
    "daq6510": KeithleyDAQ6510,
    "keithley707b": Keithley707B,
}


def _dac_count(station: Station, name: str) -> int:
    refs = station.input_refs() + station.nudge_refs()
    used = [int(ch) for inst, ch in refs if inst == name and ch.isdigit()]
    return max(used, default=-1) + 1 or 1


class Emulator:
    """Loopback SCPI/TSP servers for each instrument of `station`, with one `World` behind them."""

    def __init__(
        self,
        station: Station | str | Path,
        twin: TwinConfig | dict[str, Any] | None = None,
        *,
        seed: int = 0,
        ports: dict[str, int] | None = None,
        nodelay: bool = True,
        speed: float = 1.0,
        line_hz: float = LINE_HZ,
    ) -> None:
        if line_hz not in (50.0, 60.0):
            raise ValueError(f"line_hz must be 50 or 60, got {line_hz}")
        self.clock = Clock(speed)
        self.line_hz = float(line_hz)
        self.source_station = load_station(station) if isinstance(station, (str, Path)) else station
        twin_spec = dict(twin) if isinstance(twin, dict) else twin
        if isinstance(twin_spec, dict):
            twin_spec.pop("kind", None)
        self.world = World(self.source_station, twin_spec, seed=seed)
        self.faults = FaultPlan()
        self.models: dict[str, Instrument] = {}
        for name, spec in self.source_station.instruments.items():
            if spec.kind == "conductance_board":
                model: Instrument = ConductanceBoard(name, self.world, _dac_count(self.source_station, name))
            else:
                model = MODELS[spec.kind](name, self.world)
            model.clock, model.line_hz = self.clock, self.line_hz
            self.models[name] = model
        self.world.instruments = self.models
        self._ports = ports or {}
        self._nodelay = nodelay
        self.servers: dict[str, InstrumentServer] = {}

    def __repr__(self) -> str:
        where = ", ".join(f"{n}={s.address}" for n, s in self.servers.items()) or "not started"
        return (f"Emulator({self.source_station.name!r}, {where}, twin={self.world.twin!r}, "
                f"speed={self.clock.speed:g}, line_hz={self.line_hz:g})")

    # --- life cycle --------------------------------------------------------------------------------
    def start(self) -> Emulator:
        try:
            for name, model in self.models.items():
                port = self._ports.get(name, 0)
                try:
                    server = InstrumentServer(model, self.faults, port, self._nodelay)
                except OSError as exc:
                    raise OSError(exc.errno, f"{name}: cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None
                self.servers[name] = server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.clock.stop()
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what a client needs -------------------------------------------------------------------
    @property
    def addresses(self) -> dict[str, str]:
        return {name: s.address for name, s in self.servers.items()}

    @property
    def station(self) -> Station:
        """The station with every instrument at its loopback address (pyvisa-py, no serial settings)."""
        instruments = {
            name: spec.model_copy(update={"address": self.servers[name].address, "visa_library": "@py",
                                          "baud_rate": None})
            for name, spec in self.source_station.instruments.items()
        }
        return self.source_station.model_copy(update={"instruments": instruments})

    def station_yaml(self) -> str:
        data = self.station.model_dump(mode="json", exclude_defaults=False)
        return yaml.safe_dump(data, sort_keys=False, width=120)

    def write_station(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(f"# {self.source_station.name} served by `hil emulate` on 127.0.0.1\n" + self.station_yaml())
        return path

    # --- scripting --------------------------------------------------------------------------------
    def model(self, name: str) -> Instrument:
        return self.models[name]

    def inject(self, instrument: str, kind: str, **kwargs: Any) -> Fault:
        if instrument not in self.models:
            raise KeyError(f"no instrument {instrument!r} (have {', '.join(self.models)})")
        return self.faults.add(Fault(instrument, kind, **kwargs))  # type: ignore[arg-type]

    def sources_safe(self) -> dict[str, bool]:
        """For each source instrument: every level at 0 V and every output off."""
        out = {}
        for name, m in self.models.items():
            outs, levels = m.outputs_on(), m.levels()
            if not outs and not levels:
                continue
            out[name] = not any(outs.values()) and all(abs(v) < 1e-12 for v in levels.values())
        return out

    def wait_safe(self, timeout_s: float = 5.0) -> dict[str, bool]:
        """`sources_safe()` once all are safe, or after `timeout_s`.

        A client that writes its shutdown and disconnects is done before the servers have read
        its last commands from their sockets: the state settles a moment later.
        """
        end = time.monotonic() + timeout_s
        while not all((safe := self.sources_safe()).values()) and time.monotonic() < end:
            time.sleep(0.02)
        return safe
