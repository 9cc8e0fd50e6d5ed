//! The clean-path promise on speech rather than a tone: a talker with pauses, so that the
//! encoder's DTX stops sending in them and sends a comfort-noise update now and then, over
//! a clean path, to a listener whose speaker takes audio in bursts (a PipeWire quantum)
//! and whose pipeline ticks every 5 ms. Nothing is lost, so nothing may be concealed,
//! skipped or dropped, and the pauses must be told apart from loss.

use super::sim::{Party, Sim};

const S: u64 = 1_000_000;

/// A voiced-speech stand-in with pauses: harmonics of a gliding 100–200 Hz pitch under a
/// syllable-rate envelope for `talk_s`, then `pause_s` of digital silence, over and over
/// (as the espeak clips of the speech bench are: sentences between silences).
pub(super) fn speech_with_pauses(rate: u32, seconds: f64, talk_s: f64, pause_s: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            if t % (talk_s + pause_s) >= talk_s {
                return 0.0;
            }
            let f0 = 150.0 + 50.0 * (std::f64::consts::TAU * 3.0 * t).sin();
            phase += std::f64::consts::TAU * f0 / f64::from(rate);
            let env = 0.2 + 0.8 * (std::f64::consts::TAU * 4.0 * t).sin().abs();
            let voiced: f64 = (1..=12).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            (0.15 * env * voiced) as f32
        })
        .collect()
}

fn run(quantum_us: u64, seed: u64) {
    let seconds = 20.0;
    let mut sim = Sim::new(
        Party::new(1, 48_000, speech_with_pauses(48_000, seconds, 1.3, 0.9)),
        Party::new(2, 48_000, Vec::new()),
        seed,
    );
    sim.b.speaker_quantum_us = quantum_us;
    sim.run_until(seconds + 0.5);
    let end = *sim.b.log.last().expect("ticked");
    let (j, m) = (end.jitter, end.media);
    let why = format!("speaker quantum {quantum_us} µs: {m:?} {j:?}");
    eprintln!("{why}");
    // The talker's DTX really paused: fewer packets than frames.
    assert!(j.received < (seconds * 50.0) as u64 * 9 / 10, "{why}");
    assert_eq!((j.lost, j.late, j.dropped), (0, 0, 0), "{why}");
    assert_eq!((m.concealed, j.concealed), (0, 0), "{why}");
    // Speech is never skipped; silence at most once, when the floor of a frame the jitter
    // buffer starts with gives way to the jitter it measured (in the first pause after
    // its window has seen the path: `MediaPipeline::tick`).
    assert!(j.skipped <= 1, "{why}");
    // The pauses are told apart from loss: the decoder's comfort noise after each of the
    // encoder's updates counts as DTX.
    assert!(m.dtx > 0, "{why}");
    // The delay moved only while settling in the first second (the start-up wait, and
    // for a bursty speaker the first early pop): no stretching or time-scaling after.
    let settled = sim.b.log_at(S);
    assert!(settled.jitter.stretched <= 1, "{why}");
    assert!(
        settled.jitter.expanded + settled.jitter.accelerated <= 1,
        "{why}"
    );
    assert_eq!(
        (j.stretched, j.expanded, j.accelerated),
        (
            settled.jitter.stretched,
            settled.jitter.expanded,
            settled.jitter.accelerated
        ),
        "{why}"
    );
    assert_eq!(sim.b.decode_errors, 0, "{why}");
}

#[test]
fn speech_with_dtx_pauses_over_a_clean_path_is_never_concealed_or_skipped() {
    run(0, 11);
}

#[test]
fn speech_with_dtx_pauses_to_a_bursty_speaker_is_never_concealed_or_skipped() {
    run(21_333, 12);
}

/// Speech with pauses through 0–30 ms of jitter (packets 20 ms apart overtake each other):
/// the buffer grows to cover it by playing speech longer and settles by playing it
/// shorter or by shortening pauses, so every packet is played, none skipped or dropped,
/// and nothing concealed.
#[test]
fn speech_through_jitter_is_played_whole_by_time_scaling() {
    let seconds = 20.0;
    let mut sim = Sim::new(
        Party::new(1, 48_000, speech_with_pauses(48_000, seconds, 1.3, 0.9)),
        Party::new(2, 48_000, Vec::new()),
        13,
    );
    sim.ab.path.jitter_ms = 30;
    sim.run_until(seconds + 0.5);
    let end = *sim.b.log.last().expect("ticked");
    let (j, m) = (end.jitter, end.media);
    let why = format!("{m:?} {j:?}");
    eprintln!("{why}");
    assert_eq!((j.lost, j.late, j.dropped), (0, 0, 0), "{why}");
    assert_eq!(m.decoded, j.received, "{why}");
    assert_eq!(m.concealed, 0, "{why}");
    assert!(j.target_ms >= 25, "{why}");
    assert_eq!(sim.b.decode_errors, 0, "{why}");
}
