#!/bin/bash
# `hil bench` and the trial cost of several checkouts, in alternating rounds of one session (issue 17's before/after).
#
#   benchmarks/bench_trees.sh ROUNDS TREE[:KEY=VALUE,...]...
#   e.g. benchmarks/bench_trees.sh 4 ../before ../prev:train.update=fused . .:crossbar.layout=column
#
# Each TREE is a checkout with its own .venv (`pip install -e .`).  Per round and tree, the tree's own
# `hil bench --json` with one torch thread (hil.benches entry points included), once per tree;
# then, per TREE:SET, this tree's benchmarks/trial_cost.py against that tree's package with those
# overrides (one torch thread too, as a sweep worker): milliseconds per training sample of
# noise_sweep-paper's first trial.  One JSON line each; nothing else runs meanwhile, by design.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rounds=$1; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT  # a neutral cwd: no checkout's hil/ shadows the tree's package
for round in $(seq 1 "$rounds"); do
  benched=" "
  for spec in "$@"; do
    tree=${spec%%:*}; sets=""; [ "$spec" != "$tree" ] && sets=${spec#*:}
    py="$tree/.venv/bin/python"
    rev=$(git -C "$tree" rev-parse --short HEAD)
    if [[ "$benched" != *" $tree "* ]]; then
      bench=$(cd "$tmp" && OMP_NUM_THREADS=1 "$tree/.venv/bin/hil" bench --seconds 4 --json 2>/dev/null | tail -1)
      echo "{\"round\": $round, \"tree\": \"$rev\", \"load\": $(cut -d' ' -f1 /proc/loadavg), \"bench\": $bench}"
      benched="$benched$tree "
    fi
    # shellcheck disable=SC2086 # the overrides are split on commas on purpose
    cost=$(cd "$tmp" && OMP_NUM_THREADS=1 "$py" "$here/benchmarks/trial_cost.py" ${sets//,/ } 2>/dev/null)
    echo "{\"round\": $round, \"tree\": \"$rev\", \"set\": \"$sets\", \"trial_cost\": $cost}"
  done
done
