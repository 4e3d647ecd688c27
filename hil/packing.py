"""Packed trials: a sweep's trials of one shape and schedule trained in lockstep in one process.

`pack_trials` groups pending trials (same network, schedule, data sizes and
crossbar settings apart from the per-trial `sigma`, `seed` and read noise) into
packs of at most `size`; `run_pack` trains one pack on a worker on a packed
twin (`Crossbar` classes offer one as `packed(topology, specs, seeds, source)`;
the twin does) and returns one result per trial, each equal to what
`run_trial` returns for that trial alone (wall times aside: the pack's time is
shared equally).  A pack whose crossbar cannot be packed runs its trials one
after the other.

Where packing pays depends on size (docs/results/packing.md, measured): small
networks are bound by per-operation overhead, which a pack shares; the paper's
1568-1024-10 network mostly by its large products, which it does not.
`auto_pack_size` encodes that choice.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from typing import Any

from hil.config import RunConfig, validate_section

PER_TRIAL_CROSSBAR_KEYS = ("sigma", "seed", "read_noise", "read_path")
AUTO_PACK_CELLS = 600_000  # below this many conductances a network is overhead-bound
AUTO_PACK_SMALL, AUTO_PACK_LARGE = 4, 1  # measured on whole sweeps: docs/results/packing.md, section 0


def auto_pack_size(config: dict[str, Any]) -> int:
    """Trials per pack: AUTO_PACK_SMALL below AUTO_PACK_CELLS conductances, else AUTO_PACK_LARGE; 1 when unpackable."""
    if config["train"].get("momentum") or config["crossbar"].get("layout") == "column":
        return 1  # train_packed packs neither momentum nor column-major blocks (simulators/packed.py)
    layers = [1568, *config["network"]["hidden"], 10]
    cells = sum(a * b for a, b in zip(layers[:-1], layers[1:], strict=True))
    return AUTO_PACK_SMALL if cells < AUTO_PACK_CELLS else AUTO_PACK_LARGE


def pack_group(config: dict[str, Any]) -> str:
    """Trials with equal groups may share a pack."""
    from hil.protocols.train_packed import schedule_key

    crossbar = {k: v for k, v in config["crossbar"].items() if k not in PER_TRIAL_CROSSBAR_KEYS}
    return schedule_key(validate_section(RunConfig, config, "trial")) + json.dumps(crossbar, sort_keys=True)


def pack_trials(trials: list[Any], size: int | None) -> list[list[Any]]:
    """Packs of at most `size` trials (None: `auto_pack_size` of each group), in grid order within a group."""
    groups: dict[str, list[Any]] = {}
    for t in trials:
        groups.setdefault(pack_group(t.config), []).append(t)
    packs = []
    for members in groups.values():
        n = size or auto_pack_size(members[0].config)
        packs += [members[i : i + n] for i in range(0, len(members), n)]
    return packs


def run_pack(configs: list[dict[str, Any]], data_dir: str | None, torch_threads: int) -> list[dict[str, Any]]:
    """Train the trials of one pack in lockstep (on a Dask worker; writes nothing); one result per trial."""
    import torch

    from hil.protocols.train import topology_for
    from hil.protocols.train_packed import train_packed
    from hil.registry import open_packed
    from hil.sweep_run import run_trial, trial_data

    if len(configs) == 1:
        return [run_trial(configs[0], data_dir, torch_threads)]
    torch.set_num_threads(max(1, torch_threads))
    t0 = time.perf_counter()
    cfgs = [validate_section(RunConfig, c, "trial") for c in configs]
    out: list[dict[str, Any]] = [{} for _ in cfgs]
    datas = {}
    for i, c in enumerate(cfgs):  # a trial whose data fails to load fails alone
        try:
            datas[i] = trial_data(c, data_dir)
        except Exception as exc:
            out[i] = {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
    live = sorted(datas)
    if not live:
        return out
    topology = topology_for(cfgs[live[0]], datas[live[0]].train.images.shape[1])
    xbar = open_packed(topology, [cfgs[i].crossbar for i in live], seeds=[cfgs[i].seed for i in live],
                       source="trial")
    if xbar is None or len(live) == 1 or cfgs[live[0]].train.momentum:  # not packable: one after the other
        for i in live:
            out[i] = run_trial(configs[i], data_dir, torch_threads)
        return out
    with xbar:
        per_trial = train_packed(xbar, [cfgs[i] for i in live], [datas[i] for i in live])
    wall = (time.perf_counter() - t0) / len(live)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    for i, rows in zip(live, per_trial, strict=True):
        accs = [r["test_acc"] for r in rows]
        out[i] = {
            "final_test_acc": accs[-1] if accs else None,
            "best_test_acc": max(accs) if accs else None,
            "final_train_acc": rows[-1]["train_acc"] if rows else None,
            "epochs": rows,
            "wall_s": wall,
            "worker": worker,
            "torch_threads": torch.get_num_threads(),
            "packed": len(live),
        }
    return out
