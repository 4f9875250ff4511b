#!/usr/bin/env bash
# Sets up whatever is missing, then runs every test of the workspace,
# including the shared crate built for the browser (wasm32).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLUKEID_SKIP_RELEASE_BUILD=1 "$here/setup.sh"
source "$here/env.sh"
cd "$here/.."

echo "test: shared crate for wasm32-unknown-unknown"
cargo build --quiet -p flukeid-shared --target wasm32-unknown-unknown

echo "test: cargo test --workspace"
cargo test --workspace "$@"
