"""Keithley 2400 SourceMeter (SCPI), from the 2400 Series User's Manual.

- Concurrent measurements: `[SENSe:]FUNCtion[:ON] "VOLT","CURR"` adds functions,
  `:FUNCtion:OFF` removes them, `:FUNCtion:ALL`, `:FUNCtion?` lists them; NPLC is one
  setting for all functions.  A reading has five elements, VOLT, CURR, RES, TIME, STAT,
  of which `FORMat:ELEMents` picks those returned; a function not measured returns its
  source level (VOLT/CURR) or +9.91E+37 (RES).
- Trigger model: `ARM:COUNt` x `TRIGger:COUNt` readings per `INITiate` (the product at
  most 2500, else -221); `ARM:SOURce BUS` waits for `*TRG`; `READ?` = `INIT` + `FETCh?`,
  `MEASure:<fn>?` = `CONFigure:<fn>` (that function alone, output on) + `READ?`;
  `INIT` with the output off is +803 "Output disabled"; `ABORt` stops.
- Buffer, statistics and measurement status: `keithley2400_buffer.py`.
- `FORMat[:DATA] ASCii | REAL,32 | SREal`: REAL,32 is `#0` followed by float32 (`FORMat:BORDer SWAP`: LE).
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.keithley2400_buffer import TraceBuffer2400
from hil.simulators.emulator.params import boolean, number, split_params, text, unquote
from hil.simulators.emulator.readings import OVERFLOW, Acquisition
from hil.simulators.emulator.scpi import scpi
from hil.simulators.emulator.smu import SourceMeter, function

ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT")


class Keithley2400(TraceBuffer2400, SourceMeter):
    kind = "keithley2400"
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,EMU0001,C32   Oct  4 2010 14:20:11/A02  /S/K"
    no_error = '0,"No error"'
    error_format = '{code:d},"{message}"'
    output_off_error = (803, "Output disabled")
    buffer_max = 2500

    def reset(self) -> None:
        super().reset()
        self.concurrent = True
        self.trig_count = self.arm_count = 1
        self.arm_source = "IMM"
        self.points = 100
        self.feed = "SENS"
        self.feed_control = "NEV"
        self.fmt = "ASC"
        self.swapped = False
        self.elements = list(ELEMENTS)
        self.stat_form = "MEAN"
        self.acq: Acquisition | None = None
        self.armed = False
        self.buffer = np.zeros((0, 5))
        self.buffer_acq: tuple[Acquisition, int] | None = None  # the acquisition feeding the buffer, rows wanted
        self.meas_enable = 0
        self.meas_event = 0
        self.off_state = "NORM"
        self.terminals_front = True

    def set_nplc(self, fn: str, value: float) -> None:
        self.nplc = {k: value for k in self.nplc}  # one integration time for every function

    # --- readings --------------------------------------------------------------------------------
    def _rows(self, n: int) -> np.ndarray:
        """n readings (VOLT, CURR, RES, TIME, STAT); TIME is filled in when they are scheduled."""
        m = self.measured(n)
        v, i = m["VOLT"], m["CURR"]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where((np.abs(v) < OVERFLOW) & (np.abs(i) < OVERFLOW) & (i != 0), v / i, 9.91e37)
        status = np.where((np.abs(v) >= OVERFLOW) | (np.abs(i) >= OVERFLOW), 1.0, 0.0)  # bit 0: OFLO
        return np.column_stack([v, i, r, np.zeros(n), status])

    def _start(self) -> None:
        n = self.arm_count * self.trig_count
        rows = self._rows(n)
        per = self.trigger_s()
        start = self.run_in_background(n * per)
        rows[:, 3] = start + per * np.arange(1, n + 1)
        self.acq = Acquisition(rows, start, per)
        if self.feed_control == "NEXT":
            room = self.points - len(self.buffer)
            self.buffer_acq = (self.acq, max(room, 0))
            self.feed_control = "NEV"

    def encode(self, rows: np.ndarray) -> str | bytes:
        cols = rows[:, [ELEMENTS.index(e) for e in self.elements]].reshape(-1)
        if self.fmt == "ASC":
            return ",".join(f"{v:+.6E}" for v in cols)
        return b"#0" + cols.astype("<f4" if self.swapped else ">f4").tobytes()

    def bus_trigger(self) -> None:
        if not self.armed:
            raise ScpiError(-211, "Trigger ignored")
        self.armed = False
        self._start()

    def abort(self) -> None:
        super().abort()
        self.armed = False
        if self.acq is not None:
            self.acq.stop(self.clock.now())
        self._sync_buffer()

    # --- trigger model -----------------------------------------------------------------------
    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        if not self.output:
            raise ScpiError(*self.output_off_error)
        if self.arm_source == "BUS":
            self.armed = True
            return
        self._start()

    @scpi("FETCh?")
    def _fetch(self, raw: bytes) -> bytes | str:
        self.wait_idle()
        if self.acq is None or not len(self.acq.rows):
            raise ScpiError(-230, "Data corrupt or stale")
        return self.encode(self.acq.rows)

    @scpi("READ?")
    def _read(self, raw: bytes) -> bytes | str:
        self._init(b"")
        return self._fetch(b"")

    def _configure(self, raw: bytes, fn: str) -> None:
        self.abort()
        self.sense = [fn]
        self.meas_auto[fn] = True
        self.trig_count = self.arm_count = 1
        self.output = True

    @scpi("CONFigure:VOLTage[:DC]")
    def _conf_v(self, raw: bytes) -> None:
        self._configure(raw, "VOLT")

    @scpi("CONFigure:CURRent[:DC]")
    def _conf_i(self, raw: bytes) -> None:
        self._configure(raw, "CURR")

    @scpi("MEASure:VOLTage[:DC]?")
    def _meas_v(self, raw: bytes) -> bytes | str:
        self._configure(raw, "VOLT")
        return self._read(b"")

    @scpi("MEASure:CURRent[:DC]?")
    def _meas_i(self, raw: bytes) -> bytes | str:
        self._configure(raw, "CURR")
        return self._read(b"")

    def _set_counts(self, trig: int, arm: int) -> None:
        if trig * arm > self.buffer_max:
            raise ScpiError(-221, f"Settings conflict; arm count x trigger count > {self.buffer_max}")
        self.trig_count, self.arm_count = trig, arm

    @scpi("TRIGger:COUNt")
    def _tcount(self, raw: bytes) -> None:
        self._set_counts(int(number(text(raw), 1, self.buffer_max)), self.arm_count)

    @scpi("TRIGger:COUNt?")
    def _tcount_q(self, raw: bytes) -> str:
        return f"{self.trig_count:+d}"

    @scpi("ARM:COUNt")
    def _acount(self, raw: bytes) -> None:
        self._set_counts(self.trig_count, int(number(text(raw), 1, self.buffer_max)))

    @scpi("ARM:COUNt?")
    def _acount_q(self, raw: bytes) -> str:
        return f"{self.arm_count:+d}"

    @scpi("TRIGger:DELay")
    def _tdelay(self, raw: bytes) -> None:
        self.trig_delay = number(text(raw), 0.0, 999.9999)

    @scpi("TRIGger:DELay?")
    def _tdelay_q(self, raw: bytes) -> str:
        return f"{self.trig_delay:+.6E}"

    @scpi("ARM:SOURce")
    def _asource(self, raw: bytes) -> None:
        t = text(raw).upper()
        names = {"IMM": "IMM", "IMMEDIATE": "IMM", "BUS": "BUS", "TIM": "TIM", "TIMER": "TIM", "MAN": "MAN",
                 "MANUAL": "MAN", "TLIN": "TLIN", "TLINK": "TLIN", "NST": "NST", "PST": "PST", "BST": "BST"}
        if t not in names:
            raise ScpiError(-224, "Illegal parameter value")
        self.arm_source = names[t]

    @scpi("ARM:SOURce?")
    def _asource_q(self, raw: bytes) -> str:
        return self.arm_source

    @scpi("TRIGger:CLEar")
    def _tclear(self, raw: bytes) -> None:
        """No trigger input is latched on the emulator."""

    # --- sense functions, limits, autozero ---------------------------------------------------
    @scpi("[SENSe:]FUNCtion[:ON]")
    def _sense_on(self, raw: bytes) -> None:
        fns = [function(unquote(p).encode()) for p in split_params(text(raw))]
        self.sense = list(dict.fromkeys((self.sense if self.concurrent else []) + fns))

    @scpi("[SENSe:]FUNCtion:OFF")
    def _sense_off(self, raw: bytes) -> None:
        fns = {function(unquote(p).encode()) for p in split_params(text(raw))}
        self.sense = [f for f in self.sense if f not in fns]

    @scpi("[SENSe:]FUNCtion:ALL")
    def _sense_all(self, raw: bytes) -> None:
        self.sense = ["VOLT", "CURR"]

    @scpi("[SENSe:]FUNCtion[:ON]?")
    def _sense_q(self, raw: bytes) -> str:
        return ",".join(f'"{f}:DC"' for f in self.sense)

    @scpi("[SENSe:]FUNCtion:CONCurrent")
    def _concurrent(self, raw: bytes) -> None:
        self.concurrent = boolean(text(raw))
        self.sense = self.sense if self.concurrent else self.sense[-1:]

    @scpi("[SENSe:]CURRent[:DC]:PROTection[:LEVel]")
    def _iprot(self, raw: bytes) -> None:
        self.i_limit = number(text(raw), -1.05, 1.05)

    @scpi("[SENSe:]CURRent[:DC]:PROTection[:LEVel]?")
    def _iprot_q(self, raw: bytes) -> str:
        return f"{self.i_limit:+.6E}"

    @scpi("[SENSe:]VOLTage[:DC]:PROTection[:LEVel]")
    def _vprot(self, raw: bytes) -> None:
        self.v_limit = number(text(raw), -210.0, 210.0)

    @scpi("[SENSe:]VOLTage[:DC]:PROTection[:LEVel]?")
    def _vprot_q(self, raw: bytes) -> str:
        return f"{self.v_limit:+.6E}"

    @scpi("SYSTem:AZERo[:STATe]")
    def _azero(self, raw: bytes) -> None:
        if text(raw).upper() != "ONCE":
            self.autozero = boolean(text(raw))

    @scpi("SYSTem:AZERo[:STATe]?")
    def _azero_q(self, raw: bytes) -> str:
        return "1" if self.autozero else "0"

    @scpi("SYSTem:LFRequency")
    def _lfr_set(self, raw: bytes) -> None:
        value = number(text(raw), 50, 60)
        if value not in (50.0, 60.0):
            raise ScpiError(-224, "Illegal parameter value; 50 or 60")
        self.line_hz = value

    @scpi("SOURce:DELay")
    def _sdelay(self, raw: bytes) -> None:
        self.source_delay = number(text(raw), 0.0, 9999.999)
        self.source_delay_auto = False

    @scpi("SOURce:DELay?")
    def _sdelay_q(self, raw: bytes) -> str:
        return f"{self.source_delay:+.6E}"

    @scpi("SOURce:DELay:AUTO")
    def _sdelay_auto(self, raw: bytes) -> None:
        self.source_delay_auto = boolean(text(raw))

    @scpi("SOURce:DELay:AUTO?")
    def _sdelay_auto_q(self, raw: bytes) -> str:
        return "1" if self.source_delay_auto else "0"

    @scpi("SOURce:VOLTage:MODE")
    def _mode(self, raw: bytes) -> None:
        if text(raw).upper() not in ("FIX", "FIXED", "LIST", "SWE", "SWEEP"):
            raise ScpiError(-224, "Illegal parameter value")

    @scpi("OUTPut:SMODe")
    def _smode(self, raw: bytes) -> None:
        t = text(raw).upper()[:4]
        if t not in ("HIMP", "NORM", "ZERO", "GUAR"):
            raise ScpiError(-224, "Illegal parameter value")
        self.off_state = t

    @scpi("OUTPut:SMODe?")
    def _smode_q(self, raw: bytes) -> str:
        return self.off_state

    @scpi("ROUTe:TERMinals")
    def _term(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("FRON", "FRONT", "REAR"):
            raise ScpiError(-224, "Illegal parameter value")
        self.terminals_front = t.startswith("FRON")

    @scpi("ROUTe:TERMinals?")
    def _term_q(self, raw: bytes) -> str:
        return "FRON" if self.terminals_front else "REAR"

    # --- format -------------------------------------------------------------------------------
    @scpi("FORMat:ELEMents[:SENSe1]")
    def _elem(self, raw: bytes) -> None:
        elems = [e.strip().upper()[:4] for e in split_params(text(raw))]
        if not elems or any(e not in ELEMENTS for e in elems):
            raise ScpiError(-224, "Illegal parameter value")
        self.elements = [e for e in ELEMENTS if e in elems]

    @scpi("FORMat:ELEMents[:SENSe1]?")
    def _elem_q(self, raw: bytes) -> str:
        return ",".join(self.elements)

    @scpi("FORMat[:DATA]")
    def _fmt(self, raw: bytes) -> None:
        params = [p.upper() for p in split_params(text(raw))]
        if params[0] in ("ASC", "ASCII"):
            self.fmt = "ASC"
        elif params[0] in ("REAL", "SRE", "SREAL") and (params[0] != "REAL" or params[1:] in ([], ["32"])):
            self.fmt = "REAL"
        else:
            raise ScpiError(-224, "Illegal parameter value")

    @scpi("FORMat[:DATA]?")
    def _fmt_q(self, raw: bytes) -> str:
        return "ASC" if self.fmt == "ASC" else "REAL,32"

    @scpi("FORMat:BORDer")
    def _bord(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NORM", "NORMAL", "SWAP", "SWAPPED"):
            raise ScpiError(-224, "Illegal parameter value")
        self.swapped = t.startswith("SWAP")
