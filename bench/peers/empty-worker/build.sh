#!/bin/sh
# Builds the empty Worker in release mode with the same pinned tools as scripts/build-worker.sh.
set -eu
cd "$(dirname "$0")"
ROOT="$(cd ../../.. && pwd)"
CARGO_HOME_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export WASM_BINDGEN_BIN="$CARGO_HOME_BIN/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
export CARGO_TARGET_DIR="$PWD/target"
"$CARGO_HOME_BIN/worker-build" --release
