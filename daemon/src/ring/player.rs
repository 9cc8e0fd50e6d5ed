//! The ring through the output device: a [`RingPlayer`] is one thread that opens a
//! playback stream of the configured backend and keeps it fed with the ring (the built-in
//! tone or the configured WAV, looped, at the configured volume) until it is dropped. The
//! driver makes one when the core says ring and drops it when the core says stop;
//! dropping closes the stream before returning, so the device is free for the call that
//! the same batch of effects may start.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::tone::{self, RING, ToneGen};
use super::wav::{self, RingWavError};
use crate::audio::backend::{self, AudioError, Options, Playback};
use crate::config::{Audio, RingSound};

/// How much ring is kept queued for the device: enough to ride out a late wake-up of this
/// thread, little enough that the ring stops soon after the stream is told to.
const QUEUED_MS: u32 = 100;
/// How often the thread tops the queue up.
const WAKE: Duration = Duration::from_millis(20);

/// Why the device does not ring.
#[derive(Debug, thiserror::Error)]
enum RingError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Wav(#[from] RingWavError),
}

/// The ring playing; dropping it stops the ring and closes the device.
pub struct RingPlayer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RingPlayer {
    /// Starts ringing through the output device `audio` names, with its ring settings.
    /// The device is opened on the new thread, so a slow one does not hold the caller up;
    /// what fails there is logged (once) and the call rings silently.
    pub fn start(audio: &Audio) -> std::io::Result<RingPlayer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (audio, flag) = (audio.clone(), stop.clone());
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name("ring".into())
            .spawn(move || {
                let _span = span.enter();
                if let Err(e) = play(&audio, &flag) {
                    tracing::warn!("cannot ring through the output device: {e}");
                }
            })?;
        Ok(RingPlayer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RingPlayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("the ring thread panicked");
            }
        }
    }
}

/// What the ring plays.
enum Source {
    Tone(ToneGen),
    /// A loaded WAV at the device rate, its gain, and where the loop is.
    Wav {
        samples: Vec<f32>,
        gain: f32,
        at: usize,
    },
}

impl Source {
    /// What `audio` rings with at `rate`; `None` for `ring = "off"`.
    fn open(audio: &Audio, rate: u32) -> Result<Option<Source>, RingError> {
        let gain = tone::gain(audio.ring.volume);
        Ok(match &audio.ring.sound {
            RingSound::Off => None,
            RingSound::Builtin => Some(Source::Tone(ToneGen::new(&RING, rate, gain))),
            RingSound::Wav(path) => Some(Source::Wav {
                samples: load(path, rate)?,
                gain,
                at: 0,
            }),
        })
    }

    fn fill(&mut self, out: &mut [f32]) {
        match self {
            Source::Tone(t) => t.fill(out),
            Source::Wav { samples, gain, at } => {
                for slot in out {
                    *slot = samples[*at] * *gain;
                    *at = (*at + 1) % samples.len();
                }
            }
        }
    }
}

fn load(path: &Path, rate: u32) -> Result<Vec<f32>, RingWavError> {
    let samples = wav::load(path, rate)?;
    if samples.is_empty() {
        return Err(RingWavError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(samples)
}

/// The thread: open the device, then keep [`QUEUED_MS`] of ring queued until stopped.
fn play(audio: &Audio, stop: &AtomicBool) -> Result<(), RingError> {
    if audio.ring.sound == RingSound::Off {
        // The core does not ring then; this keeps the device closed if it did.
        return Ok(());
    }
    let mut backend = backend::open(audio, Options::default())?;
    let mut playback = backend.start_playback()?;
    let rate = playback.rate();
    let Some(mut source) = Source::open(audio, rate)? else {
        return Ok(());
    };
    tracing::debug!(backend = backend.kind(), rate, "ringing");
    let queued = (rate * QUEUED_MS / 1000) as usize;
    let mut block = vec![0f32; queued];
    while !stop.load(Ordering::Acquire) {
        top_up(&mut playback, &mut source, &mut block, queued);
        std::thread::park_timeout(WAKE);
    }
    Ok(())
}

fn top_up(playback: &mut Playback, source: &mut Source, block: &mut [f32], queued: usize) {
    let want = queued
        .saturating_sub(playback.pending())
        .min(playback.free())
        .min(block.len());
    if want > 0 {
        source.fill(&mut block[..want]);
        playback.write(&block[..want]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::audio::analysis::goertzel_power;
    use crate::config::{AudioBackend, Ring};

    fn file_audio(output: &Path, sound: RingSound) -> Audio {
        Audio {
            backend: AudioBackend::File,
            input: None,
            output: None,
            input_wav: None,
            output_wav: Some(output.to_owned()),
            ring: Ring { sound, volume: 100 },
            frame: Default::default(),
        }
    }

    /// Waits until the recording at `path` holds `seconds` of audio.
    fn wait_recorded(path: &Path, seconds: f32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let len = hound::WavReader::open(path).map_or(0, |r| r.len());
            if len as f32 >= seconds * 48_000.0 {
                return;
            }
            assert!(Instant::now() < deadline, "only {len} samples recorded");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn recorded(path: &Path) -> Vec<f32> {
        hound::WavReader::open(path)
            .expect("a recording")
            .samples::<i16>()
            .map(|s| f32::from(s.expect("sample")) / 32768.0)
            .collect()
    }

    #[test]
    fn the_builtin_ring_plays_through_the_device_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("speaker.wav");
        let player = RingPlayer::start(&file_audio(&out, RingSound::Builtin)).expect("start");
        wait_recorded(&out, 1.2);
        drop(player);
        let heard = recorded(&out);
        // The recording starts with the stream; the first burst is in its first second.
        let first = &heard[..48_000];
        assert!(goertzel_power(first, 48_000.0, 660.0) > 0.005, "no ring");
        // Dropped: the stream is closed and the file final.
        let len = heard.len();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(recorded(&out).len(), len, "still playing after the drop");
    }

    #[test]
    fn a_wav_ring_loops_and_off_plays_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = dir.path().join("ring.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&ring, spec).expect("create");
        // 100 ms of 500 Hz: looped ten times a second.
        for i in 0..1_600 {
            let v = 0.5 * (std::f32::consts::TAU * 500.0 * i as f32 / 16_000.0).sin();
            w.write_sample((v * 32767.0) as i16).expect("sample");
        }
        w.finalize().expect("finalize");
        let out = dir.path().join("speaker.wav");
        let player = RingPlayer::start(&file_audio(&out, RingSound::Wav(ring))).expect("start");
        wait_recorded(&out, 0.6);
        drop(player);
        let heard = recorded(&out);
        let start = heard.iter().position(|s| s.abs() > 0.01).expect("the ring");
        let looped = &heard[start..start + 24_000];
        assert!(goertzel_power(looped, 48_000.0, 500.0) > 0.03, "no loop");

        let silent = dir.path().join("silent.wav");
        drop(RingPlayer::start(&file_audio(&silent, RingSound::Off)).expect("start"));
        assert!(!silent.exists(), "the device was opened");
    }
}
