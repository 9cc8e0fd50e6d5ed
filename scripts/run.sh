#!/usr/bin/env bash
# Installs build dependencies, builds the release binaries, and runs a relay and a phone
# daemon with the default configs (config/phone-relay.toml, config/phoned.toml); state
# goes to ./state. The daemon uses your session bus, or a private bus when there is none
# (its address is written to state/bus-address). Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --locked -p phone-relay -p phoned -p phonectl
mkdir -p state/relay state/phoned
bin=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/phone-relay" serve --config config/phone-relay.toml --state-dir state/relay &
pids+=($!)

if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  out=$(dbus-daemon --session --fork --print-address=1 --print-pid=1)
  DBUS_SESSION_BUS_ADDRESS=$(echo "$out" | sed -n 1p)
  pids+=("$(echo "$out" | sed -n 2p)")
  export DBUS_SESSION_BUS_ADDRESS
fi
echo "$DBUS_SESSION_BUS_ADDRESS" > state/bus-address
echo "phoned is on D-Bus at $DBUS_SESSION_BUS_ADDRESS; from another shell:"
echo "  DBUS_SESSION_BUS_ADDRESS=\$(cat state/bus-address) $bin/phonectl status"

"$bin/phoned" --config config/phoned.toml --state-dir state/phoned &
pids+=($!)
wait -n "${pids[@]:0:1}" "${pids[@]: -1}"
