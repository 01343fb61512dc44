#!/bin/sh
# Runs the strength Worker in workerd (`wrangler dev`, 127.0.0.1, a free port), checks its answers
# with curl, times the first and later POST /score calls, and stops it. Builds first unless
# GATEHOUSE_SKIP_BUILD=1 finds a build. Run from anywhere: sh workers/strength/smoke.sh
set -eu
cd "$(dirname "$0")/../.."
. scripts/lib/env.sh
ensure_node_modules
sh scripts/build-strength-worker.sh

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
url="http://127.0.0.1:$port"
work=$(mktemp -d)
log="$work/wrangler.log"
pid=""
stop() {
  # wrangler and its workerd child share the process group started by setsid below.
  if [ -n "$pid" ]; then kill -TERM -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap stop EXIT
# A signal (or a closed stdout: `| head`) exits through the EXIT trap, so wrangler never outlives it.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

GATEHOUSE_SKIP_BUILD=1 setsid wrangler dev -c workers/strength/wrangler.toml --ip 127.0.0.1 --port "$port" \
  >"$log" 2>&1 </dev/null &
pid=$!
i=0
# Any answer means workerd is up; GET / is a 404 that does not touch zxcvbn.
until curl -s -o /dev/null "$url/" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 240 ] || ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "wrangler dev did not start" >&2; exit 1; fi
  sleep 0.5
done

fail=0
# check NAME EXPECTED_STATUS METHOD PATH BODY_FILE|- [GREP_PATTERN]
check() {
  if [ "$5" = - ]; then
    status=$(curl -s -o "$work/out" -w '%{http_code}' -X "$3" "$url$4")
  else
    status=$(curl -s -o "$work/out" -w '%{http_code}' -X "$3" -H 'content-type: application/json' \
      --data-binary "@$5" "$url$4")
  fi
  if [ "$status" != "$2" ]; then echo "FAIL $1: status $status, wanted $2: $(cat "$work/out")"; fail=1; return; fi
  if [ -n "${6:-}" ] && ! grep -q -- "$6" "$work/out"; then echo "FAIL $1: $(cat "$work/out")"; fail=1; return; fi
  if grep -q 'Sm0ke-Secret' "$work/out"; then echo "FAIL $1: the password came back"; fail=1; return; fi
  echo "ok   $1: $status $(cat "$work/out")"
}
timed() {
  curl -s -o /dev/null -w '%{time_total}' -X POST -H 'content-type: application/json' --data-binary "@$1" "$url/score"
}

printf '{"password":"Sm0ke-Secret-glacier-mosaic-87","user_inputs":["alice","alice@example.com"]}' > "$work/strong"
printf '{"password":"password"}' > "$work/weak"
printf '{"password":"alice2024Sm0ke-Secret","user_inputs":["alice2024Sm0ke-Secret"]}' > "$work/own"
printf '{"password":"Sm0ke-Secret","username":"alice"}' > "$work/unknown"
printf '{"password":""}' > "$work/empty"
printf '{"password":["Sm0ke-Secret"]}' > "$work/wrongtype"
node -e 'process.stdout.write(JSON.stringify({password:"Sm0ke-Secret"})+" ".repeat(9000))' > "$work/big"

node -e 'process.stdout.write(JSON.stringify({password:"Sm0ke-Secret-"+"x9#Lq".repeat(202)}))' > "$work/long"

first=$(timed "$work/strong")
later=""
for _ in 1 2 3 4 5; do later="$later $(timed "$work/strong")"; done
long=""
for _ in 1 2 3; do long="$long $(timed "$work/long")"; done
base=""
for _ in 1 2 3; do base="$base $(curl -s -o /dev/null -w '%{time_total}' "$url/")"; done
echo "POST /score wall time (curl time_total, s): first $first, later$later"
echo "POST /score with a 1023-byte password (zxcvbn reads 100 characters):$long"
echo "GET / 404 (no zxcvbn; wrangler dev's own overhead):$base"

check "strong passphrase scores 4" 200 POST /score "$work/strong" '"score":4'
check "top password scores 0" 200 POST /score "$work/weak" '"score":0'
check "own username scores 0" 200 POST /score "$work/own" '"score":0'
check "unknown field" 400 POST /score "$work/unknown" 'unknown field'
check "empty password" 400 POST /score "$work/empty" 'password is empty'
check "wrong type" 400 POST /score "$work/wrongtype" 'wrong type'
check "body over 8 KiB" 413 POST /score "$work/big" '8192'
# Without Content-Length the Worker reads chunk by chunk and stops past 8 KiB.
chunked() {
  curl -s -o "$work/out" -w '%{http_code}' -X POST -H 'transfer-encoding: chunked' --data-binary "@$1" "$url/score"
}
status=$(chunked "$work/big")
if [ "$status" = 413 ]; then echo "ok   chunked body over 8 KiB: 413 $(cat "$work/out")"; else echo "FAIL chunked body over 8 KiB: $status"; fail=1; fi
status=$(chunked "$work/weak")
if [ "$status" = 200 ]; then echo "ok   chunked small body: 200"; else echo "FAIL chunked small body: $status"; fail=1; fi
check "GET /score" 405 GET /score - 'method not allowed'
check "other path" 404 POST /other "$work/weak" 'not found'

# zxcvbn takes its reference year from Date on first use; the start-up warm-up must not fix it
# while workerd's clock reads 1970. This year is then likelier than 60 years ago.
year=$(date -u +%Y)
printf '{"password":"pelican%s"}' "$year" > "$work/now"
printf '{"password":"pelican%s"}' "$((year - 60))" > "$work/old"
curl -s -X POST --data-binary "@$work/now" "$url/score" > "$work/now.out"
curl -s -X POST --data-binary "@$work/old" "$url/score" > "$work/old.out"
if node -e '
  const fs = require("fs");
  const g = (f) => JSON.parse(fs.readFileSync(f, "utf8")).guesses_log10;
  process.exit(g(process.argv[1]) < g(process.argv[2]) ? 0 : 1);' "$work/now.out" "$work/old.out"; then
  echo "ok   reference year is this year: $(cat "$work/now.out") < $(cat "$work/old.out")"
else
  echo "FAIL reference year is not this year: $(cat "$work/now.out") vs $(cat "$work/old.out")"; fail=1
fi

if grep -q 'Sm0ke-Secret' "$log"; then echo "FAIL the password appears in wrangler's log"; fail=1; fi
if [ "$fail" != 0 ]; then exit 1; fi
echo "smoke: all checks passed"
