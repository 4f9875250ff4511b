#!/usr/bin/env bash
# Sets up whatever is missing, then runs every test of the workspace: the
# shared crate also built for the browser (wasm32), and the web app, built
# into static/, driven in headless Chromium (Debian's chromium and
# chromium-driver, installed here when missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLUKEID_SKIP_RELEASE_BUILD=1 "$here/setup.sh"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "test: installing Debian's chromium and chromium-driver"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
"$here/build-frontend.sh"

source "$here/env.sh"
cd "$here/.."

echo "test: shared crate for wasm32-unknown-unknown"
cargo build --quiet -p flukeid-shared --target wasm32-unknown-unknown

echo "test: cargo test --workspace"
cargo test --workspace "$@"
