//! A ring tone from a WAV file (`[audio] ring = "/path/to.wav"`): checked when the config
//! loads, then read whole, downmixed and resampled to the output device's rate when a call
//! rings, and looped by the player. Any PCM or float WAV at a standard rate will do (the
//! file backend's reader and the call path's resamplers do the work).

use std::path::{Path, PathBuf};

use crate::audio::backend::{AudioError, WavSource};
use crate::audio::resample::{FRAME, FromNetwork, ResampleError, ToNetwork};

/// The longest ring WAV played, in seconds; the rest is cut. A ring loops: this is room
/// for any ring tone and keeps a song given by mistake from taking megabytes.
pub const MAX_SECONDS: u32 = 30;

/// Why a ring WAV cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum RingWavError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("WAV {path}: {source}")]
    Rate {
        path: PathBuf,
        #[source]
        source: ResampleError,
    },
    #[error("WAV {path} holds no samples")]
    Empty { path: PathBuf },
}

/// Checks that `path` is a WAV the ring can play: readable, a supported sample format, a
/// rate the resampler takes, not empty.
pub fn check(path: &Path) -> Result<(), RingWavError> {
    let wav = WavSource::open(path)?;
    ToNetwork::new(wav.rate()).map_err(|source| RingWavError::Rate {
        path: path.to_owned(),
        source,
    })?;
    if wav.frames() == 0 {
        return Err(RingWavError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The first [`MAX_SECONDS`] of `path` as mono samples at `device_rate`.
pub fn load(path: &Path, device_rate: u32) -> Result<Vec<f32>, RingWavError> {
    let rate_error = |source| RingWavError::Rate {
        path: path.to_owned(),
        source,
    };
    let mut wav = WavSource::open(path)?;
    let rate = wav.rate();
    let frames = wav.frames().min(MAX_SECONDS.saturating_mul(rate)) as usize;
    if frames == 0 {
        return Err(RingWavError::Empty {
            path: path.to_owned(),
        });
    }
    let mut samples = vec![0f32; frames];
    wav.fill(&mut samples);
    if rate == device_rate {
        return Ok(samples);
    }
    // Through the call path's resamplers: the file's rate → 48 kHz frames → the device's.
    let mut up = ToNetwork::new(rate).map_err(rate_error)?;
    let mut down = FromNetwork::new(device_rate).map_err(rate_error)?;
    let expected = (frames as u64 * u64::from(device_rate) / u64::from(rate)) as usize;
    let mut out = Vec::with_capacity(expected + FRAME);
    let mut frame = [0f32; FRAME];
    up.push(&samples);
    // Pad the last partial frame (and the resamplers' delay) with silence.
    up.push(&vec![0f32; FRAME + rate as usize / 50]);
    while out.len() < expected && up.pop_frame(&mut frame).map_err(rate_error)? {
        out.extend_from_slice(down.process(&frame).map_err(rate_error)?);
    }
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use hound::{SampleFormat, WavSpec, WavWriter};

    use super::*;
    use crate::audio::analysis::goertzel_power;

    fn write(path: &Path, rate: u32, channels: u16, seconds: f32, freq: f32) {
        let spec = WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut w = WavWriter::create(path, spec).expect("create");
        for i in 0..(rate as f32 * seconds) as u32 {
            let v = 0.5 * (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin();
            for _ in 0..channels {
                w.write_sample((v * 32767.0) as i16).expect("sample");
            }
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn a_stereo_44k1_wav_becomes_mono_at_the_device_rate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ring.wav");
        write(&path, 44_100, 2, 1.0, 700.0);
        check(&path).expect("playable");
        let out = load(&path, 48_000).expect("loads");
        assert_eq!(out.len(), 48_000);
        let middle = &out[4_800..43_200];
        let p700 = goertzel_power(middle, 48_000.0, 700.0);
        assert!((0.05..0.07).contains(&p700), "700 Hz at {p700}");
        assert!(goertzel_power(middle, 48_000.0, 1000.0) < p700 / 1000.0);
        // Same rate: the samples as they are.
        let same = load(&path, 44_100).expect("loads");
        assert_eq!(same.len(), 44_100);
    }

    #[test]
    fn long_files_are_cut_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("long.wav");
        write(&long, 8_000, 1, MAX_SECONDS as f32 + 2.0, 700.0);
        assert_eq!(
            load(&long, 8_000).expect("loads").len(),
            MAX_SECONDS as usize * 8_000
        );

        let odd = dir.path().join("odd.wav");
        write(&odd, 12_345, 1, 0.5, 700.0);
        assert!(matches!(check(&odd), Err(RingWavError::Rate { .. })));
        let empty = dir.path().join("empty.wav");
        write(&empty, 48_000, 1, 0.0, 700.0);
        assert!(matches!(check(&empty), Err(RingWavError::Empty { .. })));
        let missing = dir.path().join("missing.wav");
        let e = check(&missing).expect_err("missing");
        assert!(e.to_string().contains("missing.wav"), "{e}");
        std::fs::write(dir.path().join("text.wav"), "not a wav").expect("write");
        assert!(matches!(
            check(&dir.path().join("text.wav")),
            Err(RingWavError::Audio(AudioError::WavOpen { .. }))
        ));
    }
}
