"""`hil bench` runs end to end and reports both layouts' throughput as fractions of the same run's matmul.

Speeds are never asserted (they are the machine's); what is checked is that every figure the
README's speed table quotes is there and is a finite positive number.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys


def test_bench_reports_both_layouts_against_the_matmul() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hil", "bench", "--seconds", "0.3", "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for batch in (4, 32):
        for mode in ("", "_column"):
            for what in ("samples_per_s", "roofline_fraction"):
                value = figures[f"train_b{batch}{mode}_{what}"]
                assert math.isfinite(value) and value > 0, (batch, mode, what)
        assert figures[f"matmul_b{batch}_gflops"] > 0
    assert "as a fraction of the batch-4 matmul roofline" in proc.stdout
