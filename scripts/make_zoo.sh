#!/usr/bin/env bash
# Train the zoo's detectors with the committed CPU recipe (configs/benchmark/<detector>_<strategy>.yaml, seed 0)
# and store them in the package (mgdet/zoo/detectors: neck + head in half precision, manifest, history.csv).
#
#   bash scripts/make_zoo.sh [OUT] [PARALLEL] [mgdet zoo --pack options...]
#   bash scripts/make_zoo.sh mgdet_runs/zoo 2 --overwrite      # rebuild the shipped zoo
#
# OUT (default mgdet_runs/zoo) holds the training runs: a resumable `mgdet reproduce` grid (rerun the same
# command to continue; finished runs are skipped). PARALLEL (default 2) runs train at once, one CPU thread each
# (scripts/parallel_grid.sh); on a 2-core CPU a pair of runs takes about 16-20 min. The detectors:
# RetinaNet-MobileNetV2 x {iou, mg, tal, atss} and FSSD-MobileNetV2 x {iou, mg}. MGDET (default .venv/bin/mgdet)
# is the command to run; the benchmark is generated into mgdet_data/benchmark if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-mgdet_runs/zoo}
PAR=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
export MGDET=${MGDET:-.venv/bin/mgdet}
$MGDET data generate --out mgdet_data/benchmark --workers 2 --no-progress > /dev/null  # a no-op when it is there
bash scripts/parallel_grid.sh "$OUT" "$PAR" retinanet_mbv2 iou,mg,tal,atss 0 --config-dir configs/benchmark \
    --results-name results_retinanet
bash scripts/parallel_grid.sh "$OUT" "$PAR" fssd_mbv2 iou,mg 0 --config-dir configs/benchmark --results-name results_fssd
runs=()
for r in retinanet_mbv2_{iou,mg,tal,atss}_s0 fssd_mbv2_{iou,mg}_s0; do runs+=("$OUT/runs/$r"); done
$MGDET zoo --pack "${runs[@]}" --no-progress "$@" \
    --command "bash scripts/make_zoo.sh $OUT $PAR (configs/benchmark/<detector>_<strategy>.yaml, seed 0; $PAR runs at once, one CPU thread each)"
