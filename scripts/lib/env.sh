# Shared set-up for the scripts: installs what is missing, skips what is there.
# Pinned versions (see ../shared/TOOLCHAIN.md for why each is pinned).
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
CARGO_HOME_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$PWD/node_modules/.bin:$CARGO_HOME_BIN:$PATH"
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false

log() { printf '==> %s\n' "$*" >&2; }

ensure_rust_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding rustup target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  if ! "$CARGO_HOME_BIN/worker-build" --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
    log "installing worker-build $WORKER_BUILD_VERSION"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
  fi
  if ! "$CARGO_HOME_BIN/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    # Without --locked: its lock file pins a dependency newer than the registry offers.
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_node_modules() {
  if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing Debian chromium and chromium-driver"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
  fi
}

# Firefox for the wasm tests: Debian's firefox-esr, and geckodriver from the crate registry
# (Mozilla's release binaries are outside the registries). Playwright cannot drive Debian's
# Firefox, so the e2e pages stay on Chromium.
GECKODRIVER_VERSION=0.37.1
ensure_firefox() {
  if [ ! -x /usr/bin/firefox-esr ]; then
    log "installing Debian firefox-esr"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y firefox-esr
  fi
  if ! geckodriver --version 2>/dev/null | grep -q "geckodriver $GECKODRIVER_VERSION"; then
    log "installing geckodriver $GECKODRIVER_VERSION"
    cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked
  fi
}

# Writes .dev.vars with fresh random secrets and signing keys unless it exists.
ensure_dev_vars() {
  if [ -f .dev.vars ] && ! grep -q '^GATEHOUSE_SEALING_KEY=' .dev.vars; then
    log "adding GATEHOUSE_SEALING_KEY to .dev.vars (it seals TOTP seeds)"
    node -e 'process.stdout.write(`GATEHOUSE_SEALING_KEY="${require("crypto").randomBytes(32).toString("base64url")}"\n`)' >> .dev.vars
  fi
  if [ -f .dev.vars ]; then return; fi
  log "generating .dev.vars (fresh random secrets, RSA-2048 and P-256 signing keys)"
  node scripts/gen-dev-vars.mjs > .dev.vars.tmp
  mv .dev.vars.tmp .dev.vars
  chmod 600 .dev.vars
}

CARGO_MUTANTS_VERSION=27.1.0
ensure_cargo_mutants() {
  if ! cargo mutants --version 2>/dev/null | grep -q "$CARGO_MUTANTS_VERSION"; then
    log "installing cargo-mutants $CARGO_MUTANTS_VERSION"
    cargo install cargo-mutants --version "$CARGO_MUTANTS_VERSION" --locked
  fi
}
CARGO_NEXTEST_VERSION=0.9.114
ensure_cargo_nextest() {
  if ! cargo nextest --version 2>/dev/null | grep -q "$CARGO_NEXTEST_VERSION"; then
    log "installing cargo-nextest $CARGO_NEXTEST_VERSION"
    cargo install cargo-nextest --version "$CARGO_NEXTEST_VERSION" --locked
  fi
}
