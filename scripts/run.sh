#!/usr/bin/env bash
# Sets up whatever is missing, makes the synthetic demo data set if there is
# no data, and runs flukeid's main job on it. Set FLUKEID_DATA to use a
# Kaggle-layout data set of your own.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
source "$here/env.sh"
flukeid="$CARGO_TARGET_DIR/release/flukeid"

data="${FLUKEID_DATA:-$FLUKEID_CACHE/demo-data}"
if [ ! -f "$data/train.csv" ]; then
    "$flukeid" synth --out "$data" --individuals 40 --seed 1
fi
out="${FLUKEID_OUT:-$FLUKEID_CACHE/demo-out}"
"$flukeid" crop --data "$data" --out "$out/crops" --augment 2
