#!/usr/bin/env bash
# Installs the two .deb packages built by check-packaging.sh on this machine with apt, as
# an administrator would, and checks the result:
#   1. the packages install (dependencies resolved from Debian), with their users and
#      groups (sysusers.d), units, D-Bus files and conffiles in place;
#   2. the installed binaries work together as the services would run them: the relay as
#      the user phone-relay with the packaged config, the daemon as the user phoned (in the
#      group audio), which provisions a number and comes online; phonectl drives it;
#   3. `apt-get purge` removes them again (the system users stay, as on Debian).
# Changes the machine (packages, users), so it runs only as root and only when asked:
# `.ci/run` runs it on CI's fresh machine (CI=true); elsewhere pass --yes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--yes" ]; then
  echo "check-install: installs packages and users on this machine; run with --yes (or CI=true)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "check-install: needs root (apt-get install, running as the service users)" >&2
  exit 2
fi

debs=${CARGO_TARGET_DIR:-target}/debian
relay_deb=$(ls "$debs"/phone-relay_*.deb)
phoned_deb=$(ls "$debs"/phoned_*.deb)
# shellcheck source=scripts/checks.sh
. scripts/checks.sh
checks_begin check-install install

# --- 1. install ----------------------------------------------------------------------------
step "apt-get install $relay_deb $phoned_deb"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "./$relay_deb" "./$phoned_deb" >"$scratch/apt.log" 2>&1 ||
  { cat "$scratch/apt.log" >&2; fail "apt-get install"; }
for p in phone-relay phoned; do
  dpkg-query -W -f='${Status}' "$p" | grep -qx "install ok installed" || fail "$p is not installed"
done
ok "both packages installed"

getent passwd phone-relay >/dev/null || fail "no user phone-relay"
getent passwd phoned >/dev/null || fail "no user phoned"
getent group phone >/dev/null || fail "no group phone"
id -nG phoned | tr ' ' '\n' | grep -qx audio || fail "phoned is not in the group audio"
ok "users phone-relay and phoned, group phone, phoned in audio"

for f in /usr/bin/phone-relay /usr/bin/phoned /usr/bin/phonectl /usr/bin/phoned-ofono \
  /etc/phone-relay/phone-relay.toml /etc/phoned/phoned.toml \
  /lib/systemd/system/phone-relay.service /lib/systemd/system/phoned.service \
  /usr/lib/systemd/user/phoned.service /usr/lib/systemd/user/phoned-ofono.service \
  /usr/share/phoned/dbus-1/system.d/phoned-ofono.conf \
  /usr/share/dbus-1/system.d/org.phoned.Phone1.conf \
  /usr/share/dbus-1/services/org.phoned.Phone1.service; do
  [ -e "$f" ] || fail "$f is missing"
done
dpkg-query -W -f='${Conffiles}' phone-relay | grep -q /etc/phone-relay/phone-relay.toml ||
  fail "the relay config is not a conffile"
/usr/bin/phone-relay --version | grep -q "^phone-relay " || fail "phone-relay --version"
/usr/bin/phoned --version | grep -q "^phoned " || fail "phoned --version"
ok "binaries, units, D-Bus files and conffiles in place"

# --- 2. run the installed binaries as their users ---------------------------------------
step "relay and daemon as their service users"
chmod 0755 "$scratch"
# as USER CMD...: runs CMD as USER with USER's groups. exec, so that `as … &` leaves the
# command itself in $!, where cleanup can kill it.
as() {
  local user=$1
  shift
  exec setpriv --reuid "$user" --regid "$(id -g "$user")" --init-groups -- "$@"
}
install -d -o phone-relay -g phone-relay -m 0700 "$scratch/relay"
# As the unit runs it: the packaged config, the state dir from $STATE_DIRECTORY.
STATE_DIRECTORY=$scratch/relay as phone-relay /usr/bin/phone-relay serve \
  --config /etc/phone-relay/phone-relay.toml --listen 127.0.0.1:0 \
  >"$scratch/relay.out" 2>"$scratch/relay.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^fingerprint ' "$scratch/relay.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$scratch/relay.out")
fingerprint=$(sed -n 's/^fingerprint //p' "$scratch/relay.out")
[ -n "$fingerprint" ] || { cat "$scratch/relay.log" >&2; fail "the installed relay did not start"; }
[ "$(stat -c %U "$scratch/relay/relay-key.der")" = phone-relay ] ||
  fail "the relay's key is not owned by phone-relay"
ok "the installed relay serves on $addr as phone-relay"

install -d -o phoned -g phoned -m 0700 "$scratch/phoned" "$scratch/bus"
printf 'relay = "%s"\nrelay_fingerprint = "%s"\ndisplay_name = "Installed"\n[audio]\nbackend = "null"\n' \
  "$addr" "$fingerprint" >"$scratch/phoned.toml"
chmod 0644 "$scratch/phoned.toml"
bus="unix:path=$scratch/bus/socket"
as phoned dbus-daemon --session --nofork --address="$bus" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  [ -S "$scratch/bus/socket" ] && break
  sleep 0.1
done
DBUS_SESSION_BUS_ADDRESS=$bus as phoned /usr/bin/phoned --config "$scratch/phoned.toml" \
  --state-dir "$scratch/phoned/state" >/dev/null 2>"$scratch/phoned.log" &
pids+=($!)
status=""
for _ in $(seq 100); do
  status=$( (DBUS_SESSION_BUS_ADDRESS=$bus as phoned /usr/bin/phonectl status) 2>/dev/null || true)
  case $status in online*) break ;; esac
  sleep 0.2
done
case $status in
  "online as "*" (Installed) via $addr") ;;
  *)
    cat "$scratch/phoned.log" >&2
    fail "the installed phoned did not come online: $status"
    ;;
esac
[ "$(stat -c '%U %a' "$scratch/phoned/state/account.toml")" = "phoned 600" ] ||
  fail "account.toml is not phoned's alone"
ok "the installed phoned, as phoned, provisioned a number and is $status"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# --- 3. purge --------------------------------------------------------------------------------
step "apt-get purge"
apt-get purge -y -qq phone-relay phoned >"$scratch/apt.log" 2>&1 ||
  { cat "$scratch/apt.log" >&2; fail "apt-get purge"; }
for f in /usr/bin/phone-relay /usr/bin/phoned /usr/bin/phonectl /usr/bin/phoned-ofono \
  /etc/phone-relay /etc/phoned /usr/share/phoned \
  /lib/systemd/system/phone-relay.service /usr/share/dbus-1/system.d/org.phoned.Phone1.conf; do
  [ ! -e "$f" ] || fail "$f is still there after purge"
done
ok "purged: binaries, units, policy and /etc gone"

checks_end
