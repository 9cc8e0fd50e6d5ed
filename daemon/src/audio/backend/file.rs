//! The `file` backend: a WAV file as the microphone and a WAV file as the speaker, both
//! paced in real time, so the whole daemon can be run and tested without a sound card and
//! scripts can play announcements or record calls.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::counters::StreamCounters;
use super::error::AudioError;
use super::null::NULL_RATE;
use super::paced::{Sink, Source};
use super::wav::{OutputClaim, WavSink, WavSource};
use super::{Backend, Capture, Options, Playback, start_paced_capture, start_paced_playback};

/// Capture reads `input` (any channel count, rate and PCM/float format, downmixed to mono)
/// from the start on every [`Backend::start_capture`], one block per period, then silence
/// after its end; its device rate is the file's rate. Without an input file it captures
/// silence at 48 kHz.
///
/// Playback records to `output` as mono 16-bit PCM at 48 kHz (the network rate, so the
/// recording needs no resampling), consuming one block per period like a sound card and
/// recording silence when nothing is queued, so the file's timeline is real time. The
/// first playback stream of the process truncates the file, later ones append to it, from
/// whichever backend they come (each call, the ring and voice messages open their own):
/// it holds everything the daemon played, in order, one stream at a time. Without an
/// output file playback is discarded.
#[derive(Debug)]
pub struct FileBackend {
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    options: Options,
}

/// An output file of this process: its claim (one stream writes at a time) and whether a
/// stream has written it yet (then the next appends).
#[derive(Debug, Default)]
struct Output {
    claim: Arc<AtomicBool>,
    started: AtomicBool,
}

/// The output files this process has opened, by path.
static OUTPUTS: Mutex<Vec<(PathBuf, Arc<Output>)>> = Mutex::new(Vec::new());

fn output(path: &Path) -> Arc<Output> {
    let mut outputs = OUTPUTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, o)) = outputs.iter().find(|(p, _)| p == path) {
        return o.clone();
    }
    let o = Arc::new(Output::default());
    outputs.push((path.to_owned(), o.clone()));
    o
}

impl FileBackend {
    /// Checks that `input` (if any) is a readable WAV.
    pub fn new(
        input: Option<PathBuf>,
        output: Option<PathBuf>,
        options: Options,
    ) -> Result<FileBackend, AudioError> {
        if let Some(path) = &input {
            WavSource::open(path)?;
        }
        Ok(FileBackend {
            input,
            output,
            options,
        })
    }
}

impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn start_capture(&mut self) -> Result<Capture, AudioError> {
        let (source, rate) = match &self.input {
            Some(path) => {
                let wav = WavSource::open(path)?;
                let rate = wav.rate();
                (Source::Wav(wav), rate)
            }
            None => (Source::Silence, NULL_RATE),
        };
        start_paced_capture("audio-file-in", source, rate, self.options)
    }

    fn start_playback(&mut self) -> Result<Playback, AudioError> {
        let counters = Arc::new(StreamCounters::default());
        let sink = match &self.output {
            Some(path) => {
                let out = output(path);
                let claim = OutputClaim::take(&out.claim)
                    .ok_or_else(|| AudioError::OutputBusy { path: path.clone() })?;
                let append = out.started.load(Ordering::Acquire);
                let sink = WavSink::create(path, NULL_RATE, append, counters.clone(), claim)?;
                out.started.store(true, Ordering::Release);
                Sink::Wav(sink)
            }
            None => Sink::Discard,
        };
        start_paced_playback("audio-file-out", sink, NULL_RATE, self.options, counters)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

    use super::*;
    use crate::audio::backend::{NullBackend, recording_spec};

    /// Generous: these tests run beside others on a busy 2-core machine.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// Reads `n` samples from `capture`, polling with a deadline (the stream is paced).
    fn read_n(capture: &mut Capture, n: usize) -> Vec<f32> {
        let mut got = vec![0f32; n];
        let mut filled = 0;
        let deadline = Instant::now() + DEADLINE;
        while filled < n {
            assert!(
                Instant::now() < deadline,
                "only {filled} of {n} samples arrived"
            );
            filled += capture.read(&mut got[filled..]);
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A stereo 44.1 kHz WAV whose left and right channels average to `k + 1` for frame k.
    fn ramp_wav(path: &Path, frames: i16) {
        let spec = WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut w = WavWriter::create(path, spec).expect("create");
        for k in 0..frames {
            w.write_sample(k).expect("left");
            w.write_sample(k + 2).expect("right");
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn file_capture_delivers_the_wav_in_order_at_its_rate_then_silence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        ramp_wav(&path, 2205); // 50 ms
        let mut backend =
            FileBackend::new(Some(path), None, Options::default()).expect("valid input");
        let mut capture = backend.start_capture().expect("start");
        assert_eq!(capture.rate(), 44_100);
        let got = read_n(&mut capture, 2205 + 441);
        for (k, &s) in got[..2205].iter().enumerate() {
            assert_eq!(s, (k + 1) as f32 / 32768.0, "sample {k}");
        }
        assert!(got[2205..].iter().all(|&s| s == 0.0), "silence after EOF");
        assert_eq!(capture.counters().xruns, 0);
    }

    #[test]
    fn each_capture_starts_from_the_beginning_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        ramp_wav(&path, 100);
        let mut backend =
            FileBackend::new(Some(path), None, Options::default()).expect("valid input");
        for _ in 0..2 {
            let mut capture = backend.start_capture().expect("start");
            assert_eq!(
                read_n(&mut capture, 3),
                [1.0, 2.0, 3.0].map(|v| v / 32768.0)
            );
        }
    }

    #[test]
    fn file_playback_records_what_was_written_to_a_valid_wav() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let mut backend =
            FileBackend::new(None, Some(path.clone()), Options::default()).expect("new");
        let mut playback = backend.start_playback().expect("start");
        assert_eq!(playback.rate(), 48_000);
        let played: Vec<f32> = (1..=4800).map(|k| k as f32 / 32768.0).collect();
        assert_eq!(playback.write(&played), played.len());
        wait_until("the ring is drained", || playback.pending() == 0);
        drop(playback);

        let mut r = WavReader::open(&path).expect("a valid WAV");
        assert_eq!(r.spec(), recording_spec(48_000));
        let recorded: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
        let start = recorded
            .iter()
            .position(|&s| s != 0)
            .expect("the samples are in the recording");
        let expected: Vec<i16> = (1..=4800).collect();
        assert_eq!(recorded[start..start + 4800], expected[..]);
        assert!(recorded[start + 4800..].iter().all(|&s| s == 0));
    }

    #[test]
    fn later_playbacks_append_and_only_one_may_write_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        std::fs::write(&path, b"stale file from an earlier run").expect("write");
        let mut backend =
            FileBackend::new(None, Some(path.clone()), Options::default()).expect("new");
        let mut first = backend
            .start_playback()
            .expect("first truncates the stale file");
        assert!(matches!(
            backend.start_playback(),
            Err(AudioError::OutputBusy { .. })
        ));
        first.write(&[0.5]);
        wait_until("the first sample is played", || first.pending() == 0);
        drop(first);
        let len_after_first = WavReader::open(&path).expect("valid").len();
        assert!(len_after_first > 0);

        let mut second = backend.start_playback().expect("second appends");
        second.write(&[-0.5]);
        wait_until("the second sample is played", || second.pending() == 0);
        drop(second);
        let mut r = WavReader::open(&path).expect("valid");
        assert!(r.len() > len_after_first);
        let samples: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
        assert!(samples.contains(&16384) && samples.contains(&-16384));
        let first_pos = samples.iter().position(|&s| s == 16384);
        let second_pos = samples.iter().position(|&s| s == -16384);
        assert!(first_pos < second_pos);
    }

    #[test]
    fn a_second_backend_on_the_same_file_appends_and_waits_its_turn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let new = || FileBackend::new(None, Some(path.clone()), Options::default()).expect("new");
        let (mut ring, mut call) = (new(), new());
        let mut first = ring.start_playback().expect("the first truncates");
        assert!(matches!(
            call.start_playback(),
            Err(AudioError::OutputBusy { .. })
        ));
        first.write(&[0.5]);
        wait_until("the first sample is played", || first.pending() == 0);
        drop(first);
        let mut second = call.start_playback().expect("free again");
        second.write(&[-0.5]);
        wait_until("the second sample is played", || second.pending() == 0);
        drop(second);
        let samples: Vec<i16> = WavReader::open(&path)
            .expect("valid")
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        let at = |v| samples.iter().position(|&s| s == v);
        assert!(
            at(16384).is_some() && at(16384) < at(-16384),
            "both, in order"
        );
    }

    #[test]
    fn a_missing_input_wav_is_reported_when_the_backend_is_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = FileBackend::new(Some(dir.path().join("nope.wav")), None, Options::default())
            .expect_err("missing file");
        assert!(matches!(err, AudioError::WavOpen { .. }), "{err}");
        assert!(err.to_string().contains("nope.wav"), "{err}");
    }

    #[test]
    fn without_files_the_file_backend_behaves_like_null() {
        let mut backend = FileBackend::new(None, None, Options::default()).expect("new");
        let mut capture = backend.start_capture().expect("capture");
        assert_eq!(capture.rate(), 48_000);
        assert!(read_n(&mut capture, 480).iter().all(|&s| s == 0.0));
        let mut playback = backend.start_playback().expect("playback");
        playback.write(&[0.25; 480]);
        wait_until("discarded", || playback.pending() == 0);
    }

    #[test]
    fn null_backend_captures_silence_and_consumes_playback_in_real_time() {
        let mut backend = NullBackend::new(Options {
            period: crate::audio::backend::Period::Ms20,
            ..Options::default()
        });
        assert_eq!(backend.kind(), "null");
        let mut capture = backend.start_capture().expect("capture");
        assert_eq!(capture.rate(), 48_000);
        assert!(read_n(&mut capture, 1920).iter().all(|&s| s == 0.0));
        let mut playback = backend.start_playback().expect("playback");
        assert_eq!(playback.rate(), 48_000);
        assert_eq!(playback.free(), Options::default().ring_capacity(48_000));
        assert_eq!(playback.write(&[0.1; 960]), 960);
        wait_until("played", || playback.pending() == 0);
        wait_until("counted", || playback.counters().frames >= 960);
    }
}
