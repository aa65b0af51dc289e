#!/usr/bin/env bash
# Train the cells of an `mgdet reproduce` grid several at a time (e.g. many runs sharing one GPU), then write
# the results table of the whole grid. Each cell is an ordinary `mgdet reproduce` of one run (resumable; a
# finished cell is skipped), so the table is exactly what the sequential command would report.
#
#   scripts/parallel_grid.sh OUT PARALLEL DETECTORS STRATEGIES SEEDS [extra mgdet reproduce options...]
#   (SEEDS is a list of seeds, e.g. 0,1,2 or 0)
#   scripts/parallel_grid.sh runs/h200 16 retinanet_mbv2 iou,l2c,c2l,mg 0,1,2 --set train.amp=false
#
# Cell logs: OUT/logs/<detector>_<strategy>_s<seed>.log; results: OUT/results.{md,json,png}.
# MGDET (default: mgdet) is the command to run. Each cell gets one CPU thread (OMP_NUM_THREADS=1).
set -euo pipefail
if [ $# -lt 5 ]; then sed -n 2,11p "$0"; exit 2; fi
OUT=$1 PAR=$2 DETECTORS=$3 STRATEGIES=$4 SEEDS=$5
shift 5
MGDET=${MGDET:-mgdet}
mkdir -p "$OUT/logs"
# once, before the cells start: generate the dataset if it is missing and check the folder (trains nothing)
$MGDET reproduce --out "$OUT" --detectors "$DETECTORS" --strategies "$STRATEGIES" --seeds "${SEEDS%,}," \
    --report-only --no-progress "$@" > "$OUT/logs/setup.log"
# the distinct cells (repeats such as mg,mutual_guidance or 0,0 removed, with a note), in mgdet's own order
mapfile -t cells < <($MGDET reproduce --out "$OUT" --detectors "$DETECTORS" --strategies "$STRATEGIES" \
    --seeds "${SEEDS%,}," --list-cells "$@")
[ ${#cells[@]} -gt 0 ] || { echo "no cell to train" >&2; exit 2; }
export MGDET OUT OMP_NUM_THREADS=1
cell() {  # detector strategy seed [extra options]
  local d=$1 s=$2 k=$3
  shift 3
  if $MGDET reproduce --out "$OUT" --detectors "$d" --strategies "$s" --seeds "$k," --no-progress "$@" \
      --results-dir "$OUT/cells/${d}_${s}_s$k" > "$OUT/logs/${d}_${s}_s$k.log" 2>&1; then
    echo "done: ${d}_${s}_s$k"
  else
    echo "FAILED: ${d}_${s}_s$k (see $OUT/logs/${d}_${s}_s$k.log)"
  fi
}
export -f cell
printf '%s\n' "${cells[@]}" | xargs -P "$PAR" -I{} bash -c 'cell $1 "${@:2}"' _ {} "$@"
# the table of the whole grid (cells still unfinished are listed as not trained)
$MGDET reproduce --out "$OUT" --detectors "$DETECTORS" --strategies "$STRATEGIES" --seeds "${SEEDS%,}," \
    --report-only --no-progress "$@"
