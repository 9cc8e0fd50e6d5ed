# Shared by the check-*.sh scripts (sourced, not run). After `checks_begin NAME LABEL`:
#   step TEXT   prints "== NAME: TEXT";
#   ok TEXT     counts a passed check and prints "ok: TEXT";
#   fail TEXT   prints "NAME: FAILED: TEXT" and "LABEL: N passed, 1 failed", exits 1;
#   checks_end  prints "LABEL: N passed, 0 failed";
#   $scratch    a temp dir, and $pids background processes: both cleaned up on exit.
# shellcheck shell=bash

checks_begin() {
  checks_name=$1
  checks_label=$2
  passed=0
  pids=()
  scratch=$(mktemp -d)
  trap checks_cleanup EXIT
}

checks_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$scratch"
}

step() { echo "== $checks_name: $*"; }

ok() {
  passed=$((passed + 1))
  echo "ok: $*"
}

fail() {
  echo "$checks_name: FAILED: $*" >&2
  echo "$checks_label: $passed passed, 1 failed"
  exit 1
}

checks_end() { echo "$checks_label: $passed passed, 0 failed"; }
