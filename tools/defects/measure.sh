#!/usr/bin/env bash
# Measure the harness against defects it was never shown.
#
#   tools/defects/measure.sh [--seeds A..B] PATCH...
#
# Each PATCH is a unified diff (`git diff` output) that plants one realistic
# defect in the services (crates/store, crates/export). For each patch, in a
# scratch worktree of HEAD (your working tree is never touched), the patch
# is applied, the CLI is built in release, and every shipped scenario runs
# on the seeds (default 0..5). A defect is *caught* when some scenario
# fails; the first failing scenario and seed are reported. The correct
# build (no patch) runs first as the control: it must pass, or every
# "catch" would be a false alarm.
#
# Results: one line per patch on stdout and in target/defects/results.txt.
# The build directory target/defects/build is shared between patches, so
# only the patched crates rebuild.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
seeds="0..5"
if [ "${1:-}" = "--seeds" ]; then seeds="$2"; shift 2; fi
[ "$#" -ge 1 ] || { echo "usage: $0 [--seeds A..B] PATCH..." >&2; exit 2; }
for patch in "$@"; do
  [ -f "$patch" ] || { echo "no such patch: $patch" >&2; exit 2; }
done
out="$repo/target/defects"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/crosstalk-defects.XXXXXX")"
trap 'git -C "$repo" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --quiet --detach "$work/tree" HEAD
export CARGO_TARGET_DIR="$out/build"
results="$out/results.txt"
: > "$results"

# Runs every shipped scenario (the directory, as CI runs it) seed by seed;
# prints "pass" or "caught on seed S: <scenario>: <first violation invariant>".
judge() {
  local bin="$CARGO_TARGET_DIR/release/crosstalk"
  local from="${seeds%..*}" to="${seeds#*..}"
  for ((seed = from; seed < to; seed++)); do
    local status=0
    (cd "$work" && "$bin" run "$work/tree/scenarios" --seeds "$seed" --quiet) > "$work/last.log" 2>&1 || status=$?
    case "$status" in
      0) ;;
      1)
        # The first failing scenario and the invariant of its first
        # violation, both read from that scenario's own block of the report.
        local block scenario invariant
        block="$(awk '/^FAIL seed/ { n++ } n == 1' "$work/last.log")"
        if [ -z "$block" ]; then
          # No scenario failed by a violation: the run failed as a whole
          # (a control that never fired, say).
          echo "caught on seed $seed: the run failed with no failing scenario: $(tail -1 "$work/last.log")" | cut -c1-200
          return
        fi
        scenario="$(printf '%s\n' "$block" | head -1 | sed 's/.*\[\(.*\)\].*/\1/')"
        invariant="$(printf '%s\n' "$block" | grep -m1 'violation 1:' | sed 's/.*violation 1: //')"
        [ -n "$invariant" ] || invariant="$(printf '%s\n' "$block" | grep -m1 'infrastructure error' | sed 's/^ *//')"
        echo "caught on seed $seed: $scenario: ${invariant:-see the run output}" | cut -c1-200
        return ;;
      *) echo "harness error (exit $status) on seed $seed: $(tail -1 "$work/last.log" | cut -c1-200)"; return ;;
    esac
  done
  echo "pass"
}

build() { (cd "$work/tree" && cargo build --release --quiet -p crosstalk-sim --bin crosstalk); }

build
control="$(judge)"
echo "control (no defect): $control" | tee -a "$results"
[ "$control" = "pass" ] || { echo "the correct build does not pass: fix that first" >&2; exit 1; }
caught=0
for patch in "$@"; do
  git -C "$work/tree" checkout --quiet -- .
  if ! git -C "$work/tree" apply "$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")"; then
    echo "$(basename "$patch"): does not apply" | tee -a "$results"
    continue
  fi
  if ! build; then
    echo "$(basename "$patch"): does not build" | tee -a "$results"
    continue
  fi
  verdict="$(judge)"
  [ "$verdict" = "pass" ] && verdict="MISSED (every scenario passes on seeds $seeds)" || caught=$((caught + 1))
  echo "$(basename "$patch"): $verdict" | tee -a "$results"
done
git -C "$work/tree" checkout --quiet -- .
echo "caught $caught of $# defects (seeds $seeds)" | tee -a "$results"
