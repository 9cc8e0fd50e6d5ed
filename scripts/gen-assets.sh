#!/usr/bin/env bash
# Generates what the phoned .deb ships besides the binaries: phonectl's shell completions
# and man page, from the release phonectl (build it first: cargo build --release -p phonectl).
# Writes target/release/assets/{phonectl.bash,_phonectl,phonectl.fish,phonectl.1.gz}, which
# daemon/Cargo.toml's [package.metadata.deb] assets name (cargo-deb maps the
# target/release/ prefix to the real target dir, so $CARGO_TARGET_DIR is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
release=${CARGO_TARGET_DIR:-target}/release
phonectl=$release/phonectl
out=$release/assets
[ -x "$phonectl" ] || {
  echo "gen-assets: $phonectl is missing: cargo build --release -p phonectl first" >&2
  exit 1
}
mkdir -p "$out"
gen() { # FILE COMMAND...: write the output of COMMAND to FILE, never a partial file
  local file=$1
  shift
  "$@" >"$file.tmp"
  [ -s "$file.tmp" ] || { echo "gen-assets: '$*' printed nothing" >&2; exit 1; }
  mv "$file.tmp" "$file"
}
gen "$out/phonectl.bash" "$phonectl" completions bash
gen "$out/_phonectl" "$phonectl" completions zsh
gen "$out/phonectl.fish" "$phonectl" completions fish
gen "$out/phonectl.1" "$phonectl" man
# Debian ships man pages compressed (cargo-deb only compresses sources outside target/).
gzip -9nf "$out/phonectl.1"
echo "gen-assets: wrote phonectl.bash _phonectl phonectl.fish phonectl.1.gz to $out/"
