//! The real cpal path, through ALSA's `file` plugin instead of a sound card
//! (`shared/fixtures/alsa-file.conf`, design §Testing audio without a sound card).
//!
//! alsa-lib reads its configuration once per process, so the ALSA work runs in a child
//! process — this test binary re-run on one ignored test — with `ALSA_CONFIG_PATH`,
//! `TEST_ALSA_IN` and `TEST_ALSA_OUT` set before anything touches ALSA. The plugin is not
//! paced (it runs ~1000× real time), so everything is counted in frames, never in seconds.
//!
//! Both directions are compared sample for sample, not only by tone: that is how we found
//! that with an `f32` stream ALSA's `plug` conversion over the file plugin reads the input
//! file twice as fast as it delivers it (every other period is skipped, invisible to a pure
//! tone check). The backend prefers 16-bit streams, which keep that layer out of the path.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use phoned::audio::backend::{Backend, Capture, CpalBackend, Options, Playback};

/// Set (to the scratch directory) only in the child process.
const CHILD_ENV: &str = "PHONED_ALSA_TEST_DIR";
const CHILD_TEST: &str = "alsa_child_runs_capture_and_playback";

const RATE: u32 = 48_000;
/// Frames checked in each direction: one second.
const N: usize = 48_000;
/// Capture input length: far more than is read before the stream is dropped, because after
/// its end the plugin repeats stale buffer contents instead of silence.
const INPUT_SECONDS: usize = 20;
/// Only for a hung child; the work itself takes well under a second.
const DEADLINE: Duration = Duration::from_secs(60);

/// `freq` Hz at half scale plus a little deterministic noise, so that no two stretches of
/// the signal are alike and a skipped or repeated block cannot go unnoticed.
fn tone(freq: f32, n: usize) -> Vec<i16> {
    let mut lcg: u32 = 12345;
    (0..n)
        .map(|i| {
            lcg = lcg.wrapping_mul(1664525).wrapping_add(1013904223);
            let noise = (lcg >> 28) as f32 - 8.0;
            // `i % RATE` keeps the f32 phase exact; both tones repeat every second.
            let phase = TAU * freq * (i % RATE as usize) as f32 / RATE as f32;
            (0.5 * 32767.0 * phase.sin() + noise).round() as i16
        })
        .collect()
}

/// The signal the child plays: 600 Hz, distinct from the 1 kHz capture tone.
fn played_signal() -> Vec<f32> {
    tone(600.0, N)
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect()
}

/// Power at `freq` (Goertzel), normalised: a sine of amplitude `a` gives about `a² / 4`.
fn goertzel(x: &[f32], freq: f32) -> f32 {
    let coeff = 2.0 * (TAU * freq / RATE as f32).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() * x.len()) as f32
}

fn assert_tone(x: &[f32], freq: f32) {
    let power = goertzel(x, freq);
    assert!(
        (power - 0.0625).abs() < 0.01,
        "{freq} Hz at amplitude 0.5 expected, power {power}"
    );
    for other in [freq * 0.8, freq * 1.25, 2.0 * freq] {
        let p = goertzel(x, other);
        assert!(power > 1000.0 * p, "{freq} Hz {power} vs {other} Hz {p}");
    }
}

fn write_raw(path: &Path, samples: &[i16]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write raw input");
}

fn read_raw(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).expect("read raw output");
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn fixture() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/alsa-file.conf");
    path.canonicalize()
        .unwrap_or_else(|e| panic!("ALSA fixture {}: {e}", path.display()))
}

#[test]
fn cpal_backend_moves_audio_through_the_alsa_file_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.raw");
    let output = dir.path().join("out.raw");
    write_raw(&input, &tone(1000.0, INPUT_SECONDS * RATE as usize));
    // The shared fixture, plus two named PCMs with hints so cpal lists them and the
    // by-name device lookup can be tested.
    let conf = dir.path().join("alsa.conf");
    std::fs::write(
        &conf,
        format!(
            "<{}>\n\
             pcm.phoned_test_out {{ type plug slave.pcm \"test_play\" \
               hint {{ show on description \"phoned test speaker\" }} }}\n\
             pcm.phoned_test_in {{ type plug slave.pcm \"test_cap\" \
               hint {{ show on description \"phoned test microphone\" }} }}\n",
            fixture().display()
        ),
    )
    .expect("write ALSA config");

    let child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .env("ALSA_CONFIG_PATH", &conf)
        .env("TEST_ALSA_IN", &input)
        .env("TEST_ALSA_OUT", &output)
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "child failed ({}):\n{stdout}\n{stderr}",
        child.status
    );
    print!("{stdout}");
}

/// Polls `done` until it holds; the deadline only catches a hung device.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn capture_checks(capture: &mut Capture) {
    assert_eq!(capture.rate(), RATE, "the plug device offers 48 kHz");
    // The ring holds two seconds, so the first N frames stay contiguous: once it is full
    // the callback drops the newest frames (counted as overruns), never the oldest.
    wait_for("N captured frames", || capture.available() >= N);
    let mut got = vec![0f32; N];
    assert_eq!(capture.read(&mut got), N);
    assert!(capture.counters().frames >= N as u64);
    assert_tone(&got, 1000.0);
    let expected = tone(1000.0, N);
    let differing = got
        .iter()
        .zip(&expected)
        .filter(|(g, e)| (*g * 32768.0 - f32::from(**e)).abs() > 1.0)
        .count();
    assert_eq!(
        differing, 0,
        "captured samples are the input file's, in order"
    );
}

/// Checks what the plugin wrote to `TEST_ALSA_OUT`: S16_LE 48 kHz mono. Silence until the
/// signal was queued (the device plays silence while the ring is empty), then the signal,
/// sample for sample, then silence again.
fn check_recording(path: &Path) {
    let recorded = read_raw(path);
    let expected = tone(600.0, N);
    let head = &expected[..64];
    let start = recorded
        .windows(head.len())
        .position(|w| w == head)
        .expect("the output file holds the played signal");
    assert!(
        recorded[..start].iter().all(|&s| s == 0),
        "silence before it"
    );
    assert!(recorded.len() >= start + N, "output too short");
    let differing = recorded[start..start + N]
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a.abs_diff(**b) > 1)
        .count();
    assert_eq!(differing, 0, "played samples altered on the way");
    let as_f32: Vec<f32> = recorded[start..start + N]
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    assert_tone(&as_f32, 600.0);
    assert!(recorded[start + N..].iter().all(|&s| s == 0));
    println!(
        "output file: {} frames, signal at frame {start}",
        recorded.len()
    );
}

fn playback_checks(playback: &mut Playback) {
    assert_eq!(playback.rate(), RATE);
    let signal = played_signal();
    let before = playback.counters().frames;
    // One write, so the callback sees all of it at once and never underruns inside it.
    assert_eq!(playback.write(&signal), N);
    wait_for("the signal to be played", || {
        playback.pending() == 0 && playback.counters().frames >= before + N as u64
    });
}

#[test]
#[ignore = "the ALSA half of cpal_backend_moves_audio_through_the_alsa_file_plugin; needs its child environment"]
fn alsa_child_runs_capture_and_playback() {
    if std::env::var_os(CHILD_ENV).is_none() {
        eprintln!("{CHILD_ENV} not set: run the parent test instead");
        return;
    }
    let options = Options {
        ring_ms: 2000,
        ..Options::default()
    };

    // Default devices: the fixture's asym of the file plugins.
    let mut backend = CpalBackend::new(None, None, options);
    assert_eq!(backend.kind(), "cpal");
    let mut capture = backend
        .start_capture()
        .expect("open the default capture device");
    capture_checks(&mut capture);
    drop(capture);
    let mut playback = backend
        .start_playback()
        .expect("open the default playback device");
    playback_checks(&mut playback);
    let counters = playback.counters();
    // Dropping the stream closes the PCM, which flushes the plugin's output file.
    drop(playback);
    println!("playback counters: {counters:?}");
    check_recording(Path::new(
        &std::env::var_os("TEST_ALSA_OUT").expect("TEST_ALSA_OUT is set"),
    ));

    // Devices by name: by id for capture, by description for playback.
    let inputs = backend
        .devices(phoned::audio::backend::Direction::Capture)
        .expect("list input devices");
    let outputs = backend
        .devices(phoned::audio::backend::Direction::Playback)
        .expect("list output devices");
    println!("devices: in {inputs:?}, out {outputs:?}");
    assert!(
        inputs.iter().any(|(id, _, _)| id == "phoned_test_in"),
        "{inputs:?}"
    );
    let mut named = CpalBackend::new(
        Some("phoned_test_in".into()),
        Some("phoned test speaker".into()),
        options,
    );
    let mut capture = named.start_capture().expect("capture device by id");
    capture_checks(&mut capture);
    drop(capture);
    let playback = named
        .start_playback()
        .expect("playback device by description");
    assert_eq!(playback.rate(), RATE);
    drop(playback);

    let mut missing = CpalBackend::new(Some("no_such_device".into()), None, options);
    let err = missing
        .start_capture()
        .err()
        .expect("an unknown device name is an error");
    let message = err.to_string();
    assert!(
        message.contains("no_such_device") && message.contains("phoned_test_in"),
        "{message}"
    );
}
