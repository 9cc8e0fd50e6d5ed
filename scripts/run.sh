#!/usr/bin/env bash
# Installs build dependencies, builds the release binaries, and runs a relay and a phone
# daemon with the default configs (config/phone-relay.toml, config/phoned.toml); state
# goes to ./state. The daemon uses your session bus, or a private bus when there is none;
# the bus's address is written to state/bus-address once the daemon is on it, and removed
# when run.sh stops. Ctrl-C stops both cleanly; if either stops on its own, run.sh says so
# and stops the rest. One run per checkout: a second one refuses while the first runs.
# Its functions run from a trap or through await, which shellcheck does not follow.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p state/relay state/phoned
# Held by this shell only (its children get `9>&-`), so it goes when run.sh does.
exec 9>state/run.lock
if ! flock -n 9; then
  pid=$(cat state/run.pid 2>/dev/null || echo '?')
  echo "run.sh: already running in $PWD (pid $pid); stop it with Ctrl-C in its terminal" \
    "or 'kill $pid', then run again" >&2
  exit 1
fi
echo $$ >state/run.pid
./scripts/deps.sh
cargo build --release --locked -p phone-relay -p phoned -p phonectl
bin=target/release
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Written only once phoned was up: the bus it names is gone or has no phoned now.
  if [ -n "${bus_written:-}" ]; then rm -f state/bus-address; fi
  rm -f state/run.pid
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Polls `cond` until it holds; fails naming `what` if process `pid` ended first.
await() {
  local pid=$1 what=$2
  shift 2
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: $what did not start (see above)" >&2; exit 1; }
    sleep 0.1
  done
}

: >state/relay.out # not the last run's lines
"$bin/phone-relay" serve --config config/phone-relay.toml --state-dir state/relay \
  >state/relay.out 9>&- &
relay=$!
pids+=("$relay")
await "$relay" "the relay (is its UDP port taken?)" grep -q '^fingerprint ' state/relay.out
cat state/relay.out

bus=
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  out=$(dbus-daemon --session --fork --print-address=1 --print-pid=1 9>&-)
  DBUS_SESSION_BUS_ADDRESS=$(echo "$out" | sed -n 1p)
  pids+=("$(echo "$out" | sed -n 2p)")
  export DBUS_SESSION_BUS_ADDRESS
  bus=" and its private D-Bus"
fi
"$bin/phoned" --config config/phoned.toml --state-dir state/phoned 9>&- &
phoned=$!
pids+=("$phoned")
# Ours, not another phoned already on this bus, must own the name.
owner() {
  dbus-send --bus="$DBUS_SESSION_BUS_ADDRESS" --print-reply=literal --dest=org.freedesktop.DBus \
    / org.freedesktop.DBus.GetConnectionUnixProcessID string:org.phoned.Phone1 2>/dev/null |
    grep -qw "$phoned"
}
await "$phoned" "phoned" owner
echo "$DBUS_SESSION_BUS_ADDRESS" >state/bus-address
bus_written=1
echo "phoned is on D-Bus at $DBUS_SESSION_BUS_ADDRESS; from another shell:"
echo "  DBUS_SESSION_BUS_ADDRESS=\$(cat state/bus-address) $bin/phonectl status"

wait -n "$relay" "$phoned" || true
if ! kill -0 "$relay" 2>/dev/null; then
  echo "run.sh: the relay stopped; stopping phoned$bus too" >&2
else
  echo "run.sh: phoned stopped; stopping the relay$bus too" >&2
fi
exit 1
