#!/usr/bin/env bash
# Runs every cargo-fuzz target of proto/fuzz for a short, bounded time (FUZZ_SECONDS each,
# default 10) from the committed seeds, when a nightly toolchain and cargo-fuzz are
# installed; otherwise prints one line saying what is missing and succeeds. A crash fails
# the run and is kept in proto/fuzz/artifacts/<target>/ (see proto/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/../proto/fuzz"
seconds="${FUZZ_SECONDS:-10}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped, no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped, cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 0
fi
cargo +nightly fuzz build
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
for target in $(cargo +nightly fuzz list); do
  # A scratch copy of the seeds: what the fuzzer adds stays out of the tree.
  corpus="$logs/corpus-$target"
  mkdir -p "$corpus"
  cp corpus/"$target"/seed-* "$corpus"/ 2>/dev/null || true
  log="$logs/$target.log"
  if cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
    # libFuzzer's last line: "Done N runs in S second(s)".
    echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1), $(find "$corpus" -type f | wc -l) inputs, no crash"
  else
    echo "fuzz $target: FAILED; the end of its log:"
    tail -40 "$log"
    exit 1
  fi
done
