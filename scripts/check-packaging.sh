#!/usr/bin/env bash
# Checks the systemd and D-Bus files in systemd/ and the two Debian packages:
#   1. builds the binaries (profile dist: LTO, one codegen unit, stripped), phonectl's
#      completions and man page, and both .debs
#      with cargo-deb (installed with `cargo install` when missing);
#   2. checks that each package holds what it should (dpkg-deb --contents, conffiles,
#      maintainer scripts, shared-library dependencies);
#   3. runs `systemd-analyze verify` on the units as packaged: the system units in a
#      scratch root made of this machine's units plus both packages unpacked, the user
#      unit on its own; any warning fails;
#   4. checks the D-Bus files: well-formed XML, a private system-style bus that includes
#      the policy starts, and a private session bus lists org.phoned.Phone1 as
#      activatable from the packaged activation file;
#   5. runs shellcheck on the scripts.
# Needs no running systemd and changes nothing outside target/ and a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
release=${CARGO_TARGET_DIR:-target}/dist
debs=${CARGO_TARGET_DIR:-target}/debian

# shellcheck source=scripts/checks.sh
. scripts/checks.sh
checks_begin check-packaging packaging

# --- tools -----------------------------------------------------------------------------
./scripts/deps.sh
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v dbus-daemon >/dev/null || need+=(dbus)
command -v dbus-send >/dev/null || need+=(dbus-bin)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
  step "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

# --- 1. build ----------------------------------------------------------------------------
step "building the binaries (profile dist) and both packages"
cargo build --profile dist --locked -p phone-relay -p phoned -p phonectl -p phoned-ofono
PROFILE=dist ./scripts/gen-assets.sh
rm -f "$debs"/phone-relay_*.deb "$debs"/phoned_*.deb
# --profile dist: cargo-deb takes the target/release/ paths of the assets from target/dist/.
cargo deb -p phone-relay --profile dist --no-build
# The warning about no units found by name is expected: see daemon/Cargo.toml.
cargo deb -p phoned --profile dist --no-build
relay_debs=("$debs"/phone-relay_*.deb)
phoned_debs=("$debs"/phoned_*.deb)
[ ${#relay_debs[@]} -eq 1 ] || fail "expected one phone-relay .deb in $debs"
[ ${#phoned_debs[@]} -eq 1 ] || fail "expected one phoned .deb in $debs"
relay_deb=${relay_debs[0]}
phoned_deb=${phoned_debs[0]}
[ -f "$relay_deb" ] || fail "cargo deb made no phone-relay .deb in $debs"
[ -f "$phoned_deb" ] || fail "cargo deb made no phoned .deb in $debs"

# --- 2. contents -------------------------------------------------------------------------
# has_paths DEB PATH...: every PATH is a file in DEB.
has_paths() {
  local deb=$1 listing
  shift
  listing=$(dpkg-deb --contents "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
  for p in "$@"; do
    grep -qxF "$p" <<<"$listing" || fail "$(basename "$deb") lacks $p"
  done
}
# control_has DEB FILE PATTERN: control file FILE (control, conffiles, postinst, …) of DEB
# has a line matching the extended regex PATTERN.
control_file() { dpkg-deb --ctrl-tarfile "$1" | tar -xO "./$2"; }
control_has() {
  local text
  text=$(control_file "$1" "$2") || fail "$(basename "$1") has no control file $2"
  grep -qE "$3" <<<"$text" || fail "$(basename "$1"): $2 has no line matching '$3'"
}

step "contents of $(basename "$relay_deb")"
dpkg-deb --contents "$relay_deb"
has_paths "$relay_deb" \
  /usr/bin/phone-relay \
  /etc/phone-relay/phone-relay.toml \
  /usr/lib/systemd/system/phone-relay.service \
  /usr/lib/sysusers.d/phone-relay.conf \
  /usr/share/man/man8/phone-relay.8.gz \
  /usr/share/doc/phone-relay/copyright \
  /usr/share/doc/phone-relay/operations.md
control_has "$relay_deb" conffiles '^/etc/phone-relay/phone-relay\.toml$'
control_has "$relay_deb" control '^Depends: .*libc6'
control_has "$relay_deb" postinst 'systemd-sysusers .*phone-relay\.conf'
control_has "$relay_deb" postinst 'deb-systemd-helper enable phone-relay\.service'
control_has "$relay_deb" prerm 'deb-systemd-invoke stop phone-relay\.service'
ok "$(basename "$relay_deb"): files, conffiles, dependencies, maintainer scripts"

step "contents of $(basename "$phoned_deb")"
dpkg-deb --contents "$phoned_deb"
has_paths "$phoned_deb" \
  /usr/bin/phoned \
  /usr/bin/phonectl \
  /usr/bin/phoned-ofono \
  /etc/phoned/phoned.toml \
  /usr/lib/systemd/user/phoned.service \
  /usr/lib/systemd/system/phoned.service \
  /usr/lib/systemd/user/phoned-ofono.service \
  /usr/share/phoned/dbus-1/system.d/phoned-ofono.conf \
  /usr/share/dbus-1/services/org.phoned.Phone1.service \
  /usr/share/dbus-1/system.d/org.phoned.Phone1.conf \
  /usr/share/dbus-1/interfaces/org.phoned.Phone1.xml \
  /usr/lib/sysusers.d/phoned.conf \
  /usr/share/bash-completion/completions/phonectl \
  /usr/share/zsh/vendor-completions/_phonectl \
  /usr/share/fish/vendor_completions.d/phonectl.fish \
  /usr/share/man/man1/phonectl.1.gz \
  /usr/share/man/man1/phonectl-dial.1.gz \
  /usr/share/man/man1/phonectl-msg-send.1.gz \
  /usr/share/man/man8/phoned.8.gz \
  /usr/share/doc/phoned/copyright \
  /usr/share/doc/phoned/operations.md
control_has "$phoned_deb" conffiles '^/etc/phoned/phoned\.toml$'
control_has "$phoned_deb" control '^Depends: .*libasound2.*libopus0'
# libpulse is dlopened by the pulse backend, never linked: a Recommends, not a Depends
# (a Raspberry Pi without a sound server runs without it).
control_has "$phoned_deb" control '^Recommends: .*libpulse0'
if grep -qE '^Depends: .*libpulse' <<<"$(control_file "$phoned_deb" control)"; then
  fail "$(basename "$phoned_deb"): Depends on libpulse, which phoned only loads at run time"
fi
control_has "$phoned_deb" postinst 'systemd-sysusers .*phoned\.conf'
# The system unit is not enabled on install (the relay must be configured first) …
control_has "$phoned_deb" postinst 'was-enabled phoned\.service'
if grep -qE '^\s*deb-systemd-invoke (start|restart) ' <<<"$(control_file "$phoned_deb" postinst)"; then
  fail "$(basename "$phoned_deb"): postinst starts phoned.service"
fi
# … but restarted on upgrade if it runs, and stopped on removal.
control_has "$phoned_deb" postinst 'try-restart phoned\.service'
control_has "$phoned_deb" prerm 'deb-systemd-invoke stop phoned\.service'
ok "$(basename "$phoned_deb"): files, conffiles, dependencies, maintainer scripts"

root=$scratch/root
dpkg-deb -x "$relay_deb" "$root"
dpkg-deb -x "$phoned_deb" "$root"
declare -A completions=(
  [phonectl.bash]=bash-completion/completions/phonectl
  [_phonectl]=zsh/vendor-completions/_phonectl
  [phonectl.fish]=fish/vendor_completions.d/phonectl.fish
)
for f in "${!completions[@]}"; do
  cmp -s "$release/assets/$f" "$root/usr/share/${completions[$f]}" ||
    fail "packaged completion ${completions[$f]} differs from $release/assets/$f"
done
grep -q '^\.TH phonectl 1' <<<"$(zcat "$root/usr/share/man/man1/phonectl.1.gz")" ||
  fail "phonectl.1.gz is no man page"
# Every phonectl-*(1) page a phonectl page refers to is shipped.
for page in "$root"/usr/share/man/man1/phonectl*.1.gz; do
  for ref in $(zcat "$page" | sed 's/\\-/-/g' | grep -o 'phonectl-[a-z-]*(1)' | sort -u); do
    [ -f "$root/usr/share/man/man1/${ref%(1)}.1.gz" ] ||
      fail "$(basename "$page") refers to $ref, which is not in the package"
  done
done
for page in man8/phoned.8.gz man8/phone-relay.8.gz; do
  zcat "$root/usr/share/man/$page" | grep -q '^\.TH ' || fail "$page is no man page"
done
"$root/usr/bin/phone-relay" --version >/dev/null
"$root/usr/bin/phoned" --version >/dev/null
"$root/usr/bin/phonectl" --version >/dev/null
"$root/usr/bin/phoned-ofono" --version >/dev/null
# The oFono bridge's policy is shipped inactive: nothing of it in the bus's own dirs.
[ ! -e "$root/usr/share/dbus-1/system.d/phoned-ofono.conf" ] ||
  fail "phoned-ofono.conf is active on install; it must be linked in by the admin"
ok "packaged completions, man page and binaries"

# --- 3. systemd-analyze verify ----------------------------------------------------------
# verify ARGS...: systemd-analyze verify, where any output (it only warns about unknown
# keys or bad values) is a failure too.
verify() {
  local out
  if ! out=$(systemd-analyze "$@" 2>&1) || [ -n "$out" ]; then
    echo "$out" >&2
    fail "systemd-analyze $*"
  fi
}
step "systemd-analyze verify (system units, in a scratch root)"
# The units the packaged ones refer to (multi-user.target, dbus.socket, …) come from this
# machine; the packaged files are unpacked over them.
for d in /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$d" ] && cp -an "$d/." "$root/usr/lib/systemd/system/"
done
[ -f "$root/usr/lib/systemd/system/multi-user.target" ] || fail "no systemd units on this machine to verify against"
# ExecReload= runs /bin/kill (procps, on every Debian system), which the scratch root lacks.
install -D -m 0755 /bin/kill "$root/bin/kill"
for unit in phone-relay.service phoned.service; do
  grep -qxF "ExecReload=/bin/kill -HUP \$MAINPID" "$root/usr/lib/systemd/system/$unit" ||
    fail "$unit has no ExecReload sending SIGHUP"
done
# man:phonectl(1) is in the package, not on this machine: --man=no.
verify verify --man=no --root="$root" phone-relay.service phoned.service
ok "systemd-analyze verify phone-relay.service phoned.service (system)"

step "systemd-analyze verify (user unit)"
# `--user` takes no --root: verify a copy whose ExecStart is the unpacked binary.
mkdir -p "$scratch/user" "$scratch/runtime"
chmod 0700 "$scratch/runtime"
sed "s|^ExecStart=/usr/bin/phoned |ExecStart=$root/usr/bin/phoned |" \
  "$root/usr/lib/systemd/user/phoned.service" >"$scratch/user/phoned.service"
grep -q "^ExecStart=$root/usr/bin/phoned --bus session$" "$scratch/user/phoned.service" ||
  fail "unexpected ExecStart in the user unit"
XDG_RUNTIME_DIR=$scratch/runtime verify --user --man=no verify "$scratch/user/phoned.service"
ok "systemd-analyze --user verify phoned.service"
sed "s|^ExecStart=/usr/bin/phoned-ofono |ExecStart=$root/usr/bin/phoned-ofono |" \
  "$root/usr/lib/systemd/user/phoned-ofono.service" >"$scratch/user/phoned-ofono.service"
grep -q "^ExecStart=$root/usr/bin/phoned-ofono " "$scratch/user/phoned-ofono.service" ||
  fail "unexpected ExecStart in the oFono bridge's user unit"
XDG_RUNTIME_DIR=$scratch/runtime verify --user --man=no verify "$scratch/user/phoned-ofono.service"
ok "systemd-analyze --user verify phoned-ofono.service"

# --- 4. D-Bus ----------------------------------------------------------------------------
step "D-Bus files"
xmllint --noout "$root/usr/share/dbus-1/system.d/org.phoned.Phone1.conf" \
  "$root/usr/share/phoned/dbus-1/system.d/phoned-ofono.conf" \
  "$root/usr/share/dbus-1/interfaces/org.phoned.Phone1.xml" || fail "xmllint"
ok "D-Bus XML well-formed"

# start_bus CONFIG: starts a private dbus-daemon with CONFIG and sets bus_address; fails
# when dbus-daemon refuses the config (it exits at once naming the file and line).
# Without the users phoned and phone on this machine it warns and skips those rules: the
# file must still parse.
start_bus() {
  local out
  out=$(dbus-daemon --config-file="$1" --fork --print-address=1 --print-pid=1 \
    2> >(grep -v 'Unknown \(username\|group\)' >&2)) || fail "dbus-daemon refused $1"
  pids+=("$(sed -n 2p <<<"$out")")
  bus_address=$(sed -n 1p <<<"$out")
}
# A system bus like Debian's system.conf (deny by default), including the packaged policy.
cat >"$scratch/system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$scratch/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>$root/usr/share/dbus-1/system.d/org.phoned.Phone1.conf</include>
  <include>$root/usr/share/phoned/dbus-1/system.d/phoned-ofono.conf</include>
</busconfig>
EOF
start_bus "$scratch/system.conf"
dbus-send --bus="$bus_address" --print-reply --dest=org.freedesktop.DBus / \
  org.freedesktop.DBus.GetId >/dev/null
ok "a system bus accepts org.phoned.Phone1.conf and phoned-ofono.conf"

# A session bus whose only service dir is the packaged one.
cat >"$scratch/session.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$scratch/session_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$root/usr/share/dbus-1/services</servicedir>
  <policy context="default">
    <!-- as in /usr/share/dbus-1/session.conf -->
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
start_bus "$scratch/session.conf"
names=$(dbus-send --bus="$bus_address" --print-reply --dest=org.freedesktop.DBus / \
  org.freedesktop.DBus.ListActivatableNames)
grep -q '"org.phoned.Phone1"' <<<"$names" ||
  fail "org.phoned.Phone1 is not activatable from the packaged activation file"
ok "a session bus lists org.phoned.Phone1 as activatable from the packaged file"

# --- 5. shellcheck -----------------------------------------------------------------------
step "shellcheck"
shellcheck scripts/*.sh .ci/run || fail "shellcheck"
ok "shellcheck scripts/*.sh .ci/run"

step "packages in $debs: $(basename "$relay_deb") $(basename "$phoned_deb")"
checks_end
