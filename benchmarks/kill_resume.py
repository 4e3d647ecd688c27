"""Where the killed-sweep resume's time goes, packed or not: wall time against CPU time, phase by phase.

The sequence of `tests/sweeps/test_sweep_dask.py::test_killed_sweep_resumes_to_the_uninterrupted_table`
on `tests/sweeps/tiny.yaml` (one worker, one thread), with `--pack N`: start the sweep, SIGKILL its
process group once 2 trials are recorded, then run it again to the end.  Prints each phase's wall
time and the CPU time the resume used (the client and the workers it waited for).  With `--trials`
it instead trains trial 0 (sigma 1e-4) and trial 3 (sigma 1.0) alone and then as one pack, in this
process, and prints their CPU time and solver sweeps per phase.

    OMP_NUM_THREADS=1 python benchmarks/kill_resume.py WORKSPACE --pack 4
    OMP_NUM_THREADS=1 python benchmarks/kill_resume.py WORKSPACE --trials
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from hil.store import completed_trials

TINY = Path(__file__).resolve().parent.parent / "tests" / "sweeps" / "tiny.yaml"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def kill_and_resume(ws: Path, pack: int) -> None:
    cmd = [sys.executable, "-m", "hil", "sweep", str(TINY), "--workspace", str(ws), "--workers", "1",
           "--threads", "1", "--pack", str(pack), "--quiet"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while completed_trials(ws / "hil.db") < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = completed_trials(ws / "hil.db")
    print(f"pack {pack}: killed after {time.monotonic() - t0:.0f} s wall with {done} of 6 trials recorded; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    c0, t1 = children_cpu(), time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    print(f"pack {pack}: resume rc {out.returncode}, {time.monotonic() - t1:.0f} s wall, "
          f"{children_cpu() - c0:.1f} s CPU; load {os.getloadavg()[0]:.1f}; {out.stdout.strip().splitlines()[-1:]}")


def trial_costs() -> None:
    import torch

    from hil.packing import run_pack
    from hil.simulators.drn import DRNSolver
    from hil.sweep import load_sweep

    torch.set_num_threads(1)
    sweep = load_sweep(TINY)
    sweeps: list[int] = []
    solve, solve_packed = DRNSolver.solve, DRNSolver.solve_packed

    def counted(self, *a, **k):
        eq = solve(self, *a, **k)
        sweeps.append(eq.iterations)
        return eq

    def counted_packed(self, *a, **k):
        eq, each = solve_packed(self, *a, **k)
        sweeps.append(max(each))
        return eq, each

    DRNSolver.solve, DRNSolver.solve_packed = counted, counted_packed
    runs = {f"trial {i} {sweep.trials[i].point} alone": [i] for i in (0, 3)} | {"trials 0 and 3 packed": [0, 3]}
    for name, idx in runs.items():
        sweeps.clear()
        t0 = time.process_time()
        run_pack([sweep.trials[i].config for i in idx], None, 1)
        print(f"{name}: {time.process_time() - t0:.1f} s CPU, {len(sweeps)} solves, sweeps per solve mean "
              f"{sum(sweeps) / len(sweeps):.1f} max {max(sweeps)}; load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--pack", type=int, default=4)
    ap.add_argument("--trials", action="store_true")
    args = ap.parse_args()
    if args.trials:
        return trial_costs()
    args.workspace.mkdir(parents=True, exist_ok=False)
    kill_and_resume(args.workspace, args.pack)


if __name__ == "__main__":
    main()
