#!/usr/bin/env bash
# Builds the web app (frontend/) into static/, which `flukeid serve
# --static-dir static` serves at `/`.
#
# Installs what is missing first, all under $FLUKEID_CACHE/tools: Trunk,
# wasm-bindgen-cli at the version the front end pins, and wasm-opt from
# npm's binaryen (Debian's binaryen makes modules that fail in the
# browser). Tool installs use a CARGO_HOME of their own, so they never wait
# on, or hold, the cargo lock of a build in progress; the web build has a
# target folder of its own for the same reason. Running it again installs
# nothing and rebuilds only what changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"

TRUNK_VERSION=0.21.14
# Must match `wasm-bindgen = "=..."` in frontend/Cargo.toml and Trunk.toml.
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132

tools="$FLUKEID_CACHE/tools"
tool_cargo_home="$FLUKEID_CACHE/tool-cargo-home"
mkdir -p "$tools"

has_version() { # command, expected text in its --version
    "$1" --version 2>/dev/null | grep -q -- "$2"
}

if ! has_version "$tools/bin/trunk" "$TRUNK_VERSION"; then
    echo "build-frontend: installing trunk $TRUNK_VERSION (about 12 minutes)"
    CARGO_HOME="$tool_cargo_home" cargo install --locked trunk \
        --version "$TRUNK_VERSION" --root "$tools"
fi

if ! has_version "$tools/bin/wasm-bindgen" "$WASM_BINDGEN_VERSION"; then
    echo "build-frontend: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    # Not --locked: its lockfile names a crate version the registry lacks.
    CARGO_HOME="$tool_cargo_home" cargo install wasm-bindgen-cli \
        --version "$WASM_BINDGEN_VERSION" --root "$tools"
fi

wasm_opt="$tools/npm/node_modules/.bin/wasm-opt"
if ! has_version "$wasm_opt" "version_$BINARYEN_VERSION"; then
    if ! command -v npm >/dev/null; then
        echo "build-frontend: installing npm"
        apt-get update -qq && apt-get install -y -qq npm
    fi
    echo "build-frontend: installing binaryen $BINARYEN_VERSION (wasm-opt)"
    npm install --silent --prefix "$tools/npm" "binaryen@$BINARYEN_VERSION"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

export PATH="$tools/bin:$tools/npm/node_modules/.bin:$PATH"
export CARGO_TARGET_DIR="$FLUKEID_CACHE/target-web"
cd "$here/.."
echo "build-frontend: trunk build --release into static/"
trunk build --release --skip-version-check

wasm="$(ls static/*.wasm)"
echo "build-frontend: $wasm is $(stat -c %s "$wasm") bytes after wasm-opt," \
    "$(gzip -9 -c "$wasm" | wc -c) gzipped"
