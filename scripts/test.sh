#!/bin/sh
# Runs every test: formatting and lints (native and wasm32), native cargo tests, wasm-bindgen
# tests in headless Chromium and Firefox, the release build (prints the wasm size), and the end-to-end suite
# against a real `wrangler dev`. Installs what is missing first.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh

ensure_rust_tools
ensure_node_modules
ensure_chromium
ensure_firefox

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (native)"
cargo clippy --workspace --all-targets --features gatehouse-core/testing -- -D warnings
log "cargo clippy (wasm32)"
cargo clippy -p gatehouse --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p gatehouse --target wasm32-unknown-unknown --tests --features wasm-tests -- -D warnings

log "layer 1: native cargo test"
cargo test --workspace

log "the password-strength Worker (workers/strength: its own workspace): fmt, clippy, tests"
(
  cd workers/strength
  export CARGO_TARGET_DIR="${GATEHOUSE_STRENGTH_TARGET_DIR:-$PWD/target}"
  cargo fmt -- --check
  cargo clippy --all-targets -- -D warnings
  cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
  cargo test
)

log "mutation testing of the lines the last change touched (scripts/mutants.sh --changed)"
sh scripts/mutants.sh --changed

log "layer 2: wasm-bindgen-test in headless Chromium"
CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120 \
  cargo test -p gatehouse --target wasm32-unknown-unknown --features wasm-tests
log "layer 2: the same wasm tests in headless Firefox"
GECKODRIVER="$(command -v geckodriver)" WASM_BINDGEN_TEST_TIMEOUT=120 \
  cargo test -p gatehouse --target wasm32-unknown-unknown --features wasm-tests

log "release build"
sh scripts/build-worker.sh
sh scripts/build-strength-worker.sh

log "layer 3: end-to-end against wrangler dev"
GATEHOUSE_SKIP_BUILD=1 node --test --test-concurrency=1 --test-reporter=spec 'tests/e2e/*.test.mjs'

log "benchmark harness (--quick)"
node_modules/.bin/node bench/run.mjs --quick
