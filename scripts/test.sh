#!/usr/bin/env bash
# Installs build dependencies and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
# The end-to-end tests run the workspace binaries: build them first so none is stale.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
