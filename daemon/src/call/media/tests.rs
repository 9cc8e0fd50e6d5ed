//! The pipeline's call-control decisions, each on virtual time through `sim.rs`: mute,
//! hold, a far side that restarts its stream, datagrams that are not for us.

use bytes::Bytes;

use super::playback_queue;
use super::sim::{CALL, FarSide, Party, Sim, assert_tone, dbfs, listen, tone};
use crate::audio::analysis::goertzel_power;
use crate::audio::codec::FrameDuration;
use crate::audio::resample::FRAME;

const S: u64 = 1_000_000;

#[test]
fn the_playback_queue_covers_the_devices_block() {
    // Nothing played yet: the floor.
    assert_eq!(playback_queue(48_000, 0), 480);
    assert_eq!(playback_queue(44_100, 0), 441);
    // The file backend's 10 ms, ALSA dmix's 1024-frame periods: the block, which the media
    // thread tops up as soon as the device has taken one.
    assert_eq!(playback_queue(48_000, 480), 480);
    assert_eq!(playback_queue(48_000, 1024), 1024);
}

#[test]
fn muted_sends_only_silence_and_unmuting_sends_the_voice_again() {
    let mut sim = Sim::new(
        Party::new(1, 48_000, tone(48_000, 4.0, 1000.0, 0.5)),
        Party::new(2, 48_000, Vec::new()),
        11,
    );
    sim.a.flags.muted = true;
    sim.run_until(2.0);
    let muted = sim.a.sent.len();
    // Every frame sent while muted is marked silent, and DTX keeps them few.
    assert!(sim.a.sent.iter().all(|(_, f)| f.level == 127));
    assert!(
        muted < 30,
        "{muted} packets sent for 2 s of muted microphone"
    );
    let heard = dbfs(sim.b.heard_between(0.0, 2.0));
    assert!(heard < -60.0, "B heard {heard:.1} dBFS from a muted A");

    sim.a.flags.muted = false;
    sim.run_until(4.0);
    let voice = &sim.a.sent[muted..];
    assert!(voice.len() >= 95, "{} packets after unmuting", voice.len());
    assert!(voice.iter().all(|(_, f)| f.level < 127));
    assert_tone(&sim.b, 2.2, 4.0, 1000.0);
}

#[test]
fn on_hold_nothing_is_sent_silence_is_played_and_the_call_resumes() {
    let mut sim = Sim::new(
        Party::new(1, 48_000, tone(48_000, 6.0, 1000.0, 0.5)),
        Party::new(2, 48_000, tone(48_000, 6.0, 700.0, 0.5)),
        12,
    );
    sim.run_until(2.0);
    sim.a.flags.paused = true;
    sim.run_until(4.0);
    sim.a.flags.paused = false;
    sim.run_until(6.0);

    let sent = |range: std::ops::Range<u64>| {
        sim.a
            .sent
            .iter()
            .filter(move |(at, _)| range.contains(at))
            .map(|(_, f)| f)
    };
    assert_eq!(sent(2 * S..4 * S).count(), 0, "sent on hold");
    // The sample clock ran on through the hold: the next packet continues the sequence
    // but is two seconds later in time, so the far side sees a pause, not loss.
    let before = sent(0..2 * S).next_back().expect("sent before the hold");
    let after = sent(4 * S..6 * S).next().expect("sent after the hold");
    assert_eq!(after.seq, before.seq + 1);
    let gap = i64::from(after.timestamp.wrapping_sub(before.timestamp));
    assert!(
        (gap - 96_000).abs() <= 2 * FRAME as i64,
        "timestamp gap {gap}"
    );
    // B talks throughout; A plays exact silence once its queued 35 ms at most are out.
    let on_hold = sim.a.heard_between(2.04, 4.0);
    assert!(
        on_hold.iter().all(|&x| x == 0.0),
        "A played B's voice on hold"
    );
    assert_eq!(sim.a.underruns, 0);
    // Both hear each other again half a second after the hold.
    assert_tone(&sim.a, 4.5, 6.0, 700.0);
    assert_tone(&sim.b, 4.5, 6.0, 1000.0);
}

#[test]
fn a_sequence_jump_resets_the_decoder_and_the_new_stream_plays() {
    let mut b = Party::new(2, 48_000, Vec::new());
    let mut far = FarSide::new();
    // At 1.5 s the far side restarts its stream: sequence numbers jump by 5000.
    listen(&mut b, &mut far, 3.0, |far, now| {
        if now == 1_500_000 {
            far.seq = far.seq.wrapping_add(5000);
        }
    });
    assert_eq!(b.log_at(S + S / 2).media.decoder_resets, 0);
    assert_eq!(b.resets, 1);
    let stats = b.pipeline.stats();
    assert_eq!(stats.decoder_resets, 1, "{stats:?}");
    assert_eq!(b.pipeline.jitter_stats().resyncs, 1);
    // The jitter buffer drops the old stream's last packets and starts over; the listener
    // hears at most a frame or two of silence, never a concealment of the old stream.
    assert_eq!(stats.concealed, 0, "{stats:?}");
    assert_tone(&b, 0.5, 1.5, 1000.0);
    assert_tone(&b, 1.7, 2.9, 1000.0);
}

#[test]
fn datagrams_of_other_calls_our_own_and_garbage_are_dropped() {
    let mut b = Party::new(2, 48_000, Vec::new());
    let mut far = FarSide::new();
    b.deliver(1_000, 1, far.next(CALL + 1, 1));
    b.deliver(1_000, 2, far.next(CALL, 2));
    b.deliver(1_000, 3, Bytes::from_static(b"\xff\xff not a frame"));
    b.step(7_000); // B ticks at 2 ms + k · 5 ms.
    let stats = b.pipeline.stats();
    assert_eq!((stats.datagrams, stats.foreign), (3, 3), "{stats:?}");
    assert_eq!(b.pipeline.jitter_stats().received, 0);
}

#[test]
fn a_conferences_three_speakers_are_mixed_without_clipping_and_a_fourth_is_dropped() {
    let mut b = Party::new(2, 48_000, Vec::new());
    // Three loud talkers (sources 1, 3, 4: 1 kHz, 600 Hz, 1.5 kHz at -6 dBFS each: their
    // sum would clip), and from 1 s a fourth (2.2 kHz) the relay would not forward at
    // that moment but that gets through.
    let mut talkers = [
        (1, FarSide::with_tone(1000.0, 0.5)),
        (3, FarSide::with_tone(600.0, 0.5)),
        (4, FarSide::with_tone(1500.0, 0.5)),
        (5, FarSide::with_tone(2200.0, 0.5)),
    ];
    let mut now = 0;
    let mut order = 0;
    while now < 3 * S {
        now += 1_000;
        for (i, (source, far)) in talkers.iter_mut().enumerate() {
            if i == 3 && now < S {
                continue;
            }
            // Every talker sends a frame each 20 ms, at its own offset.
            if (now + i as u64 * 3_000).is_multiple_of(20_000) {
                order += 1;
                b.deliver(now + 30_000, order, far.next(CALL, *source));
            }
        }
        b.step(now);
    }
    let stats = b.pipeline.stats();
    assert!(stats.mixed_frames > 100, "{stats:?}");
    assert!(stats.dropped_streams > 0, "{stats:?}");
    let heard = b.heard_between(1.5, 2.9);
    assert!(heard.iter().all(|x| x.abs() <= 1.0), "the mix clipped");
    for freq in [1000.0, 600.0, 1500.0] {
        let power = goertzel_power(heard, 48_000.0, freq);
        assert!(power > 0.01, "power at {freq} Hz: {power}");
    }
    let fourth = goertzel_power(heard, 48_000.0, 2200.0);
    assert!(fourth < 0.001, "the fourth speaker was played: {fourth}");
}

/// A conference whose speakers send frames of different lengths: `primary_frame` from the
/// first far source (1 kHz), `extra_frame` from a second (600 Hz), each at −13 dBFS (their
/// sum below the limiter's knee). Both are heard whole: in every 20 ms the energy at each
/// frequency is most of the tone's.
fn mixed_frames(primary_frame: FrameDuration, extra_frame: FrameDuration) {
    let mut b = Party::new(2, 48_000, Vec::new());
    let mut talkers = [
        (1, FarSide::with_frame(1000.0, 0.25, primary_frame)),
        (3, FarSide::with_frame(600.0, 0.25, extra_frame)),
    ];
    let mut now = 0;
    let mut order = 0;
    while now < 3 * S {
        now += 1_000;
        for (i, (source, far)) in talkers.iter_mut().enumerate() {
            // The first far source is the first heard (from 1 ms), the second starts 3 ms
            // later.
            let period = u64::from(far.frame().millis()) * 1_000;
            if now
                .checked_sub(1_000 + i as u64 * 3_000)
                .is_some_and(|t| t.is_multiple_of(period))
            {
                order += 1;
                b.deliver(now + 30_000, order, far.next(CALL, *source));
            }
        }
        b.step(now);
    }
    assert_eq!(b.pipeline.receive_frame(), primary_frame);
    let stats = b.pipeline.stats();
    assert!(stats.mixed_frames > 100, "{stats:?}");
    assert_eq!(b.decode_errors, 0);
    let heard = b.heard_between(1.5, 2.9);
    // A full-scale sine gives 0.25: all of a ±0.25 tone's energy is 0.015625.
    for (k, piece) in heard.chunks_exact(960).enumerate() {
        for freq in [1000.0, 600.0] {
            let power = goertzel_power(piece, 48_000.0, freq);
            assert!(
                power > 0.01,
                "power at {freq} Hz in the 20 ms from {:.2} s: {power}",
                1.5 + k as f64 * 0.02
            );
        }
    }
}

#[test]
fn a_conference_mixes_a_10_ms_speaker_into_20_ms_frames() {
    mixed_frames(FrameDuration::Ms20, FrameDuration::Ms10);
}

#[test]
fn a_conference_mixes_a_20_ms_speaker_into_10_ms_frames() {
    mixed_frames(FrameDuration::Ms10, FrameDuration::Ms20);
}
