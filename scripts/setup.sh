#!/usr/bin/env bash
# Installs whatever is missing for flukeid and builds it. Idempotent: a
# second run only checks. Safe to run on a fresh Debian machine with Rust and
# Python 3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
mkdir -p "$FLUKEID_CACHE" "$FLUKEID_WEIGHTS"

stamp="$FLUKEID_CACHE/venv.stamp"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "setup: creating the Python environment in $FLUKEID_VENV (PyTorch, ~5 GB)"
    python3 -m venv "$FLUKEID_VENV"
    "$FLUKEID_VENV/bin/pip" install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

lite0="$FLUKEID_WEIGHTS/efficientnet_lite0.safetensors"
if [ ! -s "$lite0" ]; then
    echo "setup: converting the EfficientNet-Lite0 ImageNet weights"
    "$FLUKEID_VENV/bin/python" "$here/convert_weights.py" lite0 --out "$lite0"
fi

if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    rustup target add wasm32-unknown-unknown
fi

if [ -z "${FLUKEID_SKIP_RELEASE_BUILD:-}" ]; then
    echo "setup: building flukeid (the first build takes several minutes)"
    cargo build --release --quiet -p flukeid --manifest-path "$here/../Cargo.toml"
fi
