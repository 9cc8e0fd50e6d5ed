#!/usr/bin/env bash
# Installs build dependencies and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo test --workspace --locked "$@"
