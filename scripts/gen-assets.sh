#!/usr/bin/env bash
# Generates what the phoned .deb ships besides the binaries: phonectl's shell completions
# and man page, from the phonectl of $PROFILE (default release; the packages use dist:
# build it first with cargo build --profile dist -p phonectl).
# Writes target/$PROFILE/assets/{phonectl.bash,_phonectl,phonectl.fish,man/*.1.gz}, which
# daemon/Cargo.toml's [package.metadata.deb] assets name as target/release/… (cargo-deb
# maps that prefix to the real target dir and to its --profile, so $CARGO_TARGET_DIR and
# `cargo deb --profile dist` are honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
release=${CARGO_TARGET_DIR:-target}/$profile
phonectl=$release/phonectl
out=$release/assets
[ -x "$phonectl" ] || {
  echo "gen-assets: $phonectl is missing: cargo build --profile $profile -p phonectl first" >&2
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
# phonectl(1) and one page per command (phonectl-dial(1), phonectl-msg-send(1), ...),
# which phonectl(1) refers to.
rm -rf "$out/man"
"$phonectl" man --dir "$out/man"
[ -s "$out/man/phonectl.1" ] || { echo "gen-assets: phonectl man --dir wrote no phonectl.1" >&2; exit 1; }
# Debian ships man pages compressed (cargo-deb only compresses sources outside target/).
gzip -9nf "$out"/man/*.1
echo "gen-assets: wrote phonectl.bash _phonectl phonectl.fish and $(find "$out/man" -name "*.1.gz" | wc -l) man pages to $out/"
