#!/bin/sh
# Builds the Worker (release) with pinned local tools; worker-build must not download anything.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh
# The test command builds once, then starts wrangler dev (which runs this again) without rebuilding.
if [ "${GATEHOUSE_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then exit 0; fi
ensure_rust_tools
export WASM_BINDGEN_BIN="$CARGO_HOME_BIN/wasm-bindgen"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
if [ -n "${GATEHOUSE_FEATURES:-}" ]; then
  "$CARGO_HOME_BIN/worker-build" --release --features "$GATEHOUSE_FEATURES"
else
  "$CARGO_HOME_BIN/worker-build" --release
fi
wasm=$(ls build/*.wasm build/worker/*.wasm 2>/dev/null | head -n1 || true)
if [ -n "$wasm" ]; then
  raw=$(wc -c < "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  echo "gatehouse wasm size: raw ${raw} bytes ($(( raw / 1024 )) KiB), gzip ${gz} bytes ($(( gz / 1024 )) KiB)"
fi
