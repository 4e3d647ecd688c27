"""Training protocol: the EP schedule over epochs and batches, on whatever crossbar it is given.

What to do lives here; how (twin or board) lives in the crossbar, and where the
results go (SQLite and checkpoints, or memory for a sweep trial) in the
`TrainHooks` passed in.  Shuffling uses a generator seeded from (seed, epoch),
so the order of any epoch is known without saving generator state, and a
resumed run replays exactly the batches that an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from hil.adaptive import AdaptiveReads
from hil.config import DataConfig, RunConfig
from hil.datasets import Split, load, to_voltages
from hil.diagnostics import SignalMonitor
from hil.ep import EPController, initial_conductances
from hil.errors import ConfigError
from hil.estimate import TrainingPlan
from hil.interface import Crossbar, SupportsState, Topology
from hil.readout import Readout
from hil.tasks import BOARD_TASKS, downsample, load_task, task_info, tile

#: classes of the IDX image sets (packed sweeps train those only; board tasks take theirs from `readout_for`)
N_CLASSES = 10


@dataclass
class TrainData:
    train: Split
    test: Split
    input_gain: float
    readout: Readout = field(default_factory=Readout)
    input_offsets: tuple[float, float] = (0.0, 0.0)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        return to_voltages(images, self.input_gain, offsets=self.input_offsets)


def readout_for(data: DataConfig) -> Readout:
    return Readout(data.readout, task_info(data.dataset, data.size).classes, data.target_v, data.target_off_v)


def prepare_data(cfg: RunConfig, data_dir: str | None = None) -> TrainData:
    d = cfg.data
    if d.dataset in BOARD_TASKS:
        train, test = load_task(d.dataset, test_fraction=d.test_fraction, seed=d.split_seed, size=d.size)
    else:
        train, test = load(d.dataset, d.root or data_dir)
    train, test = train.subset(d.train_subset), test.subset(d.test_subset)
    if d.size is not None and d.dataset not in BOARD_TASKS:
        train, test = downsample(train, d.size), downsample(test, d.size)
    return TrainData(tile(train, d.tile), tile(test, d.tile), d.input_gain, readout_for(d), d.input_offsets)


#: bytes the host holds per conductance during training (crossbar copy, controller copy, update, checkpoint)
BYTES_PER_CONDUCTANCE = 16


def topology_for(cfg: RunConfig, n_pixels: int, source: str = "config") -> Topology:
    """The network of a config: doubled inputs (2 x features after tiling), hidden layers, outputs of its readout.

    One that cannot fit in this machine's memory is a ConfigError.
    """
    net = cfg.network
    sizes = (2 * n_pixels, *net.hidden, readout_for(cfg.data).n_out)
    n_g = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if n_g * BYTES_PER_CONDUCTANCE > memory:
        msg = (f"network.hidden: {list(net.hidden)} makes {n_g:.3g} conductances, about "
               f"{n_g * BYTES_PER_CONDUCTANCE / 2**30:,.0f} GiB to train; this machine has {memory / 2**30:,.0f} GiB")
        raise ConfigError(f"{source}: {msg}", key="network.hidden", detail=msg)
    return Topology(
        layers=(2 * n_pixels, *net.hidden, readout_for(cfg.data).n_out),
        g_min=net.g_min,
        g_max=net.g_max if net.g_max is not None else math.inf,
        g_unit=net.g_unit,
        v_unit=net.v_unit,
    )


def epoch_order(cfg: RunConfig, epoch: int, n_train: int) -> torch.Tensor:
    """The shuffled order of an epoch: seeded from (seed, epoch), so a resumed run replays it."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))


def training_plan(cfg: RunConfig, data: TrainData, topology: Topology) -> TrainingPlan:
    """The first epoch's level sequences, for a planner to time (`hil train --estimate`)."""
    tc = cfg.train
    order = epoch_order(cfg, 0, len(data.train))
    if tc.max_batches:
        order = order[: tc.max_batches * tc.batch_size]
    return TrainingPlan(
        layers=topology.layers, batch_size=tc.batch_size, n_samples=tc.n_samples,
        eval_n_samples=cfg.eval.n_samples or tc.n_samples, eval_batch_size=cfg.eval.batch_size,
        nudged_phases=2 if tc.centered else 1, beta=tc.beta,
        train_inputs=data.inputs(data.train.images[order]).numpy(),
        train_targets=data.readout.target(data.train.labels[order]).numpy(),
        test_inputs=data.inputs(data.test.images).numpy(),
    )


def per_block(value: float | list[float] | None, n: int, default: list[float] | None = None) -> list[float]:
    if value is None:
        assert default is not None
        return default
    return list(value) if isinstance(value, list) else [float(value)] * n


def bias_rates(cfg: RunConfig, eta_w: list[float]) -> list[float]:
    """The biases' learning rates: 0 for a network without biases (they stay at 0 A), else train.eta_bias or eta."""
    if not cfg.network.biases:
        return [0.0] * len(eta_w)
    return per_block(cfg.train.eta_bias, len(eta_w), eta_w)


def check_biases(cfg: RunConfig, source: str) -> None:
    """A network with biases needs a station that can write them: refused before anything is opened."""
    station = cfg.crossbar.get("station") if cfg.crossbar.get("kind") == "lab" else None
    if not cfg.network.biases or station is None:
        return
    from hil.station import load_station

    if not load_station(station).bias_sources:
        msg = (f"{station} has no bias sources (conductances.kind: pulse), so the biases this config learns "
               "cannot be written; set network.biases: false (no biases; see docs/board.md) or use a station with "
               "bias sources")
        raise ConfigError(f"{source}: network.biases: {msg}", key="network.biases", detail=f"network.biases: {msg}")


class TrainHooks:
    """Where a training run reports to; the base class keeps epochs in memory only."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []

    def start(self, total_batches: int, done_batches: int, epoch: int) -> None: ...

    def batch(self, row: dict[str, Any], running_acc: float, samples_per_s: float) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None:
        self.epochs.append(row)

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None:
        return None

    @property
    def stopping(self) -> bool:
        """True when a stop was asked for: the loop then saves a checkpoint before `should_stop`."""
        return False

    def should_stop(self) -> None:
        """Raise to stop at this batch boundary (after `save`)."""


@dataclass
class _EpochTally:
    correct: int = 0
    seen: int = 0
    loss: float = 0.0
    wall_s: float = 0.0
    reads: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)


def train(xbar: Crossbar, cfg: RunConfig, data: TrainData, hooks: TrainHooks | None = None) -> list[dict[str, Any]]:
    """Train `xbar` with EP per `cfg`; returns one row per epoch (test accuracy included)."""
    hooks = hooks or TrainHooks()
    tc = cfg.train
    depth = xbar.topology.depth
    eta_w = per_block(tc.eta, depth)
    eta_b = bias_rates(cfg, eta_w)
    state = hooks.load()
    if state is None:
        gains = per_block(cfg.network.init_gain, depth)
        xbar.program(initial_conductances(xbar.topology, gains, torch.Generator().manual_seed(cfg.seed),
                                          cfg.network.init_hidden_bias))
        start_epoch, start_batch, tally = 0, 0, _EpochTally()
    else:
        xbar.program(state["params"])
        if isinstance(xbar, SupportsState):
            xbar.load_state_dict(state["crossbar"])
        start_epoch, start_batch = state["epoch"], state["batch"]
        tally = _EpochTally(**{**state["tally"], "pending": []})  # hooks.load replayed them
    monitor = SignalMonitor(depth, getattr(xbar, "read_sigma_v", None))
    if state is not None and "diagnostics" in state:
        monitor.load_state_dict(state["diagnostics"])
    adaptive = None
    if tc.adaptive is not None:
        adaptive = AdaptiveReads(tc.adaptive, tc.beta, tc.n_samples, depth - 1)
        if state is not None and "adaptive" in state:
            adaptive.load_state_dict(state["adaptive"])
    ctl = EPController(xbar, beta=tc.beta, centered=tc.centered, n_samples=tc.n_samples, eta_w=eta_w, eta_b=eta_b,
                       monitor=monitor, momentum=tc.momentum, readout=data.readout, adaptive=adaptive)
    if state is not None and state.get("velocity"):
        ctl.velocity = {k: v.to(ctl.params[k]) for k, v in state["velocity"].items()}
    n_train = len(data.train)
    n_batches = math.ceil(n_train / tc.batch_size)
    if tc.max_batches:
        n_batches = min(n_batches, tc.max_batches)

    def snapshot(epoch: int, batch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "batch": batch,
            "params": {k: v.detach().cpu().clone() for k, v in ctl.params.items()},
            "crossbar": xbar.state_dict() if isinstance(xbar, SupportsState) else {},
            "tally": tally.__dict__.copy(),
            "diagnostics": monitor.state_dict(),
            "velocity": {k: v.detach().cpu().clone() for k, v in ctl.velocity.items()},
            **({"adaptive": adaptive.state_dict()} if adaptive else {}),
        }

    for epoch in range(start_epoch, tc.epochs):
        lr_scale = tc.lr_decay**epoch
        order = epoch_order(cfg, epoch, n_train)
        first = start_batch if epoch == start_epoch else 0
        if first == 0 and epoch != start_epoch:
            tally = _EpochTally()
        hooks.start(n_batches, first, epoch)
        t_epoch = time.perf_counter() - tally.wall_s
        for b in range(first, n_batches):
            t0 = time.perf_counter()
            idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
            labels = data.train.labels[idx]
            result = ctl.step(data.inputs(data.train.images[idx]), data.readout.target(labels), labels, lr_scale)
            row = {"epoch": epoch, "batch": b, "size": len(idx), "correct": result.correct, "loss": result.loss,
                   "iterations": result.iterations, "clipped": result.clipped}
            if adaptive:
                row.update(n_samples=result.n_samples, beta=result.beta, snr=result.snr)
            tally.reads += result.reads
            tally.correct += result.correct
            tally.seen += len(idx)
            tally.loss += result.loss * len(idx)
            tally.pending.append(row)
            tally.wall_s = time.perf_counter() - t_epoch
            hooks.batch(row, tally.correct / tally.seen, len(idx) / max(time.perf_counter() - t0, 1e-9))
            if hooks.stopping or ((b + 1) % tc.checkpoint_every == 0 and b + 1 < n_batches):
                hooks.save(snapshot(epoch, b + 1))
                tally.pending = []
            hooks.should_stop()
        train_wall = time.perf_counter() - t_epoch
        correct, loss = ctl.evaluate(_batches(data, cfg.eval.batch_size), cfg.eval.n_samples)
        row = {
            "epoch": epoch,
            "train_acc": tally.correct / max(tally.seen, 1),
            "train_loss": tally.loss / max(tally.seen, 1),
            "test_acc": correct / len(data.test),
            "test_loss": loss / len(data.test),
            "lr_scale": lr_scale,
            "wall_s": train_wall,
            "samples_per_s": tally.seen / max(train_wall, 1e-9),
            "signal": monitor.summary(),
            "reads": tally.reads,
            "pending": tally.pending,
        }
        tally = _EpochTally()
        monitor.reset()
        hooks.epoch(row)
        hooks.save(snapshot(epoch + 1, 0))
        hooks.should_stop()
    return hooks.epochs


def _batches(data: TrainData, batch_size: int):
    for i in range(0, len(data.test), batch_size):
        yield data.inputs(data.test.images[i : i + batch_size]), data.test.labels[i : i + batch_size]
