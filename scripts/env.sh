# Sourced by the other scripts: where flukeid keeps what it installs.
# Everything lives outside the checkout so that a second run is fast and a
# fresh clone reuses it.

FLUKEID_CACHE="${FLUKEID_CACHE:-$HOME/.cache/flukeid}"
FLUKEID_VENV="$FLUKEID_CACHE/venv"
export FLUKEID_CACHE
export FLUKEID_WEIGHTS="${FLUKEID_WEIGHTS:-$FLUKEID_CACHE/weights}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FLUKEID_CACHE/target}"

# tch builds and links against the libtorch inside the venv's PyTorch.
export LIBTORCH_USE_PYTORCH=1
export PATH="$FLUKEID_VENV/bin:$FLUKEID_CACHE/bin:$HOME/.cargo/bin:$PATH"
