#!/usr/bin/env bash
# Installs build dependencies, builds release binaries and runs the relay with the
# default config, its state in ./state/relay. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -p phone-relay
mkdir -p state/relay
exec ./target/release/phone-relay serve --config config/phone-relay.toml --state-dir state/relay "$@"
