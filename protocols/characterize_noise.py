"""Read-noise characterization: hold the network at fixed inputs and read chosen nodes, many times.

What to measure lives here; how lives in the crossbar it is given (`TwinCrossbar`
or `LabCrossbar`), and the statistics in `hil.analysis.noise_stats`, which sees only the
raw reads and their timestamps.  Reads come in chunks of `read.chunk` samples
(`measure(x, n_samples=chunk, keep_samples=True)`), so a board's instrument
buffers and a long run both fit; the gaps between chunks are measured from the
timestamps and reported as the dead time of one `measure()` call.

The same config file drives `hil characterize` (this module) and `hil calibrate`
(`protocols/calibrate.py`); `network:` is the twin's topology, a station file
sets a board's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from hil.analysis import averaging
from hil.analysis import noise_stats as ns
from hil.config import PositiveInt, RunName, Strict, apply_overrides, read_yaml, resolve_config_path, validate_section
from hil.errors import ConfigError
from hil.interface import Crossbar, Topology


class NetworkSpec(Strict):
    """The twin's layer sizes (inputs already doubled) and range; a station file sets a board's."""

    layers: list[PositiveInt] = Field(default_factory=lambda: [8, 4, 2], min_length=2)
    g_min: NonNegativeFloat = 0.0
    g_max: PositiveFloat | None = Field(None, description="upper conductance bound (g_unit); none if null")
    g_unit: PositiveFloat = 1.0
    v_unit: PositiveFloat = 1.0


class ReadSpec(Strict):
    """What `hil characterize` reads."""

    inputs_v: PositiveFloat = Field(0.5, description="fixed inputs: uniform in +-inputs_v, drawn once from the seed")
    g_range: tuple[NonNegativeFloat, PositiveFloat] = Field(
        (0.25, 0.75), description="conductances held: uniform in this fraction of [g_min, g_max] (or of 1/n_pre)"
    )
    nodes: list[str] = Field(default_factory=lambda: ["1:0", "1:1", "2:0"],
                             description="nodes to analyse, 'layer:index' with layer 1 the first free layer")
    n_reads: PositiveInt = Field(65536, ge=256, description="single-sample reads per node")
    chunk: PositiveInt = Field(4096, description="samples per measure() call")
    nperseg: PositiveInt = Field(4096, ge=16, description="Welch segment length (samples)")
    detrend: Literal["none", "linear"] = Field(
        "linear", description="remove a straight line from each node's run first (conductance drift)"
    )

    @model_validator(mode="after")
    def _sizes(self) -> ReadSpec:
        if self.nperseg > self.n_reads:
            raise ValueError(f"nperseg ({self.nperseg}) must not exceed n_reads ({self.n_reads})")
        if not self.g_range[0] < self.g_range[1]:
            raise ValueError(f"g_range must increase, got {list(self.g_range)}")
        for node in self.nodes:
            parse_node(node)
        return self


class RecommendSpec(Strict):
    """The noise target of the N recommendation and the batch it is costed on."""

    target_v: PositiveFloat = Field(5e-5, description="effective noise wanted per read (V); the paper's sigma_c")
    signal_v: PositiveFloat | None = Field(
        None, description="hidden layer's EP signal |s(beta_2) - s(beta_1)| (V); if set, it sets the target"
    )
    snr_target: PositiveFloat = Field(2.0, description="update SNR wanted when signal_v is set")

    def noise_target_v(self) -> float:
        """The Allan deviation to reach: `target_v`, or from the SNR rule `signal_v / (sqrt(2) snr_target)`.

        The difference of two adjacent N-sample means has variance 2 AVAR(N dt), so
        an update SNR `signal / sqrt(2 AVAR) >= T` is `ADEV(N dt) <= signal / (sqrt(2) T)`:
        the same rule as `train.adaptive` (hil/adaptive.py), with the measured Allan
        deviation in place of the white-noise law `sigma / sqrt(N)`.
        """
        return self.target_v if self.signal_v is None else self.signal_v / (math.sqrt(2.0) * self.snr_target)
    batch_size: PositiveInt = Field(8, description="examples per EP batch")
    phases: PositiveInt = Field(3, description="reads per example per batch: 3 for centered EP, 2 otherwise")


class WriteSpec(Strict):
    """What `hil calibrate` programs: a grid of targets, repeated, then a hold for drift."""

    block: str = Field("G1", description="the conductance block written")
    levels: PositiveInt = Field(12, ge=3, description="target conductances of the grid, inside the range")
    repeats: PositiveInt = Field(8, ge=3, description="writes of each target (unverified)")
    probe_low: NonNegativeFloat = Field(0.0, description="request below the range, to find each cell's g_min")
    probe_high: PositiveFloat = Field(1e9, description="request above the range, to find each cell's g_max")
    margin_sigmas: PositiveFloat = Field(4.0, description="grid targets stay this many write stds inside the range")
    ramp_points: PositiveInt = Field(64, ge=8, description="targets of the fine ramp that resolves levels")
    hold_s: list[PositiveFloat] = Field(default_factory=lambda: [2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                                        description="times after a write at which to read back (drift), s")


class CharacterizeConfig(Strict):
    """A characterization or calibration run: the top level of `protocols/configs/characterize-*.yaml`."""

    name: RunName = "characterize"
    description: str = ""
    seed: int = 0
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    crossbar: dict[str, Any] = Field(default_factory=lambda: {"kind": "twin"})
    read: ReadSpec = Field(default_factory=ReadSpec)
    recommend: RecommendSpec = Field(default_factory=RecommendSpec)
    write: WriteSpec = Field(default_factory=WriteSpec)


def parse_node(node: str) -> tuple[int, int]:
    layer, sep, index = node.partition(":")
    if not sep or not layer.isdigit() or not index.isdigit() or int(layer) < 1:
        raise ValueError(f"node {node!r} is not 'layer:index' (layer >= 1, the first free layer)")
    return int(layer), int(index)


def load_characterize_config(name: str | Path | None, overrides: list[str] | None = None,
                             crossbar: str | None = None) -> tuple[CharacterizeConfig, dict[str, Any], str]:
    """Config file (or shipped name, or defaults), `--set` overrides, and `--crossbar twin|STATION.yaml`.

    With no config, the twin is the demo of `characterize-twin.yaml` (a noiseless twin has
    nothing to characterize); a station gets the defaults of `CharacterizeConfig`.
    """
    if name is None and crossbar in (None, "twin"):
        name = "twin"
    if name is None:
        data: dict[str, Any] = {}
        source = "defaults"
    else:
        path = resolve_config_path(str(name))
        if not path.exists():  # `twin` for the shipped characterize-twin.yaml
            alt = resolve_config_path(f"characterize-{name}")
            path = alt if alt.exists() else path
        data = read_yaml(path)
        source = str(path)
    # a calibration file named on the command line is relative to the working directory
    sets = [f"{o.partition('=')[0]}={Path(o.partition('=')[2]).resolve()}"
            if o.startswith("crossbar.calibration=") and o.partition("=")[2] not in ("", "null") else o
            for o in overrides or []]
    data = apply_overrides(data, sets, source)
    if crossbar is not None and crossbar != "twin":
        data["crossbar"] = {"kind": "lab", "station": crossbar}
    elif crossbar == "twin":
        spec = data.get("crossbar") or {}
        data["crossbar"] = spec if spec.get("kind", "twin") == "twin" else {"kind": "twin"}
    cfg = validate_section(CharacterizeConfig, data, source)
    return cfg, cfg.model_dump(mode="json"), source


def topology_for(cfg: CharacterizeConfig, source: str) -> Topology:
    """The twin's topology from `network:`, or a board's from its station file (wiring and limits)."""
    spec = cfg.crossbar
    if spec.get("kind", "twin") != "twin" and "station" in spec:
        from hil.station import load_station

        station = load_station(spec["station"])
        g_unit = station.scales.g_unit_s or cfg.network.g_unit
        layers = (len(station.input_refs()), *(len(layer) for layer in station.layer_refs()))
        return Topology(layers=layers, g_min=station.limits.g_min_s / g_unit, g_max=station.limits.g_max_s / g_unit,
                        g_unit=g_unit, v_unit=station.scales.v_unit_v or cfg.network.v_unit)
    net = cfg.network
    try:
        return Topology(layers=tuple(net.layers), g_min=net.g_min, g_max=net.g_max if net.g_max else math.inf,
                        g_unit=net.g_unit, v_unit=net.v_unit)
    except ValueError as exc:
        raise ConfigError(f"{source}: network: {exc}") from None


def held_state(topology: Topology, spec: ReadSpec, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The fixed inputs (1, n_in) and the conductances held during the reads, from the seed."""
    gen = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.rand((1, topology.n_in), generator=gen, dtype=torch.float64) - 1.0) * spec.inputs_v
    lo_f, hi_f = spec.g_range
    params: dict[str, torch.Tensor] = {}
    for name, shape in topology.parameter_shapes().items():
        u = torch.rand(shape, generator=gen, dtype=torch.float64)
        if name.startswith("G"):
            if math.isfinite(topology.g_max):
                lo = topology.g_min + lo_f * (topology.g_max - topology.g_min)
                hi = topology.g_min + hi_f * (topology.g_max - topology.g_min)
            else:
                lo, hi = lo_f * 2.0 / shape[0], hi_f * 2.0 / shape[0]
            params[name] = (lo + (hi - lo) * u).to(torch.float32)
        else:
            params[name] = torch.zeros(shape, dtype=torch.float32)
    return x.to(torch.float32), params


@dataclass
class ReadNoiseResult:
    """What the read characterization found, per node and for the station."""

    nodes: list[ns.NodeNoise]
    dt_s: float
    dead_time_s: float
    overhead_s: float  # dead time per measure() call
    combined: dict[str, float]
    recommendation: averaging.Recommendation
    read_noise: list[dict[str, Any]]  # calibration entries, in the twin's read_noise format
    wall_s: float
    chunks: int
    notes: list[str] = field(default_factory=list)
    raw: tuple[np.ndarray, np.ndarray, list[str]] | None = None  # (reads (n, nodes), times_s, node names), as read

    def summary(self) -> dict[str, Any]:
        return {
            "dt_s": self.dt_s, "overhead_s": self.overhead_s, "dead_time_s": self.dead_time_s,
            "wall_s": self.wall_s, "chunks": self.chunks, **self.combined,
            "recommendation": ns.as_dict(self.recommendation), "nodes": [n.summary() for n in self.nodes],
            "read_noise": self.read_noise, "notes": self.notes,
        }


def running_clock(times: np.ndarray, starts: list[int]) -> bool:
    """Whether timestamps run on across measure() calls (a crossbar clock), or restart at each call."""
    return bool(np.all(np.diff(times) > 0)) and all(times[s] > times[s - 1] for s in starts[1:])


def read_noise_entries(combined: dict[str, float], dt_s: float, duration_s: float,
                       quant_step_v: float | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The twin's `read_noise` list for what was measured (see simulators/README.md, 'Calibration')."""
    notes = []
    out: list[dict[str, Any]] = [{"kind": "gaussian", "sigma_v": float(combined["white_sigma_v"])}]
    if combined["pink_amplitude_v"] > 0:
        # 1/f is seen from 1/duration up to Nyquist; the model's band is set to exactly that
        out.append({"kind": "pink", "amplitude_v": float(combined["pink_amplitude_v"]),
                    "corner_hz": float(1.0 / duration_s), "f_max_hz": float(0.5 / dt_s)})
    if "telegraph_amplitude_v" in combined:
        out.append({"kind": "telegraph", "amplitude_v": float(combined["telegraph_amplitude_v"]),
                    "capture_rate_hz": float(combined["telegraph_capture_rate_hz"]),
                    "emission_rate_hz": float(combined["telegraph_emission_rate_hz"])})
    if quant_step_v is not None:
        notes.append(f"reads fall on a grid of {quant_step_v:.4g} V (an ADC): add an 'adc' entry with the "
                     "instrument's bits and range, which the reads alone do not give")
    return out, notes


def characterize_read(
    xbar: Crossbar,
    cfg: CharacterizeConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], None] | None = None,
) -> ReadNoiseResult:
    """Program a fixed state, read `read.nodes` `read.n_reads` times in chunks, and analyse each node."""
    spec = cfg.read
    topo = xbar.topology
    nodes = [parse_node(n) for n in spec.nodes]
    for (layer, index), name in zip(nodes, spec.nodes, strict=True):
        if layer > topo.depth or index >= topo.layers[layer]:
            raise ConfigError(f"read.nodes: {name!r} is not a node of layers {topo.layers}")
    x, params = held_state(topo, spec, cfg.seed)
    xbar.program(params, verify=True)
    t0 = time.perf_counter()
    reads = np.empty((spec.n_reads, len(nodes)), dtype=np.float64)
    times = np.empty(spec.n_reads, dtype=np.float64)
    walls = []
    starts: list[int] = []
    done = 0
    while done < spec.n_reads:
        n = min(spec.chunk, spec.n_reads - done)
        walls.append(time.perf_counter() - t0)
        m = xbar.measure(x, n_samples=n, keep_samples=True)
        if m.samples is None:
            raise RuntimeError(f"{type(xbar).__name__}.measure(keep_samples=True) returned no samples")
        for j, (layer, index) in enumerate(nodes):
            reads[done : done + n, j] = m.samples[layer - 1][:, 0, index].double().cpu().numpy()
        times[done : done + n] = m.timestamps_s.double().cpu().numpy()[:n]
        starts.append(done)
        done += n
        if progress:
            progress(done, spec.n_reads)
        if should_stop:
            should_stop()
    notes: list[str] = []
    if not running_clock(times, starts):
        # timestamps that restart at each measure() call: place each chunk by the wall clock
        times = times + np.repeat(np.array(walls), np.diff([*starts, spec.n_reads]))
        notes.append("the crossbar's timestamps restart at each measure(); chunks placed by the wall clock")
    dt, dead = ns.sample_period(times)
    gaps = [times[s] - times[s - 1] - dt for s in starts[1:]]
    overhead = float(np.mean(gaps)) if gaps else 0.0
    overhead = overhead if overhead > 1e-6 * dt else 0.0
    raw = (reads.copy(), times.copy(), list(spec.nodes))
    if spec.detrend == "linear":  # the mean stays; the slope (drifting conductances) goes
        tc = times - times.mean()
        reads -= np.outer(tc, (tc @ (reads - reads.mean(axis=0))) / (tc @ tc))
    results = [ns.analyze_node(name, reads[:, j], dt, spec.nperseg) for j, name in enumerate(spec.nodes)]
    combined = ns.combine(results)
    duration = float(times[-1] - times[0] + dt)
    q = [r.quant_step_v for r in results if r.quant_step_v is not None]
    entries, more = read_noise_entries(combined, dt, duration, float(np.median(q)) if q else None)
    notes += more
    if dead > 0.01 * duration:
        notes.append(f"{dead:.3g} s of gaps between chunks ({100 * dead / duration:.1f} % of the run): "
                     "the PSD and Allan deviation treat the reads as evenly spaced")
    # the Allan curve of the node closest to the median white sigma stands for the station
    ref = min(results, key=lambda r: abs(r.fit.sigma_v - combined["white_sigma_v"]))
    tel = None
    if "telegraph_amplitude_v" in combined:
        rc, re_ = combined["telegraph_capture_rate_hz"], combined["telegraph_emission_rate_hz"]
        p = rc / (rc + re_)
        tel = (combined["telegraph_amplitude_v"] ** 2 * p * (1 - p), 1.0 / (rc + re_))
    target = cfg.recommend.noise_target_v()
    rec = averaging.recommend_n(combined["white_sigma_v"], combined["pink_amplitude_v"], dt, target,
                         allan=ref.allan, telegraph=tel, overhead_s=max(overhead, 0.0),
                         phases=cfg.recommend.phases, batch_size=cfg.recommend.batch_size)
    return ReadNoiseResult(
        nodes=results, dt_s=dt, dead_time_s=dead, overhead_s=max(overhead, 0.0), combined=combined,
        recommendation=rec, read_noise=entries, wall_s=time.perf_counter() - t0, chunks=len(starts), notes=notes,
        raw=raw,
    )
