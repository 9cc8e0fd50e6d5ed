#!/usr/bin/env bash
# Installs the Debian packages phoned needs to build and test (idempotent).
set -euo pipefail
pkgs=(build-essential pkg-config libasound2-dev libopus-dev dbus ca-certificates
      pulseaudio pulseaudio-utils libasound2-plugins opus-tools
      # Calls through a real PipeWire (with WirePlumber and pipewire-pulse) per phone,
      # started by the tests themselves (tests/tests/pulseaudio.rs).
      pipewire pipewire-pulse wireplumber
      # Plain ALSA (the cpal backend) on a paced stand-in for a sound card: a private
      # `jackd -d dummy` per phone, reached through ALSA's jack plugin
      # (tests/tests/alsa_paced.rs; jack_rec records the speaker).
      jackd2
      # A real notification server on a private X server (tests/tests/dunst.rs), and the
      # real GNOME Calls as phoned's dialer through phoned-ofono, under Xvfb, with a
      # screenshot of its ringing screen (tests/tests/gnome_calls.rs; about 57 MB, the
      # test takes some 10 s).
      dunst gnome-calls xvfb imagemagick
      # The relay's PostgreSQL store is tested on a real server: the tests make a
      # throw-away cluster of their own with initdb/pg_ctl (tests/src/postgres.rs), on a
      # unix socket in a temp dir, so the cluster the package may start does not matter.
      postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.89 or newer (https://rustup.rs)" >&2; exit 1; }
