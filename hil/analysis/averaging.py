"""How many samples per read: the N whose Allan deviation meets a noise target on the EP difference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hil.analysis.noise_stats import LN2X2, Allan, adev_model


@dataclass
class Recommendation:
    """The samples per read N that brings the noise of an EP difference below a target."""

    target_v: float
    reachable: bool
    n_samples: int
    sigma_eff_v: float  # predicted Allan deviation at tau = N dt
    floor_v: float  # where averaging stops helping: the measured Allan minimum (or the 1/f floor)
    n_at_floor: int  # N at the Allan minimum
    dt_s: float
    overhead_s: float  # dead time per measure() call (from gaps in the timestamps)
    time_per_read_s: float
    phases: int
    batch_size: int
    time_per_batch_s: float
    measured_sigma_eff_v: float | None  # Allan deviation measured at tau = N dt, when in range

    def text(self) -> str:
        head = (f"target {self.target_v:.3g} V: N = {self.n_samples} samples per read "
                f"(predicted {self.sigma_eff_v:.3g} V")
        if self.measured_sigma_eff_v is not None:
            head += f", measured {self.measured_sigma_eff_v:.3g} V"
        head += ")"
        if not self.reachable:
            head = (f"target {self.target_v:.3g} V is below the 1/f floor {self.floor_v:.3g} V: averaging stops "
                    f"helping at N = {self.n_at_floor}; best N = {self.n_samples} "
                    f"({self.sigma_eff_v:.3g} V)")
        return (f"{head}; {self.time_per_read_s * 1e3:.4g} ms per read, "
                f"{self.time_per_batch_s:.4g} s per batch of {self.batch_size} with {self.phases} phases")


def recommend_n(
    sigma_v: float,
    amplitude_v: float,
    dt_s: float,
    target_v: float,
    *,
    allan: Allan | None = None,
    telegraph: tuple[float, float] | None = None,
    overhead_s: float = 0.0,
    phases: int = 3,
    batch_size: int = 1,
    n_max: int = 10**9,
) -> Recommendation:
    """Smallest N with Allan deviation `sqrt(sigma^2/N + 2 ln2 A^2 [+ telegraph]) <= target`.

    Why the Allan deviation: an EP update uses the difference of a nudged and a
    free read taken one after the other, each the mean of N samples; the
    variance of that difference is exactly twice the Allan variance at
    `tau = N dt` (adjacent means).  White noise falls as 1/N; 1/f noise leaves
    the flat floor `2 ln2 A^2`, so averaging stops helping where the Allan
    deviation bottoms out.  The floor is the larger of the model's and the
    measured minimum (slower drifts that a finite run shows only at its end).
    Cost: a board reads the batch one example at a time, `phases` reads each
    (3 for centered EP), each `N dt` plus the dead time of one `measure()` call.
    A telegraph (`(variance, correlation time)`, see `telegraph_avar`) adds a hump
    near twice its correlation time, which N must get past.
    """
    floor_model = math.sqrt(LN2X2) * amplitude_v

    def model_at(n: int) -> float:
        return float(adev_model(np.array([n * dt_s]), sigma_v, amplitude_v, dt_s, telegraph)[0])

    def measured_at(n: int) -> float | None:
        if allan is None or not allan.tau_s.size or not allan.tau_s[0] <= n * dt_s <= allan.tau_s[-1]:
            return None
        log_adev = np.log(np.maximum(allan.adev_v, 1e-300))
        return float(np.exp(np.interp(np.log(n * dt_s), np.log(allan.tau_s), log_adev)))

    # where averaging stops helping: the measured Allan minimum when the curve turns up
    # before its end, else where the white part has fallen to a quarter of the 1/f floor
    genuine = allan is not None and allan.adev_v.size > 2 and int(np.argmin(allan.adev_v)) < allan.adev_v.size - 2
    if genuine:
        tau_min, adev_min = allan.minimum()
        floor, n_floor = max(adev_min, floor_model), max(1, round(tau_min / dt_s))
    elif floor_model > 0:
        floor, n_floor = floor_model, max(1, math.ceil(4.0 * sigma_v**2 / floor_model**2))
    else:
        floor, n_floor = 0.0, n_max
    reachable = target_v > floor
    if reachable:
        n = min(n_max, max(1, math.ceil(sigma_v**2 / (target_v**2 - floor_model**2))))
        while telegraph and n < n_max and model_at(n) > target_v:  # past the telegraph hump
            n = min(n_max, max(n + 1, math.ceil(n * 1.02)))
        # slower noise than the model holds shows in the measured curve: follow it up to the minimum
        while n < n_floor and (m := measured_at(n)) is not None and m > target_v:
            n = min(n_floor, math.ceil(n * 1.1))
        if (m := measured_at(n)) is not None and m > target_v * 1.05 or model_at(n) > target_v * 1.05:
            reachable = False
    else:
        n = min(n_floor, n_max)
    sigma_eff = model_at(n)
    measured = measured_at(n)
    t_read = n * dt_s + overhead_s
    return Recommendation(
        target_v=target_v, reachable=reachable, n_samples=int(n), sigma_eff_v=sigma_eff, floor_v=floor,
        n_at_floor=int(n_floor), dt_s=dt_s, overhead_s=overhead_s, time_per_read_s=t_read, phases=phases,
        batch_size=batch_size, time_per_batch_s=t_read * phases * batch_size, measured_sigma_eff_v=measured,
    )
