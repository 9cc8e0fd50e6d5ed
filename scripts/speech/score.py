#!/usr/bin/env python3
"""Wideband PESQ (ITU-T P.862.2) of a recording against the clip that was spoken into it.

The recording may hold the clip several times (`--at`: where each copy should begin in the
recording, in samples at 48 kHz, as far as the caller knows it); each copy is found by
cross-correlation within `--search-ms` after that point (the path's delay), cut to the
clip's length, resampled to 16 kHz with the clip, and scored on its own. PESQ then aligns
what is left within the utterances itself, so a jitter buffer that moves its delay mid-clip
costs what it costs a listener.

usage: score.py CLIP.wav RECORDING.wav --at N[,N...] [--search-ms 600]
prints one JSON object: {"pesq": [...], "delay_ms": [...]}
"""

import argparse
import json
import wave

import numpy as np
from pesq import pesq
from scipy.signal import correlate, resample_poly

RATE = 48_000


def read_wav(path):
    with wave.open(path) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != RATE:
            raise SystemExit(f"{path}: want 48 kHz mono 16-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32768.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("recording")
    ap.add_argument("--at", required=True)
    ap.add_argument("--search-ms", type=float, default=600.0)
    args = ap.parse_args()
    clip, rec = read_wav(args.clip), read_wav(args.recording)
    search = int(args.search_ms * RATE / 1000)
    scores, delays = [], []
    for at in (int(a) for a in args.at.split(",")):
        lo = max(at, 0)
        window = rec[lo : lo + search + len(clip)]
        if len(window) < len(clip):
            scores.append(None)
            delays.append(None)
            continue
        xc = correlate(window, clip, mode="valid", method="fft")
        lag = int(np.argmax(xc))
        copy = rec[lo + lag : lo + lag + len(clip)]
        ref16 = resample_poly(clip, 1, 3)
        deg16 = resample_poly(copy, 1, 3)
        try:
            scores.append(round(float(pesq(16_000, ref16, deg16, "wb")), 3))
        except Exception:  # no utterances found: silence came out
            scores.append(1.0)
        delays.append(round((lo + lag - at) * 1000 / RATE, 2))
    print(json.dumps({"pesq": scores, "delay_ms": delays}))


if __name__ == "__main__":
    main()
