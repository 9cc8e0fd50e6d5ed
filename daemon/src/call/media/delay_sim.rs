//! What keeps mouth-to-ear delay down, on virtual time through `sim.rs`: 10 ms frames
//! (`[audio] frame_ms = 10`) played whole over a clean path, a party sending 20 ms frames
//! heard by one sending 10 ms (and the other way), and a jitter buffer whose floor follows
//! the jitter it measures: nothing but a small margin on a clean path, grown by
//! time-scaling when jitter appears, a frame while packets are lost so that FEC is in time.

use super::sim::{Party, Sim, assert_tone, tone, when_played};
use super::speech_sim::speech_with_pauses;
use crate::audio::codec::FrameDuration::{Ms10, Ms20};

const S: u64 = 1_000_000;

#[test]
fn ten_ms_frames_over_a_clean_path_conceal_nothing_both_ways() {
    // Both ways at once, each side talking for 10 s; a 44.1 kHz sound card on one side.
    let mut sim = Sim::new(
        Party::with_frame(1, 44_100, tone(44_100, 10.0, 1000.0, 0.5), Ms10),
        Party::with_frame(2, 48_000, tone(48_000, 10.0, 700.0, 0.5), Ms10),
        21,
    );
    sim.run_until(10.5);
    for (talker, listener, freq) in [(&sim.a, &sim.b, 1000.0), (&sim.b, &sim.a, 700.0)] {
        // A hundred packets a second.
        let sent = talker.sent.iter().filter(|(at, _)| *at < 10 * S).count();
        assert!((990..=1000).contains(&sent), "{sent} sent");
        let done = when_played(talker, listener, 10.0);
        let (j, m) = (done.jitter, done.media);
        assert_eq!(listener.pipeline.receive_frame(), Ms10);
        // Every packet decoded, in its turn: no loss, no FEC, no concealment, no skip.
        assert_eq!(
            (
                m.concealed,
                m.recovered,
                j.lost,
                j.late,
                j.dropped,
                j.skipped
            ),
            (0, 0, 0, 0, 0, 0),
            "{m:?} {j:?}"
        );
        assert_eq!(m.decoded, j.received - u64::from(j.buffered), "{m:?} {j:?}");
        assert_eq!((listener.decode_errors, listener.resets), (0, 0));
        assert_eq!(listener.underruns, 0);
        assert_tone(listener, 0.5, 10.0, freq);
    }
}

#[test]
fn speech_with_dtx_pauses_in_ten_ms_frames_is_never_concealed_or_skipped() {
    let seconds = 20.0;
    let mut sim = Sim::new(
        Party::with_frame(
            1,
            48_000,
            speech_with_pauses(48_000, seconds, 1.3, 0.9),
            Ms10,
        ),
        Party::with_frame(2, 48_000, Vec::new(), Ms10),
        22,
    );
    sim.run_until(seconds + 0.5);
    let end = *sim.b.log.last().expect("ticked");
    let (j, m) = (end.jitter, end.media);
    let why = format!("{m:?} {j:?}");
    // The talker's DTX really paused.
    assert!(j.received < (seconds * 100.0) as u64 * 9 / 10, "{why}");
    assert_eq!((j.lost, j.late, j.dropped), (0, 0, 0), "{why}");
    assert_eq!((m.concealed, j.concealed), (0, 0), "{why}");
    // Silence skipped at most once: when the floor it starts with gives way.
    assert!(j.skipped <= 1, "{why}");
    assert!(m.dtx > 0, "{why}");
    assert_eq!(sim.b.decode_errors, 0, "{why}");
}

/// One side configured for 10 ms frames, the other for 20 ms: each sends its own, and
/// each plays what the other sends, set up for it by the far side's first packet.
#[test]
fn a_ten_ms_talker_and_a_twenty_ms_talker_hear_each_other_whole() {
    let mut sim = Sim::new(
        Party::with_frame(1, 48_000, tone(48_000, 8.0, 1000.0, 0.5), Ms10),
        Party::with_frame(2, 44_100, tone(44_100, 8.0, 700.0, 0.5), Ms20),
        23,
    );
    sim.run_until(8.5);
    assert_eq!(sim.b.pipeline.receive_frame(), Ms10);
    assert_eq!(sim.a.pipeline.receive_frame(), Ms20);
    for (talker, listener, freq) in [(&sim.a, &sim.b, 1000.0), (&sim.b, &sim.a, 700.0)] {
        let done = when_played(talker, listener, 8.0);
        let (j, m) = (done.jitter, done.media);
        assert_eq!(
            (m.concealed, m.recovered, j.lost, j.late, j.dropped),
            (0, 0, 0, 0, 0),
            "{m:?} {j:?}"
        );
        // Each took the other's first packet as the start of a new stream.
        assert_eq!(listener.resets, 1);
        assert_eq!(listener.decode_errors, 0);
        assert_tone(listener, 0.5, 8.0, freq);
    }
}

/// A clean path, then a path with 0–30 ms of jitter, then clean again, under speech with
/// pauses in 10 ms frames: the target sits at the margin over the (nil) measured jitter
/// while the path is clean, grows to cover the jitter when it appears, the delay following
/// it by playing speech longer, and comes back down once the jitter has left the window.
#[test]
fn the_jitter_floor_follows_the_measured_jitter() {
    let seconds = 24.0;
    let mut sim = Sim::new(
        Party::with_frame(
            1,
            48_000,
            speech_with_pauses(48_000, seconds, 1.3, 0.9),
            Ms10,
        ),
        Party::with_frame(2, 48_000, Vec::new(), Ms10),
        24,
    );
    sim.run_until(6.0);
    let clean = sim.b.log_at(6 * S);
    assert!(clean.jitter.target_ms <= 3, "{clean:?}");
    assert!(clean.jitter.delay_ms <= 15, "{clean:?}");
    assert_eq!(clean.media.concealed, 0, "{clean:?}");
    sim.ab.path.jitter_ms = 30;
    sim.run_until(14.0);
    sim.ab.path.jitter_ms = 0;
    sim.run_until(seconds + 0.5);
    let jittery = sim.b.log_at(14 * S);
    let (j, m) = (jittery.jitter, jittery.media);
    let why = format!("{m:?} {j:?}");
    assert!(j.target_ms >= 25, "{why}");
    // It grew by playing speech longer or holding silences. What it concealed were the
    // packets late in the first few hundred ms of speech (the talker pauses from 5.5 to
    // 6.6 s), before the window had seen enough of the jitter (the price of a floor at nil
    // where one of 20 ms would have hidden this much), and nothing after.
    let grown = |j: crate::audio::jitter::JitterStats| j.expanded + j.stretched;
    assert!(grown(j) > grown(clean.jitter), "{why}");
    let first = sim.b.log_at(7 * S).media.concealed;
    assert_eq!(m.concealed, first, "concealed after 7 s: {why}");
    assert!(first <= 8, "{why}");
    // Clean again: the window forgets the jitter, and the delay comes down to the target.
    let end = sim.b.log_at((seconds * S as f64) as u64);
    assert!(end.jitter.target_ms <= 3, "{end:?}");
    assert!(end.jitter.delay_ms <= 15, "{end:?}");
    assert_eq!(end.media.concealed, m.concealed, "{end:?}");
    assert_eq!(sim.b.decode_errors, 0);
}

/// On a clean path the floor is nil; from the first lost packet on it is a frame, so that
/// the next packet, and with it the lost one's FEC, is in time: the losses after the first
/// are all recovered.
#[test]
fn a_lost_packet_raises_the_floor_to_a_frame_for_fec() {
    let mut sim = Sim::new(
        Party::new(1, 48_000, speech_with_pauses(48_000, 10.0, 1.3, 0.9)),
        Party::new(2, 48_000, Vec::new()),
        25,
    );
    // Talking from 4.4 s: the frame sent a few after 4.8 s is lost.
    sim.run_until(4.8);
    let before = *sim.b.log.last().expect("ticked");
    assert!(before.jitter.target_ms <= 3, "{before:?}");
    let next = |sim: &Sim| sim.a.sent.last().expect("talking").1.seq + 3;
    sim.lose_from_a = vec![next(&sim)];
    sim.run_until(5.2);
    let lost = *sim.b.log.last().expect("ticked");
    assert_eq!(lost.jitter.lost, 1, "{lost:?}");
    assert!(lost.jitter.target_ms >= 20, "{lost:?}");
    // Two more in the next talkspurt, from 6.6 s.
    sim.run_until(7.0);
    sim.lose_from_a.extend([next(&sim), next(&sim) + 10]);
    sim.run_until(10.2);
    let end = when_played(&sim.a, &sim.b, 10.0);
    let (j, m) = (end.jitter, end.media);
    let why = format!("{m:?} {j:?}");
    // Lost at the jitter buffer, or filled from a copy once the far side saw the loss.
    assert_eq!(j.lost + m.repaired, 3, "{why}");
    assert!(m.concealed <= 1, "{why}");
    assert_eq!(m.recovered + m.concealed, j.lost, "{why}");
}
