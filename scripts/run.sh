#!/usr/bin/env bash
# Sets up whatever is missing (the web app included), makes the synthetic
# demo data set if there is no data, and starts the flukeid server on
# 127.0.0.1:8080 with the web app, printing the address and the admin token. Set FLUKEID_DATA to serve a Kaggle-layout
# data set of your own, FLUKEID_ADDR to listen elsewhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
"$here/build-frontend.sh"
source "$here/env.sh"
flukeid="$CARGO_TARGET_DIR/release/flukeid"

data="${FLUKEID_DATA:-$FLUKEID_CACHE/demo-data}"
if [ ! -f "$data/train.csv" ]; then
    "$flukeid" synth --out "$data" --individuals 40 --seed 1
fi

exec "$flukeid" serve --data "$data" --addr "${FLUKEID_ADDR:-127.0.0.1:8080}" \
    --static-dir "$here/../static"
