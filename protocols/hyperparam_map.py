"""Hyper-parameter map (Peters & Talatchian 2025, Fig. 5): convergence over beta x eta_eff, per sigma.

eta_eff is defined here as eta / beta: the factor that multiplies the measured
difference of the two nudged phases in the update (DESIGN.md: dG = -(eta / beta)
* 1/2 * mean_b[...]).  With centered EP (nudges at +beta and -beta) the phases
are 2 beta apart, so the raw difference is multiplied by eta_eff / 2.  An
`eta_eff` axis sets `train.eta = eta_eff * beta`, beta being that trial's
`train.beta` (its own axis, or the base config's).

A trial has converged when its final test accuracy is >= `converged_acc` of the
sweep file.  Each tile reports the fraction of seeds that converged and the mean
accuracy; the heat maps mark `default_tile` (the reference DRN recipe).
"""

from __future__ import annotations

from typing import Any

from hil.analysis.sweep_stats import group_stats
from hil.errors import ConfigError
from hil.sweep import SweepConfig, yaml_value


def derived_overrides(derived: dict[str, Any], point: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """`eta_eff` -> `train.eta = eta_eff * beta`."""
    unknown = set(derived) - {"eta_eff"}
    if unknown:
        raise ConfigError(f"hyperparam_map knows the derived axis eta_eff only, not {', '.join(sorted(unknown))}")
    beta = float(point.get("train.beta", base.get("train", {}).get("beta", 1.0)))
    return [f"train.eta={yaml_value(float(derived['eta_eff']) * beta)}"]


def analyze(table: list[dict[str, Any]], cfg: SweepConfig) -> dict[str, Any]:
    summary = group_stats(table, ["sigma", "beta", "eta_eff"], cfg.converged_acc)
    return {"summary": summary, "default_tile": cfg.default_tile, "converged_acc": cfg.converged_acc,
            "definition": "eta_eff = eta / beta; converged: final test acc >= converged_acc"}
