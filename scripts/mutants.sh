#!/bin/sh
# Mutation testing of the security-critical modules listed in .cargo/mutants.toml.
#   sh scripts/mutants.sh            every mutant of those modules (about an hour on 2 cores)
#   sh scripts/mutants.sh --changed  only mutants on lines changed since GATEHOUSE_MUTANTS_BASE
#                                    (default: where HEAD left origin/main, or HEAD~1 when HEAD is
#                                    on main, as in CI's clean clone), at most GATEHOUSE_MUTANTS_MAX
#                                    of them (default 40); the test command runs this so a new
#                                    check comes with the test that kills it.
# Extra arguments go to cargo mutants. A missed mutant fails the run: write the test that kills
# it, or list it in .cargo/mutants.toml with the reason it is equivalent.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib/env.sh
ensure_cargo_mutants

out=target/mutants-out
export CARGO_TARGET_DIR="${GATEHOUSE_MUTANTS_TARGET_DIR:-$PWD/target/mutants}"
jobs="${GATEHOUSE_MUTANTS_JOBS:-1}"
timeout="${GATEHOUSE_MUTANTS_TIMEOUT:-120}"

mode=all
if [ "${1:-}" = "--changed" ]; then
  mode=changed
  shift
fi
# The root package is the Worker adapter; the mutated modules and their tests are in the core.
set -- --package gatehouse-core "$@"

if [ "$mode" = changed ]; then
  base="${GATEHOUSE_MUTANTS_BASE:-}"
  if [ -z "$base" ]; then
    if git rev-parse -q --verify origin/main >/dev/null; then
      base=$(git merge-base HEAD origin/main)
    fi
    if [ -z "$base" ] || [ "$base" = "$(git rev-parse HEAD)" ]; then
      base=$(git rev-parse -q --verify HEAD~1 || git rev-parse HEAD)
    fi
  fi
  mkdir -p target
  git diff "$base" -- crates/core/src > target/mutants.diff
  if [ ! -s target/mutants.diff ]; then
    log "mutants: no change to crates/core/src since $base"
    exit 0
  fi
  count=$(cargo mutants --list --in-diff target/mutants.diff "$@" | wc -l)
  max="${GATEHOUSE_MUTANTS_MAX:-40}"
  log "mutants: $count on lines changed since $base (at most $max run)"
  if [ "$count" -eq 0 ]; then exit 0; fi
  shard_args=""
  if [ "$count" -gt "$max" ]; then
    # A deterministic sample: one shard of the changed mutants, sized to fit the budget.
    shards=$(( (count + max - 1) / max ))
    shard_args="--shard 0/$shards"
  fi
  # A few dozen mutants: plain `cargo test` costs less than installing nextest in a fresh CI.
  # shellcheck disable=SC2086
  cargo mutants --in-diff target/mutants.diff --test-tool cargo --jobs "$jobs" --timeout "$timeout" \
    --output "$out" $shard_args "$@"
else
  ensure_cargo_nextest
  cargo mutants --jobs "$jobs" --timeout "$timeout" --output "$out" "$@"
fi
