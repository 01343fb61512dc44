#!/bin/sh
# Builds the password-strength Worker (workers/strength, release) with the same pinned local tools
# as scripts/build-worker.sh; worker-build must not download anything. Output:
# workers/strength/build/worker/shim.mjs, which workers/strength/wrangler.toml runs.
# Its own target directory (GATEHOUSE_STRENGTH_TARGET_DIR, default workers/strength/target), so it
# never waits on the main build's target lock, whatever CARGO_TARGET_DIR says.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh
root=$PWD
# Like the main script: a test run builds once, then wrangler dev (which runs this again) doesn't.
if [ "${GATEHOUSE_SKIP_BUILD:-}" = 1 ] && [ -f workers/strength/build/worker/shim.mjs ]; then exit 0; fi
ensure_rust_tools
export WASM_BINDGEN_BIN="$CARGO_HOME_BIN/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
export CARGO_TARGET_DIR="${GATEHOUSE_STRENGTH_TARGET_DIR:-$root/workers/strength/target}"
cd workers/strength
"$CARGO_HOME_BIN/worker-build" --release
wasm=$(ls build/*.wasm build/worker/*.wasm 2>/dev/null | head -n1 || true)
if [ -n "$wasm" ]; then
  raw=$(wc -c < "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  echo "gatehouse-strength wasm size: raw ${raw} bytes ($(( raw / 1024 )) KiB), gzip ${gz} bytes ($(( gz / 1024 )) KiB)"
fi
