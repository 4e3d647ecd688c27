"""What each instrument can do, by model (from its manual), and the check that no station limit exceeds it.

Every driver declares `RATINGS`: one `Rating` per model it drives (voltage and current
ranges, and the DC operating envelope).  `rating_problems(station)` checks a station's
limits against the widest model of each kind, before anything is opened; once `*IDN?`
has named the model, `rating_problems(station, models)` checks it against that model
(a 2602B sources 40 V, a 2636B 200 V).  Each problem is one line naming the key, the
instrument and its rating; `check_ratings` raises them as a `ConfigError` (exit code 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.errors import ConfigError
from hil.station import PulseProgramming, Station, parse_ref


@dataclass(frozen=True)
class Rating:
    """One model's source and measure capability (V, A), from its manual."""

    model: str
    #: voltage ranges (V), source or measure; the top one at full scale is `v_max`
    v_ranges: tuple[float, ...]
    #: largest |V| the model sources or measures (V): full scale of the top range
    v_max: float
    #: current ranges (A); empty for an instrument that neither sources nor limits current
    i_ranges: tuple[float, ...] = ()
    #: DC operating envelope: (up to |V|, largest |I|) pairs, in increasing V (SMUs)
    envelope: tuple[tuple[float, float], ...] = ()
    #: for a switch: the current a crosspoint may carry (A)
    carry_a: float | None = None
    #: where the numbers come from
    source: str = field(default="", compare=False)

    @property
    def i_max(self) -> float | None:
        """Largest DC current at any voltage (A), or None when the model has no current rating."""
        if self.envelope:
            return max(i for _, i in self.envelope)
        return self.carry_a

    def i_max_at(self, volts: float) -> float | None:
        """Largest DC current the model delivers at |V| = volts (A); 0 beyond its envelope."""
        if not self.envelope:
            return self.carry_a
        for v, i in self.envelope:
            if abs(volts) <= v:
                return i
        return 0.0

    def describe(self) -> str:
        text = f"{self.model}: |V| <= {self.v_max:g} V"
        if self.envelope:
            text += " (" + ", ".join(f"{i:g} A up to {v:g} V" for v, i in self.envelope) + ")"
        elif self.carry_a is not None:
            text += f", {self.carry_a:g} A"
        return text


def ratings_by_kind() -> dict[str, dict[str, Rating]]:
    """Instrument kind -> model -> rating, as each driver declares them."""
    from hil.drivers.keithley_707b import RATINGS as R707B
    from hil.drivers.keithley_2400 import RATINGS as R2400
    from hil.drivers.keithley_2450 import RATINGS as R2450
    from hil.drivers.keithley_2600 import RATINGS as R2600
    from hil.drivers.keithley_daq6510 import RATINGS as R6510
    from hil.drivers.keysight_daq970a import RATINGS_34970A, RATINGS_DAQ970A

    return {"keithley2400": R2400, "keithley2450": R2450, "keithley2600": R2600, "daq970a": RATINGS_DAQ970A,
            "agilent34970a": RATINGS_34970A, "daq6510": R6510, "keithley707b": R707B}


def widest(ratings: dict[str, Rating]) -> Rating:
    """The most capable model of a kind (largest |V|, then largest current): the static check's bound."""
    return max(ratings.values(), key=lambda r: (r.v_max, r.i_max or 0.0))


def model_rating(kind: str, idn: str) -> Rating | None:
    """The rating of the model an `*IDN?` reply names (None: a kind without ratings, e.g. the board)."""
    table = ratings_by_kind().get(kind)
    if not table:
        return None
    fields = [f.strip().upper() for f in idn.split(",")]
    for model in sorted(table, key=len, reverse=True):
        if any(f == model.upper() or f.endswith(" " + model.upper()) or f.endswith(model.upper())
               for f in fields[1:2] or fields):
            return table[model]
    raise ConfigError(f"{kind}: *IDN? names a model hil-ep has no rating for ({idn!r}; known: "
                      f"{', '.join(table)})")


def model_ratings(station: Station, idn: dict[str, str], source: str) -> dict[str, Rating]:
    """The rating of every instrument whose `*IDN?` is known; an unknown model is a ConfigError naming it."""
    out: dict[str, Rating] = {}
    for name, reply in idn.items():
        try:
            rating = model_rating(station.instruments[name].kind, reply)
        except ConfigError as exc:
            raise ConfigError(f"{source}: instruments.{name}: {exc}") from None
        if rating is not None:
            out[name] = rating
    return out


def rating_problems(station: Station, models: dict[str, Rating] | None = None) -> list[str]:
    """Every station limit above the rating of an instrument it applies to; one line each."""
    table = ratings_by_kind()
    lim = station.limits
    found: list[str] = []

    def rating(name: str) -> Rating | None:
        if models and name in models:
            return models[name]
        kind = station.instruments[name].kind
        return widest(table[kind]) if kind in table else None

    def over(key: str, value: float, unit: str, name: str, bound: float | None, r: Rating) -> None:
        if bound is not None and value > bound:
            kind = station.instruments[name].kind
            found.append(f"limits.{key}: {value:g} {unit} exceeds the rating of {name} ({kind} {r.describe()})")

    sources = {inst for inst, _ in station.input_refs() + station.nudge_refs()}
    prog = station.conductances
    pulse_smu = parse_ref(prog.smu)[0] if isinstance(prog, PulseProgramming) else None
    readers = {inst for layer in station.layer_refs() for inst, _ in layer}
    for name in sorted(set(station.instruments)):
        r = rating(name)
        if r is None:
            continue
        vmax = lim.v_max(name)
        key = f"v_abs_max_per_source.{name}" if name in lim.v_abs_max_per_source else "v_abs_max"
        if name in sources or name in readers or name == pulse_smu:
            over(key, vmax, "V", name, r.v_max, r)
        if r.envelope and (name in sources or name == pulse_smu):
            over("compliance_a", lim.compliance_a, "A", name, r.i_max, r)
            if lim.compliance_a <= (r.i_max or 0.0) and vmax <= r.v_max:
                at = r.i_max_at(vmax)
                if at is not None and lim.compliance_a > at:
                    found.append(f"limits.compliance_a: {lim.compliance_a:g} A at {key} {vmax:g} V exceeds the "
                                 f"rating of {name} ({station.instruments[name].kind} {r.describe()})")
        if name == pulse_smu and lim.pulse_v_abs_max is not None:
            over("pulse_v_abs_max", lim.pulse_v_abs_max, "V", name, r.v_max, r)
        if isinstance(prog, PulseProgramming) and name == prog.matrix:
            top = max(vmax, lim.pulse_v_abs_max or 0.0)
            over("pulse_v_abs_max" if top > vmax else key, top, "V", name, r.v_max, r)
            over("compliance_a", lim.compliance_a, "A", name, r.carry_a, r)
    if isinstance(prog, PulseProgramming):
        # a cell at g_max under the read-verify voltage must stay within what the SMU may draw
        i_cell = lim.g_max_s * prog.v_read
        if i_cell > lim.compliance_a:
            found.append(f"limits.g_max_s: a cell of {lim.g_max_s:g} S at v_read {prog.v_read:g} V draws "
                         f"{i_cell:g} A, over compliance_a {lim.compliance_a:g} A of {pulse_smu}")
    return found


def check_ratings(station: Station, source: str, models: dict[str, Rating] | None = None) -> None:
    """Raise a ConfigError (one line, naming the file, the key, the instrument and its rating) on the first problem."""
    problems = rating_problems(station, models)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {problems[0]}{more}")


def board_range_problem(station: Station, name: str, g_range: tuple[float, float]) -> str | None:
    """The station's conductance limits outside what a board reports (`G:RANG?`), or None."""
    lo, hi = g_range
    lim = station.limits
    if lim.g_max_s > hi * (1 + 1e-6):
        return f"limits.g_max_s: {lim.g_max_s:g} S exceeds the rating of {name} (conductance_board G:RANG? " \
               f"{lo:g}..{hi:g} S)"
    return None
