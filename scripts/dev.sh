#!/bin/sh
# Starts Gatehouse locally: installs what is missing, applies D1 migrations to the local state,
# runs `wrangler dev` on 127.0.0.1:8787, seeds a demo client and user, and prints how to log in.
# A second run reuses the build, node_modules, .dev.vars and the local database.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh
PORT="${GATEHOUSE_PORT:-8787}"

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
trap 'kill $WRANGLER_PID 2>/dev/null || true' INT TERM EXIT

i=0
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 $WRANGLER_PID 2>/dev/null; then
    log "wrangler dev did not come up"; exit 1
  fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/healthz"; echo
if [ -f scripts/seed-demo.mjs ]; then
  node scripts/seed-demo.mjs "http://127.0.0.1:$PORT"
fi
log "mail is not sent in local development: read it at http://127.0.0.1:$PORT/dev/outbox"
log "Gatehouse is running on http://127.0.0.1:$PORT (Ctrl-C stops it)"
wait $WRANGLER_PID
