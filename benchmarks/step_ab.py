"""The EP step of an older commit against this tree's, in ONE process, in CPU time: a fair A/B on a busy machine.

The older commit's `simulators/drn.py`, `simulators/twin.py` and `hil/ep.py` are read with
`git show REV:PATH` and loaded under other module names (nothing is written to disk); both
controllers train the same 1568-1024-10 twin as `hil bench` does, on the same batches, and
after the same number of steps their conductances are compared exactly.  Single steps of the
old code, the new code and 3 batch-B matmuls are timed in turn with `time.process_time`
(which does not count waiting for a core), and the 10th percentile of each is kept: the steps
that ran without a neighbour's process in the cache.  A step's cost is given in matmul times
and as `hil bench`'s roofline fraction, 3 x matmul / step.

    OMP_NUM_THREADS=1 python benchmarks/step_ab.py REV [--batch 4] [--rounds 200] [--layers 1568,1024,10]
    OMP_NUM_THREADS=1 python benchmarks/step_ab.py --g1-passes [--batch 4]

`--layers 16,1024,10` shrinks G1 to a few cells: what is left is the step's small operations.
`--g1-passes` times instead, the same way, each pass over G1 that a step makes, in matmul times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from hil.datasets import load_embedded, one_hot, to_voltages
from hil.interface import Topology

MODULES = {"hil.simulators.drn": "simulators/drn.py", "hil.simulators.twin": "simulators/twin.py",
           "hil.ep": "hil/ep.py"}
ROOT = Path(__file__).resolve().parent.parent


def load_old(rev: str) -> tuple[types.ModuleType, types.ModuleType]:
    """The twin and ep modules of `rev`, importing each other (and nothing else of `rev`)."""
    alias = {m: "old_" + m.replace(".", "_") for m in MODULES}
    for mod, path in MODULES.items():
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True,
                             check=True).stdout
        for m, a in alias.items():
            src = src.replace(f"from {m} import", f"from {a} import")
        module = types.ModuleType(alias[mod])
        module.__file__ = f"<{rev}:{path}>"
        sys.modules[alias[mod]] = module
        exec(compile(src, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own repository's code
    return sys.modules[alias["hil.simulators.twin"]], sys.modules[alias["hil.ep"]]


def trainer(twin_mod, ep_mod, layers: tuple[int, ...], batch: int):
    """One step of `hil bench`'s training on a twin built from these modules, and its controller."""
    top = Topology(layers)
    xbar = twin_mod.TwinCrossbar(top, twin_mod.TwinConfig(), seed=0)
    xbar.program(ep_mod.initial_conductances(top, [1.0, 1.0], torch.Generator().manual_seed(0)))
    ctl = ep_mod.EPController(xbar, beta=1.0, centered=True, n_samples=1, eta_w=[0.006] * 2, eta_b=[0.006] * 2)
    train, _ = load_embedded()
    x, t = to_voltages(train.images, 480.0)[:, : layers[0]], one_hot(train.labels, 10)
    pos = [0]

    def once() -> None:
        i = pos[0] % (len(t) - batch)
        pos[0] += batch
        ctl.step(x[i : i + batch], t[i : i + batch], train.labels[i : i + batch])

    return once, ctl


def g1_passes(batch: int, rounds: int) -> None:
    """CPU time of each full pass over a 1568 x 1024 G1 in one EP step, in batch-`batch` matmul times."""
    g = torch.rand(1568, 1024)
    x = torch.randn(batch, 1568)
    out = torch.empty(batch, 1024)
    left, right = torch.randn(batch + 1, 1568), torch.randn(batch + 1, 1024) * 1e-6
    ops = {
        "x @ G1 (matmul)": lambda: torch.mm(x, g, out=out),
        f"G1 update, addmm_ of rank {batch + 1}": lambda: g.addmm_(left.T, right, alpha=1e-3),
        "clip, clamp_(min=0)": lambda: g.clamp_(min=0.0),
        "range check, min()": lambda: bool(g.min() < 0),
        "column sums, sum(0)": lambda: g.sum(dim=0),
    }
    samples: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(rounds):
        for k, f in ops.items():
            t0 = time.process_time()
            f()
            samples[k].append(time.process_time() - t0)
    low = {k: statistics.quantiles(v, n=10)[0] for k, v in samples.items()}
    m = low["x @ G1 (matmul)"]
    for k, v in low.items():
        print(f"{k:34s} {v * 1e3:7.3f} ms  {v / m:5.2f} matmuls")
    print(f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", default="main", help="the older commit (not needed with --g1-passes)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--layers", default="1568,1024,10")
    ap.add_argument("--g1-passes", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.g1_passes:
        return g1_passes(args.batch, args.rounds)
    layers = tuple(int(v) for v in args.layers.split(","))
    import hil.ep as new_ep
    import hil.simulators.twin as new_twin

    old_twin, old_ep = load_old(args.rev)
    a = torch.randn(args.batch, 1568)
    b = torch.rand(1568, 1024)
    out = torch.empty(args.batch, 1024)
    fns = {"matmul": lambda: torch.mm(a, b, out=out)}
    fns["old"], old_ctl = trainer(old_twin, old_ep, layers, args.batch)
    fns["new"], new_ctl = trainer(new_twin, new_ep, layers, args.batch)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        for _ in range(5):
            f()
    for _ in range(args.rounds):
        for k, f in fns.items():
            for _ in range(3 if k == "matmul" else 1):
                t0 = time.process_time()
                f()
                samples[k].append(time.process_time() - t0)
    low = {k: statistics.quantiles(v, n=10)[0] for k, v in samples.items()}
    same = all(torch.equal(old_ctl.params[k], new_ctl.params[k]) for k in old_ctl.params)
    m = low["matmul"]
    print(f"layers {args.layers}, batch {args.batch}, vs {args.rev}: matmul {m * 1e3:.3f} ms | "
          f"old step {low['old'] * 1e3:.3f} ms = {low['old'] / m:.2f} matmuls (fraction {3 * m / low['old']:.3f}) | "
          f"new step {low['new'] * 1e3:.3f} ms = {low['new'] / m:.2f} matmuls (fraction {3 * m / low['new']:.3f}) | "
          f"new/old {low['new'] / low['old']:.3f} | conductances equal: {same} | load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
