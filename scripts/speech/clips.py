#!/usr/bin/env python3
"""Speech clips for the speech-quality bench: a male and a female voice in English and in
French, spoken by espeak-ng, resampled to 48 kHz mono 16-bit WAV (the daemon's rate).

Each clip is three sentences, about 7-10 s with the pauses between them: ITU-T P.862's
advice is 8-12 s of speech with 40-80 % activity. espeak-ng is a formant synthesiser, so
the voices are not natural speech, but they are repeatable on any machine and carry the
pitch, formants and silences a codec and a jitter buffer react to.

usage: clips.py OUT_DIR   (prints one line per clip: name, seconds)
"""

import subprocess
import sys
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

RATE = 48_000

SENTENCES = {
    "en": [
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It is easy to tell the depth of a well.",
    ],
    "fr": [
        "Le petit chat dort au soleil près de la fenêtre.",
        "Nous partirons demain matin pour la montagne.",
        "Il faut lire ce livre avant la fin du mois.",
    ],
}
VOICES = {
    "en-male": ("en-us", "en"),
    "en-female": ("en-us+f3", "en"),
    "fr-male": ("fr-fr", "fr"),
    # "fr+f2", not "fr-fr+f2": espeak-ng 1.51 ignores a variant after a dialect name
    # ("fr-fr+f2" spoke exactly as "fr-fr" until December 2026).
    "fr-female": ("fr+f2", "fr"),
}
PAUSE_S = 0.4


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32768.0, w.getframerate()


def write_wav(path, samples, rate=RATE):
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def speak(voice, text, tmp):
    out = Path(tmp) / "s.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)
    samples, rate = read_wav(out)
    ratio = Fraction(RATE, rate).limit_denominator(1000)
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    pause = np.zeros(int(PAUSE_S * RATE))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (voice, lang) in VOICES.items():
            parts = []
            for text in SENTENCES[lang]:
                parts += [speak(voice, text, tmp), pause]
            clip = np.concatenate(parts)
            # About -26 dBFS RMS over the whole clip, pauses included (P.56's usual active
            # speech level), with no peak above -6 dBFS: the synthesiser's plosives have a
            # crest factor near 20 dB.
            clip *= min(0.05 / np.sqrt(np.mean(clip**2)), 0.5 / np.max(np.abs(clip)))
            write_wav(out_dir / f"{name}.wav", clip)
            print(f"{name} {len(clip) / RATE:.2f}")


if __name__ == "__main__":
    main()
