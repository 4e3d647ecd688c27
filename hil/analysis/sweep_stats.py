"""Statistics of a sweep's trial table: per-point summaries, crossings on log sigma, the two stages of collapse.

Definitions (also in docs/results/README.md), for the mean final test accuracy over seeds
`a(sigma)` of one dataset on a sweep's sigma grid:

- plateau: `a` at the lowest sigma of the grid (the low-noise plateau);
- `sigma_onset`: the first sigma, going up, where `a` falls `onset_drop` (default 0.05, i.e.
  5 points) below the plateau, interpolated linearly in log sigma between the two grid
  points around the crossing.  This is where read noise starts to swamp the hidden layer's
  EP signal, the paper's critical sigma_c;
- `sigma_collapse`: likewise where `a` falls below half-way from the plateau to chance;
- shoulder: `a` at the geometric midpoint `sqrt(sigma_onset * sigma_collapse)`, interpolated
  in log sigma (the level where the output layer still learns and the hidden layer no longer);
- intervals: percentile bootstrap over seeds (trials resampled with replacement within
  each grid point, everything above recomputed; 95 % by default); replicates without a
  crossing are counted and left out;
- converged fraction: trials with final accuracy >= `converged_acc` over all trials of the
  point (failed trials count as not converged), with its Wilson score interval;
- `signal_v` of a trial: the EP signal of its weakest layer (median |s(beta_2) - s(beta_1)|
  over active nodes, `hil.diagnostics`, averaged over its epochs), from which
  `hil diagnose` predicts the onset; None for trials trained before the diagnostics existed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hil.sweep import Sweep, SweepConfig, Trial

Z95 = 1.959963984540054


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (0..1 when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, min(p, mid - half)), min(1.0, max(p, mid + half))  # contains p (rounding at k = 0, n)


def group_stats(table: list[dict[str, Any]], keys: list[str], converged_acc: float) -> list[dict[str, Any]]:
    """Mean, spread and convergence (with its Wilson interval) of final test accuracy per group of trials.

    Failed trials count in `n_failed` and as not converged; pending ones are left out.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in table:
        if row["status"] == "pending":
            continue
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, rows in sorted(groups.items(), key=lambda kv: tuple(str(v) if isinstance(v, str) else v
                                                                  for v in kv[0])):
        accs = np.array([r["final_test_acc"] for r in rows if r["status"] == "completed"
                         and finite(r["final_test_acc"])], dtype=float)
        n_conv = int((accs >= converged_acc).sum())
        lo, hi = wilson(n_conv, len(rows))
        out.append({
            **dict(zip(keys, key, strict=True)),
            "n": len(rows),
            "n_failed": sum(r["status"] == "failed" for r in rows),
            "mean_acc": float(accs.mean()) if accs.size else float("nan"),
            "std_acc": float(accs.std(ddof=1)) if accs.size > 1 else 0.0,
            "min_acc": float(accs.min()) if accs.size else float("nan"),
            "max_acc": float(accs.max()) if accs.size else float("nan"),
            "n_converged": n_conv,
            "frac_converged": n_conv / len(rows),
            "converged_lo": lo,
            "converged_hi": hi,
        })
    return out


def log_crossing(xs: list[float], ys: list[float], level: float) -> tuple[float | None, str]:
    """Where ys first falls below `level`, going up in x, interpolated linearly in log x.

    Returns (x, how): how is 'interpolated', 'below at the first point' (x None) or
    'never below' (x = the last x, a lower bound).
    """
    pairs = sorted((x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and finite(y))
    if not pairs:
        return None, "no data"
    if pairs[0][1] < level:
        return None, "below at the first point"
    for (x0, y0), (x1, y1) in itertools.pairwise(pairs):
        if y1 < level:
            f = (y0 - level) / (y0 - y1)
            return 10 ** (math.log10(x0) + f * (math.log10(x1) - math.log10(x0))), "interpolated"
    return pairs[-1][0], "never below"


def log_interp(xs: list[float], ys: list[float], x: float) -> float | None:
    """y at x, interpolated linearly in log x on the (sorted, positive) points."""
    pairs = sorted((a, b) for a, b in zip(xs, ys, strict=True) if a > 0 and finite(b))
    if not pairs or not pairs[0][0] <= x <= pairs[-1][0]:
        return None
    lx = [math.log10(a) for a, _ in pairs]
    return float(np.interp(math.log10(x), lx, [b for _, b in pairs]))


def stages(sigmas: list[float], means: list[float], chance: float, onset_drop: float) -> dict[str, Any]:
    """Plateau, sigma_onset, sigma_collapse and the shoulder of one mean-accuracy curve (see the module doc)."""
    pairs = sorted(zip(sigmas, means, strict=True))
    plateau = pairs[0][1]
    xs = [s for s, _ in pairs if s > 0]
    ys = [a for s, a in pairs if s > 0]
    collapse_level = chance + 0.5 * (plateau - chance)
    onset, onset_how = log_crossing(xs, ys, plateau - onset_drop)
    collapse, collapse_how = log_crossing(xs, ys, collapse_level)
    shoulder = None
    if onset_how == "interpolated" and collapse_how == "interpolated":
        shoulder = log_interp(xs, ys, math.sqrt(onset * collapse))
    return {"plateau_acc": plateau, "onset_level": plateau - onset_drop, "collapse_level": collapse_level,
            "sigma_onset": onset, "onset_how": onset_how, "sigma_collapse": collapse,
            "collapse_how": collapse_how, "shoulder_acc": shoulder}


def bootstrap(groups: dict[Any, list[float]], statistic: Callable[[dict[Any, list[float]]], float | None],
              n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Percentile interval of `statistic` over resamples (with replacement, within each group) of `groups`."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        boot = {k: [v[i] for i in rng.integers(0, len(v), len(v))] for k, v in groups.items() if v}
        x = statistic(boot)
        if x is not None and finite(x):
            values.append(x)
    if not values:
        return {"lo": None, "hi": None, "n_valid": 0, "n_boot": n_boot}
    q = (1 - level) / 2
    lo, hi = np.quantile(values, [q, 1 - q])
    return {"lo": float(lo), "hi": float(hi), "n_valid": len(values), "n_boot": n_boot, "level": level}


def trial_table(sweep: Sweep, store: Any) -> list[dict[str, Any]]:
    """One flat row per trial of the sweep, in grid order: axes, status, accuracies, converged."""
    stored = {r["trial_id"]: r for r in store.trials(sweep.id)}
    rows = []
    for t in sweep.trials:
        r = stored.get(t.id)
        res = (r or {}).get("result") or {}
        final = res.get("final_test_acc")
        cfg = t.config
        eta = cfg["train"]["eta"][0] if isinstance(cfg["train"]["eta"], list) else cfg["train"]["eta"]
        rows.append({
            "trial": t.index,
            "trial_id": t.id,
            "dataset": cfg["data"]["dataset"],
            "sigma": float(cfg["crossbar"].get("sigma", 0.0)),
            "n_samples": cfg["train"]["n_samples"],
            "batch_size": cfg["train"]["batch_size"],
            "beta": cfg["train"]["beta"],
            "eta": eta,
            "eta_eff": float(f"{eta / cfg['train']['beta']:.6g}"),
            "seed": cfg["seed"],
            **{k: v for k, v in t.point.items() if k not in _RESOLVED_AXES},
            "status": r["status"] if r else "pending",
            "final_test_acc": final,
            "best_test_acc": res.get("best_test_acc"),
            "converged": None if final is None else bool(final >= sweep.config.converged_acc),
            "wall_s": res.get("wall_s"),
            "signal_v": weakest_signal(res.get("epochs") or []),
            "error": (r or {}).get("error"),
        })
    return rows


def weakest_signal(epochs: list[dict[str, Any]]) -> float | None:
    """The weakest layer's EP signal (V) of one trial: per layer the mean over epochs of its median |ds|."""
    by_layer: dict[int, list[float]] = {}
    for e in epochs:
        for r in e.get("signal") or []:
            if finite(r.get("signal_median")):
                by_layer.setdefault(r["layer"], []).append(r["signal_median"])
    means = [sum(v) / len(v) for v in by_layer.values() if v]
    return min(means) if means else None


_RESOLVED_AXES = {"data.dataset", "crossbar.sigma", "train.n_samples", "train.beta", "train.eta", "eta_eff", "seed"}
#: the columns `trial_table` always writes; any other column is a further grid axis (`network.hidden`, ...)
TABLE_COLUMNS = ("trial", "trial_id", "dataset", "sigma", "n_samples", "batch_size", "beta", "eta", "eta_eff", "seed",
                 "status", "final_test_acc", "best_test_acc", "converged", "wall_s", "signal_v", "error")


def extra_axes(table: list[dict[str, Any]]) -> list[str]:
    """Grid axes of the table beyond the standard columns (`network.hidden`, `train.epochs`, ...), in order."""
    return list(dict.fromkeys(k for r in table for k in r if k not in TABLE_COLUMNS))


def table_for(cfg: SweepConfig, sweep_id: str, trials: list[Trial], store: Any) -> list[dict[str, Any]]:
    """The trial table of a stored sweep (from `hil.sweep.open_sweep`)."""
    return trial_table(Sweep(cfg, "", {}, trials, sweep_id), store)


_CSV_TYPES = {"trial": int, "n_samples": int, "batch_size": int, "seed": int, "sigma": float, "beta": float,
              "eta": float, "eta_eff": float, "final_test_acc": float, "best_test_acc": float, "wall_s": float,
              "signal_v": float}


def read_trial_table(path: Path) -> list[dict[str, Any]]:
    """A trial table as `hil plot` wrote it (`<figure>-trials.csv`), so results re-analyse without their store."""
    import csv

    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = dict(r)
            for key, kind in _CSV_TYPES.items():
                if key in row:
                    row[key] = kind(float(row[key])) if row[key] not in ("", None) else None
            row["converged"] = {"True": True, "False": False}.get(row.get("converged", ""))
            row["error"] = None if row.get("error") in ("", "[]", None) else row["error"]
            for key in row:
                if key not in TABLE_COLUMNS and row[key] not in ("", None):
                    row[key] = yaml.safe_load(row[key])  # a further grid axis: [256] -> [256], 4 -> 4
            rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
