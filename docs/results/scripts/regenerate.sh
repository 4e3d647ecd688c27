#!/bin/bash
# Regenerate the figures and tables of docs/results from the run stores that hold the runs.
#   WS        store of noise_sweep-medium, clt_sweep-medium(-20k) (hil sweep ... --workspace WS)
#   FASHION   store and run id of the drn-1h-fashion training    (FASHION_WS, FASHION_RUN)
#   SCALING   store of onset_scaling-medium                      (SCALING_WS)
# Each `hil plot` prints its findings as it writes the files.
# Usage: WS=... FASHION_WS=... FASHION_RUN=... SCALING_WS=... docs/results/scripts/regenerate.sh [part ...]
# parts: noise clt fashion scaling projection (default: all; projection needs no store)
set -u
cd "$(dirname "$0")/../../.."
HIL=${HIL:-.venv/bin/hil}
PY=${PY:-.venv/bin/python}
R=docs/results
parts=${*:-noise clt fashion scaling projection}
for part in $parts; do
  case $part in
    noise)    # Fig. 3 of the paper's network, MNIST and Fashion-MNIST; onsets predicted from the lowest-sigma trials
      $HIL plot fig3 noise_sweep-medium --workspace "$WS" --out $R/noise_sweep-medium ;;
    clt)      # Fig. 4: sigma_max(N) at the sweep's 90 % target, then at 85 % (below this training's plateau)
      $HIL plot fig4 clt_sweep-medium --workspace "$WS" --out $R/clt_sweep-medium
      $HIL plot fig4 clt_sweep-medium --workspace "$WS" --target 0.85 --out $R/clt_sweep-medium/target-0.85
      # the same on 20,000 images: the noiseless plateau clears 90 %
      $HIL plot fig4 clt_sweep-medium-20k --workspace "$WS" --out $R/clt_sweep-medium-20k ;;
    fashion)  # per-epoch CSV and learning curve of the universal-DRN Fashion-MNIST run
      $PY $R/scripts/run_epochs.py "$FASHION_RUN" --workspace "$FASHION_WS" --out $R/drn-1h-fashion/epochs.csv
      $HIL runs show "$FASHION_RUN" --workspace "$FASHION_WS" --plot $R/drn-1h-fashion/curve.png | tail -3 ;;
    scaling)  # onset per (width, batch, epochs) with its prediction; ratios to the base curve in fig3.json
      $HIL plot fig3 onset_scaling-medium --workspace "$SCALING_WS" --out $R/onset_scaling-medium ;;
    projection)  # onset vs length and width from the fig3.json files above; the small CLT sweep re-analysed per N
      $HIL plot fig3 noise_sweep-small --trials $R/clt_sweep-small/fig4-trials.csv --workspace "${TMPDIR:-/tmp}/hil-re" \
        --out $R/onset_scaling/clt-small --title "clt_sweep-small per N (256 wide, 5k images)"
      $PY benchmarks/onset_scaling.py --out $R/onset_scaling ;;
    *) echo "unknown part $part (noise clt fashion scaling projection)"; exit 2 ;;
  esac
done
