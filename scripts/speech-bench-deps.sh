#!/usr/bin/env bash
# What the speech-quality bench (tests/benches/speech_quality.rs) needs beyond the test
# dependencies: espeak-ng for the voices, and a Python virtual environment with the `pesq`
# package (ITU-T P.862 reference code), numpy and scipy. The environment lives in
# target/speech-bench/venv, so nothing is installed into the system's Python.
# Idempotent: prints the venv's python on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SPEECH_VENV:-$root/target/speech-bench/venv}
if ! command -v espeak-ng >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q espeak-ng python3-venv python3-dev gcc >&2
fi
if ! "$venv/bin/python" -c 'import pesq, numpy, scipy' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q pesq==0.0.4 numpy scipy >&2
fi
echo "$venv/bin/python"
