#!/bin/sh
# Starts Gatehouse locally: installs what is missing, applies D1 migrations to the local state,
# runs `wrangler dev` on 127.0.0.1:8787, seeds a demo user and the demo app's client, starts the
# demo app (a relying party, scripts/demo-rp.mjs) on 127.0.0.1:8788, and prints its URL.
# A second run reuses the build, node_modules, .dev.vars and the local database.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh
PORT="${GATEHOUSE_PORT:-8787}"
DEMO_PORT="${GATEHOUSE_DEMO_PORT:-8788}"

ensure_rust_tools
ensure_node_modules
ensure_dev_vars

log "applying D1 migrations (local)"
wrangler d1 migrations apply DB --local

log "starting wrangler dev on http://127.0.0.1:$PORT"
# Local development may have no internet: a new password is checked against Pwned Passwords when
# the API answers, and accepted unchecked (with a warning in the log) when it does not. The
# password-strength Worker (zxcvbn, workers/strength) runs in the same wrangler dev, behind the
# STRENGTH service binding.
wrangler dev -c wrangler.toml -c workers/strength/wrangler.toml \
  --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false \
  --var GATEHOUSE_HIBP_UNREACHABLE:allow &
WRANGLER_PID=$!
DEMO_PID=""
trap 'kill $WRANGLER_PID $DEMO_PID 2>/dev/null || true' INT TERM EXIT

i=0
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 $WRANGLER_PID 2>/dev/null; then
    log "wrangler dev did not come up"; exit 1
  fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/healthz"; echo
node scripts/seed-demo.mjs "http://127.0.0.1:$PORT" "$DEMO_PORT"
node scripts/demo-rp.mjs "http://127.0.0.1:$PORT" "$DEMO_PORT" &
DEMO_PID=$!
log "mail is not sent in local development: read it at http://127.0.0.1:$PORT/dev/outbox"
log "Gatehouse is running on http://127.0.0.1:$PORT (Ctrl-C stops it)"
log "the demo: open http://127.0.0.1:$DEMO_PORT/ and sign in as demo / demo-password-change-me"
wait $WRANGLER_PID
