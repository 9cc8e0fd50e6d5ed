//! WAV files as a microphone and a speaker for the file backend: [`WavSource`] reads any
//! PCM or float WAV as mono `f32`, [`WavSink`] records mono 16-bit PCM.

use std::fs::File;
use std::io::BufReader;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use super::convert::{f32_to_i16, int_to_f32};
use super::counters::StreamCounters;
use super::error::AudioError;

/// The sample encoding of an input WAV, checked once when it is opened.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Int { bits: u16 },
    Float,
}

/// Reads a WAV file as mono `f32` at the file's own rate, then silence after the end.
pub struct WavSource {
    path: PathBuf,
    reader: WavReader<BufReader<File>>,
    rate: u32,
    channels: usize,
    encoding: Encoding,
    ended: bool,
}

impl WavSource {
    /// Opens `path` and checks that its format is one we can read.
    pub fn open(path: &Path) -> Result<WavSource, AudioError> {
        let reader = WavReader::open(path).map_err(|source| AudioError::WavOpen {
            path: path.to_owned(),
            source,
        })?;
        let spec = reader.spec();
        let bad = |message: String| AudioError::WavFormat {
            path: path.to_owned(),
            message,
        };
        let encoding = match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Int, bits @ 1..=32) => Encoding::Int { bits },
            (SampleFormat::Float, 32) => Encoding::Float,
            (format, bits) => {
                return Err(bad(format!(
                    "{bits}-bit {format:?} samples are not supported (use 8-32 bit PCM or 32-bit float)"
                )));
            }
        };
        if spec.sample_rate == 0 || spec.channels == 0 {
            return Err(bad(format!(
                "invalid header: {} Hz, {} channels",
                spec.sample_rate, spec.channels
            )));
        }
        Ok(WavSource {
            path: path.to_owned(),
            reader,
            rate: spec.sample_rate,
            channels: usize::from(spec.channels),
            encoding,
            ended: false,
        })
    }

    /// The file's sample rate: the "device rate" of a file capture.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// How many frames (samples per channel) the file holds.
    pub fn frames(&self) -> u32 {
        self.reader.duration()
    }

    /// Fills `out` with the next mono samples (the mean of each frame's channels); past the
    /// end of the file, or after a read error (logged once), with silence.
    pub fn fill(&mut self, out: &mut [f32]) {
        let mut filled = 0;
        if !self.ended {
            let channels = self.channels;
            let result = match self.encoding {
                Encoding::Int { bits } => {
                    read_mono(self.reader.samples::<i32>(), channels, out, |v| {
                        int_to_f32(v, bits)
                    })
                }
                Encoding::Float => read_mono(self.reader.samples::<f32>(), channels, out, |v| v),
            };
            filled = match result {
                Ok(n) => n,
                Err((n, e)) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "input WAV read failed; continuing with silence");
                    n
                }
            };
            if filled < out.len() {
                self.ended = true;
            }
        }
        out[filled..].fill(0.0);
    }
}

/// Reads whole frames from `samples`, averaging each into one `out` sample. Returns how
/// many `out` samples were written: fewer than `out.len()` at the end of the data.
fn read_mono<S>(
    mut samples: impl Iterator<Item = hound::Result<S>>,
    channels: usize,
    out: &mut [f32],
    convert: impl Fn(S) -> f32,
) -> Result<usize, (usize, hound::Error)> {
    for (i, slot) in out.iter_mut().enumerate() {
        let mut sum = 0.0;
        for _ in 0..channels {
            match samples.next() {
                Some(Ok(v)) => sum += convert(v),
                // A trailing partial frame is dropped with the end of the file.
                None => return Ok(i),
                Some(Err(e)) => return Err((i, e)),
            }
        }
        *slot = sum / channels as f32;
    }
    Ok(out.len())
}

/// The format recordings are written in: mono 16-bit PCM at the stream's rate.
pub fn recording_spec(rate: u32) -> WavSpec {
    WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    }
}

/// Exclusive use of one output path: two streams appending to one WAV would corrupt it.
/// Released on drop.
#[derive(Debug)]
pub struct OutputClaim(Arc<AtomicBool>);

impl OutputClaim {
    /// Takes the claim held in `flag`, or `None` while another holder has it.
    pub fn take(flag: &Arc<AtomicBool>) -> Option<OutputClaim> {
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| OutputClaim(flag.clone()))
    }
}

impl Drop for OutputClaim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Records mono samples to a 16-bit PCM WAV. The header is rewritten about once a second
/// so the file is readable while it grows and after a crash; [`WavSink::finish`] (or drop)
/// finalises it and releases the claim that keeps a second playback off the same file.
pub struct WavSink {
    path: PathBuf,
    writer: Option<WavWriter<BufWriter<File>>>,
    counters: Arc<StreamCounters>,
    since_checkpoint: usize,
    checkpoint_every: usize,
    _claim: OutputClaim,
}

impl WavSink {
    /// Creates (truncating) or, with `append`, extends `path`, which must then hold a
    /// recording in [`recording_spec`]`(rate)`. The sink keeps `claim` until it is dropped.
    pub fn create(
        path: &Path,
        rate: u32,
        append: bool,
        counters: Arc<StreamCounters>,
        claim: OutputClaim,
    ) -> Result<WavSink, AudioError> {
        let spec = recording_spec(rate);
        let writer = if append && path.exists() {
            let w = WavWriter::append(path).map_err(|source| AudioError::WavCreate {
                path: path.to_owned(),
                source,
            })?;
            if w.spec() != spec {
                return Err(AudioError::WavFormat {
                    path: path.to_owned(),
                    message: format!("cannot append: it holds {:?}, expected {spec:?}", w.spec()),
                });
            }
            w
        } else {
            WavWriter::create(path, spec).map_err(|source| AudioError::WavCreate {
                path: path.to_owned(),
                source,
            })?
        };
        Ok(WavSink {
            path: path.to_owned(),
            writer: Some(writer),
            counters,
            since_checkpoint: 0,
            checkpoint_every: rate as usize,
            _claim: claim,
        })
    }

    /// Appends `samples`. After a write error (logged, counted as a device error) the sink
    /// discards everything, as a broken speaker would.
    pub fn write(&mut self, samples: &[f32]) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let mut result = samples
            .iter()
            .try_for_each(|&s| writer.write_sample(f32_to_i16(s)));
        self.since_checkpoint += samples.len();
        if result.is_ok() && self.since_checkpoint >= self.checkpoint_every {
            self.since_checkpoint = 0;
            result = writer.flush();
        }
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "output WAV write failed; discarding playback");
            self.counters.add_device_error();
            self.writer = None;
        }
    }

    /// Finalises the WAV header. Idempotent.
    pub fn finish(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(e) = writer.finalize()
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot finalise output WAV");
            self.counters.add_device_error();
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // Finalise before the claim (a field, dropped after this) lets another writer in.
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: WavSpec, samples: &[S]) {
        let mut w = WavWriter::create(path, spec).expect("create test WAV");
        for &s in samples {
            w.write_sample(s).expect("write test sample");
        }
        w.finalize().expect("finalize test WAV");
    }

    #[test]
    fn stereo_16_bit_is_read_as_mono_then_silence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        let spec = WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        write_wav(&path, spec, &[16384i16, 0, -8192, -8192, 100, 100]);
        let mut src = WavSource::open(&path).expect("open");
        assert_eq!(src.rate(), 44_100);
        let mut out = [9.0f32; 2];
        src.fill(&mut out);
        assert_eq!(out, [0.25, -0.25]);
        let mut out = [9.0f32; 3];
        src.fill(&mut out);
        assert_eq!(out, [100.0 / 32768.0, 0.0, 0.0]);
        src.fill(&mut out);
        assert_eq!(out, [0.0; 3]);
    }

    #[test]
    fn float_and_24_bit_and_8_bit_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f.wav");
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        };
        write_wav(&f, spec, &[0.5f32, -1.0]);
        let mut out = [0f32; 2];
        WavSource::open(&f).expect("open").fill(&mut out);
        assert_eq!(out, [0.5, -1.0]);

        let i24 = dir.path().join("i24.wav");
        let spec = WavSpec {
            bits_per_sample: 24,
            sample_format: SampleFormat::Int,
            ..spec
        };
        write_wav(&i24, spec, &[1i32 << 22, -(1 << 23)]);
        WavSource::open(&i24).expect("open").fill(&mut out);
        assert_eq!(out, [0.5, -1.0]);

        let i8 = dir.path().join("i8.wav");
        let spec = WavSpec {
            bits_per_sample: 8,
            ..spec
        };
        write_wav(&i8, spec, &[64i8, -128]);
        WavSource::open(&i8).expect("open").fill(&mut out);
        assert_eq!(out, [0.5, -1.0]);
    }

    #[test]
    fn a_file_that_is_not_a_wav_is_a_typed_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not.wav");
        std::fs::write(&path, b"hello").expect("write");
        assert!(matches!(
            WavSource::open(&path),
            Err(AudioError::WavOpen { .. })
        ));
        assert!(matches!(
            WavSource::open(&dir.path().join("missing.wav")),
            Err(AudioError::WavOpen { .. })
        ));
    }

    #[test]
    fn sink_writes_16_bit_mono_and_appends_in_the_same_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let counters = Arc::new(StreamCounters::default());
        let flag = Arc::new(AtomicBool::new(false));
        let claim = OutputClaim::take(&flag).expect("free");
        assert!(OutputClaim::take(&flag).is_none(), "one writer at a time");
        let mut sink =
            WavSink::create(&path, 48_000, false, counters.clone(), claim).expect("create");
        sink.write(&[0.5, -0.5]);
        drop(sink);
        let claim = OutputClaim::take(&flag).expect("drop released the claim");
        let mut sink =
            WavSink::create(&path, 48_000, true, counters.clone(), claim).expect("append");
        sink.write(&[1.0]);
        sink.finish();
        let mut r = WavReader::open(&path).expect("read back");
        assert_eq!(r.spec(), recording_spec(48_000));
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
        assert_eq!(got, [16384, -16384, 32767]);

        drop(sink);
        let claim = OutputClaim::take(&flag).expect("free again");
        assert!(matches!(
            WavSink::create(&path, 44_100, true, counters, claim),
            Err(AudioError::WavFormat { .. })
        ));
        assert!(
            OutputClaim::take(&flag).is_some(),
            "a failed create releases the claim"
        );
    }
}
