#!/bin/bash
# `hil bench`'s figures for several checkouts, in alternating rounds of one session (issue 17's before/after).
#
#   benchmarks/bench_trees.sh ROUNDS TREE...     e.g. benchmarks/bench_trees.sh 3 ../before ../prev .
#
# Each TREE is a checkout with its own .venv (`pip install -e .`).  This tree's hil/bench.py is run
# against each tree's package (its hil.benches entry points off; `train.update: fused` timed where the
# tree has it), with one torch thread; one JSON line per tree and round.  Then, per tree and round,
# benchmarks/trial_cost.py: seconds per training sample of noise_sweep-paper's first trial.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rounds=$1; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$here/hil/bench.py" "$tmp/bench_any.py" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('for ep in entry_points(group="hil.benches"):', "for ep in []:")
s = s.replace('"train_fused": _train(batch, "fused")}', "}\n        try:\n            fns[\"train_fused\"] = _train(batch, \"fused\")\n"
              "        except TypeError:  # a tree before train.update\n            pass")
s = s.replace('for mode in ("train", "train_fused"):', 'for mode in [m for m in ("train", "train_fused") if m in fns]:')
s = s.replace("update=update)", '**({} if update == "blas" else {"update": update}))')
open(sys.argv[2], "w").write(s)
PY
for round in $(seq 1 "$rounds"); do
  for tree in "$@"; do
    py="$tree/.venv/bin/python"
    rev=$(git -C "$tree" rev-parse --short HEAD)
    bench=$(cd "$tmp" && OMP_NUM_THREADS=1 "$py" -c "import json, torch; torch.set_num_threads(1); import bench_any as b
d = b.run(4.0); print(json.dumps({k: v for k, v in d.items() if 'train' in k or 'matmul' in k or 'infer' in k}))" 2>/dev/null)
    echo "{\"round\": $round, \"tree\": \"$rev\", \"load\": $(cut -d' ' -f1 /proc/loadavg), \"bench\": $bench}"
    for update in blas fused; do
      [ $update = fused ] && ! grep -q '"fused"' "$tree/hil/config.py" && continue
      cost=$(cd "$tmp" && OMP_NUM_THREADS=1 "$py" "$here/benchmarks/trial_cost.py" "train.update=$update" 2>/dev/null)
      echo "{\"round\": $round, \"tree\": \"$rev\", \"update\": \"$update\", \"trial_cost\": $cost}"
    done
  done
done
