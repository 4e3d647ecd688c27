"""The station file: which instruments a lab board uses, how it is wired, and its limits.

Pure data (pydantic, `extra="forbid"`): read by `hil.drivers` to open and drive the
instruments, and by the SCPI emulator in `hil.simulators` to stand in for them.
Nothing here opens a connection.

Channel references are strings `"<instrument>.<channel>"`, or just `"<instrument>"`
for a single-channel source.  A numeric channel may be a range written
`"daq.101:104"` (101, 102, 103, 104) or `"board.0:7"`.  `expand_refs` turns a list
of references into one `(instrument, channel)` pair per node.

    instruments:
      daq:   {kind: daq970a, address: "TCPIP::192.168.1.21::5025::SOCKET", timeout_s: 5.0}
      smu:   {kind: keithley2450, address: "USB0::0x05E6::0x2450::04096331::INSTR"}
      board: {kind: conductance_board, address: "ASRL/dev/ttyUSB0::INSTR"}
    wiring:
      inputs: ["board.0:3"]
      layers: [["daq.101:104"], ["daq.105:106"]]
    nudge: {sources: ["board.4:5"], conductance: {kind: board, instrument: board}}
    conductances: {kind: board, instrument: board}
    limits: {v_abs_max: 1.0, compliance_a: 1.0e-4, cell_power_max_w: 1.0e-4,
             ramp_v_per_s: 10.0, g_min_s: 1.0e-6, g_max_s: 1.0e-3}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    ValidationInfo,
    field_validator,
)

from hil.config import PositiveInt, Strict, read_yaml, validate_section
from hil.errors import ConfigError

#: Instrument kinds a station may name, and what each can do.
SOURCE_KINDS = ("keithley2400", "keithley2450", "keithley2600", "conductance_board")
READER_KINDS = ("keithley2400", "keithley2450", "keithley2600", "daq970a", "agilent34970a", "daq6510")
SWITCH_KINDS = ("keithley707b",)
InstrumentKind = Literal[
    "keithley2400",
    "keithley2450",
    "keithley2600",
    "daq970a",
    "agilent34970a",
    "daq6510",
    "keithley707b",
    "conductance_board",
]

_REF = re.compile(r"^(?P<inst>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<ch>[A-Za-z0-9_]+)(?::(?P<end>[0-9]+))?)?$")


class _Strict(Strict):
    # `.inf` or `.nan` is never a limit, a timeout or a conductance: Strict makes every number finite
    model_config = ConfigDict(frozen=True)


class InstrumentSpec(_Strict):
    """One instrument: its model, where it is, and how long to wait for it."""

    kind: InstrumentKind
    address: str = Field(min_length=1, description="VISA resource name, e.g. TCPIP::10.0.0.5::5025::SOCKET")
    timeout_s: PositiveFloat = Field(2.0, description="VISA timeout of ordinary commands (s)")
    cleanup_timeout_s: PositiveFloat = Field(0.5, description="VISA timeout of each write during safe_state (s)")
    visa_library: str = Field("@py", description="pyvisa backend: @py (pyvisa-py), @ivi, or FILE.yaml@sim")
    nplc: PositiveFloat = Field(1.0, le=10.0, description="integration time of reads, in power-line cycles")
    transfer: Literal["binary", "ascii"] = Field("binary", description="data transfer of buffered reads")
    baud_rate: PositiveInt | None = Field(None, description="serial links only")
    reconnect_tries: int = Field(3, ge=0, le=10, description="reconnects (with back-off) on a dropped session")
    autozero: bool = Field(True, description="autozero of reads: on (the instruments' default) or off (faster, "
                                              "may drift)")
    line_hz: Literal[50, 60] | None = Field(
        None, description="mains frequency (Hz); null: asked of the instrument where it can say, else 50 Hz")


class WiringSpec(_Strict):
    """Which instrument channel drives or reads each node of the network."""

    inputs: list[str] = Field(min_length=1, description="one source per input node, +x then -x")
    layers: list[list[str]] = Field(min_length=1, description="one list of read channels per free layer")
    settle_s: NonNegativeFloat = Field(0.0, description="wait after the sources are set, before reading (s)")


class BoardConductance(_Strict):
    kind: Literal["board"] = "board"
    instrument: str = Field(description="the conductance_board instrument that holds the nudge conductances")


class FixedConductance(_Strict):
    kind: Literal["fixed"] = "fixed"
    beta_s: PositiveFloat = Field(description="the fixed nudge conductance (S)")
    switch: list[str] = Field(default_factory=list, description="switch channels closed while nudging")


class NudgeSpec(_Strict):
    """Each output node tied to a source at the target through a conductance beta."""

    sources: list[str] = Field(min_length=1, description="one source per output node")
    conductance: Annotated[BoardConductance | FixedConductance, Field(discriminator="kind")]


class BoardProgramming(_Strict):
    """Conductances written in bulk to a digital-potentiometer / transistor board."""

    kind: Literal["board"] = "board"
    instrument: str
    blocks: dict[str, str] = Field(
        default_factory=dict, description="topology parameter -> board block name (default: same name)"
    )


class PulseProgramming(_Strict):
    """Memristive cells programmed by voltage pulses through a switch matrix, with read-verify."""

    kind: Literal["pulse"] = "pulse"
    smu: str = Field(description="the SMU channel that pulses and reads, e.g. smu.b")
    matrix: str = Field(description="the switch matrix instrument")
    slot: PositiveInt = 1
    hi_row: str = Field("A", pattern=r"^[A-H]$", description="matrix row wired to the SMU HI terminal")
    lo_row: str = Field("B", pattern=r"^[A-H]$", description="matrix row wired to the SMU LO terminal")
    columns: list[list[PositiveInt]] = Field(
        min_length=2, description="matrix columns of the nodes of each layer (inputs first)"
    )
    v_read: PositiveFloat = Field(0.1, description="read-verify voltage (V)")
    v_set_start: PositiveFloat = Field(0.5, description="first SET pulse amplitude (V)")
    v_reset_start: PositiveFloat = Field(0.5, description="first RESET pulse amplitude (V, applied negative)")
    v_step: PositiveFloat = Field(0.05, description="amplitude increment of successive pulses (V)")
    width_s: PositiveFloat = Field(1e-3, description="pulse width (s)")
    tolerance: PositiveFloat = Field(0.05, lt=1.0, description="relative verify tolerance")
    max_pulses: PositiveInt = Field(20, le=1000, description="pulse cap per cell")

    @field_validator("lo_row")
    @classmethod
    def _rows(cls, v: str, info: ValidationInfo) -> str:
        if v == info.data.get("hi_row"):
            raise ValueError("must differ from hi_row")
        return v


class Limits(_Strict):
    """What no command may exceed; checked before anything is sent."""

    v_abs_max: PositiveFloat = Field(description="max |V| of any source (V)")
    v_abs_max_per_source: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="tighter |V| limit of some instruments (V), by instrument name"
    )
    compliance_a: PositiveFloat = Field(description="current compliance of every SMU (A)")
    cell_power_max_w: PositiveFloat = Field(description="max power dissipated in one cell (W)")
    ramp_v_per_s: PositiveFloat = Field(description="max slew rate of any source (V/s)")
    ramp_step_s: PositiveFloat = Field(0.01, description="time between two ramp steps (s)")
    g_min_s: NonNegativeFloat = Field(description="lowest conductance the devices hold (S)")
    g_max_s: PositiveFloat = Field(description="highest conductance the devices hold (S)")
    pulse_v_abs_max: PositiveFloat | None = Field(None, description="max |V| of programming pulses (V)")

    @field_validator("g_max_s")
    @classmethod
    def _g_range(cls, v: float, info: ValidationInfo) -> float:
        lo = info.data.get("g_min_s")
        if lo is not None and v <= lo:
            raise ValueError(f"must exceed g_min_s ({lo:g} S)")
        return v

    @field_validator("v_abs_max_per_source")
    @classmethod
    def _per_source(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        vmax = info.data.get("v_abs_max")
        for name, value in v.items():
            if vmax is not None and value > vmax:
                raise ValueError(f"{name} ({value:g} V) exceeds v_abs_max ({vmax:g} V)")
        return v

    def v_max(self, instrument: str) -> float:
        return self.v_abs_max_per_source.get(instrument, self.v_abs_max)


class Scales(_Strict):
    """Physical units of the topology's numbers; null keeps the topology's own g_unit / v_unit."""

    g_unit_s: PositiveFloat | None = None
    v_unit_v: PositiveFloat | None = None


class Station(_Strict):
    """A whole station file."""

    name: str = "station"
    instruments: dict[str, InstrumentSpec] = Field(min_length=1)
    wiring: WiringSpec
    nudge: NudgeSpec | None = None
    conductances: Annotated[BoardProgramming | PulseProgramming, Field(discriminator="kind")]
    scales: Scales = Field(default_factory=Scales)
    limits: Limits

    @property
    def bias_sources(self) -> bool:
        """Whether the station can write bias currents: a conductance board can, pulse-programmed cells cannot."""
        return isinstance(self.conductances, BoardProgramming)

    def problems(self) -> list[str]:
        """Every reference to a missing instrument, or to one that cannot do the job (key: why)."""
        inst = self.instruments
        found: list[str] = []

        def need(ref: str, where: str, kinds: tuple[str, ...], is_ref: bool = True) -> None:
            try:
                ref_inst = parse_ref(ref)[0] if is_ref else ref
                if is_ref:
                    expand_refs([ref])
            except ValueError as exc:
                found.append(f"{where}: {exc}")
                return
            if ref_inst not in inst:
                found.append(f"{where}: no instrument named {ref_inst!r} (have {', '.join(sorted(inst))})")
            elif inst[ref_inst].kind not in kinds:
                found.append(f"{where}: {ref_inst!r} is a {inst[ref_inst].kind}, which cannot do this")

        for i, ref in enumerate(self.wiring.inputs):
            need(ref, f"wiring.inputs.{i}", SOURCE_KINDS)
        for l, layer in enumerate(self.wiring.layers):
            for i, ref in enumerate(layer):
                need(ref, f"wiring.layers.{l}.{i}", READER_KINDS)
        if self.nudge is not None:
            for i, ref in enumerate(self.nudge.sources):
                need(ref, f"nudge.sources.{i}", SOURCE_KINDS)
            cond = self.nudge.conductance
            if isinstance(cond, BoardConductance):
                need(cond.instrument, "nudge.conductance.instrument", ("conductance_board",), is_ref=False)
            else:
                for i, ref in enumerate(cond.switch):
                    need(ref, f"nudge.conductance.switch.{i}", SWITCH_KINDS)
        prog = self.conductances
        if isinstance(prog, BoardProgramming):
            need(prog.instrument, "conductances.instrument", ("conductance_board",), is_ref=False)
        else:
            need(prog.smu, "conductances.smu", ("keithley2600",))
            need(prog.matrix, "conductances.matrix", SWITCH_KINDS, is_ref=False)
            if self.limits.pulse_v_abs_max is None:
                found.append("limits.pulse_v_abs_max: required with pulse programming")
        for name in self.limits.v_abs_max_per_source:
            if name not in inst:
                found.append(f"limits.v_abs_max_per_source.{name}: no instrument named {name!r}")
        return found

    def input_refs(self) -> list[tuple[str, str]]:
        return expand_refs(self.wiring.inputs)

    def layer_refs(self) -> list[list[tuple[str, str]]]:
        return [expand_refs(layer) for layer in self.wiring.layers]

    def nudge_refs(self) -> list[tuple[str, str]]:
        return expand_refs(self.nudge.sources) if self.nudge else []


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """`"daq.101:104"` -> `("daq", "101", "104")`; `"smu"` -> `("smu", "", None)`."""
    m = _REF.match(ref.strip())
    if not m:
        raise ValueError(f"{ref!r} is not a channel reference like 'daq.101', 'daq.101:104' or 'smu'")
    return m["inst"], m["ch"] or "", m["end"]


def expand_refs(refs: list[str]) -> list[tuple[str, str]]:
    """One `(instrument, channel)` per node; numeric ranges are inclusive and keep their width."""
    out: list[tuple[str, str]] = []
    for ref in refs:
        inst, ch, end = parse_ref(ref)
        if end is None:
            out.append((inst, ch))
            continue
        if not ch.isdigit():
            raise ValueError(f"{ref!r}: a range needs numeric channels")
        lo, hi = int(ch), int(end)
        if hi < lo:
            raise ValueError(f"{ref!r}: empty range")
        out.extend((inst, str(c).zfill(len(ch))) for c in range(lo, hi + 1))
    return out


def load_station(path: str | Path) -> Station:
    """Read and validate a station file; any problem is one ConfigError naming the file and the key."""
    path = Path(path)
    station = validate_section(Station, read_yaml(path), str(path))
    problems = station.problems()
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}")
    return station
