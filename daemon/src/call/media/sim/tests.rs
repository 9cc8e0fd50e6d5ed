//! The pipeline on virtual time: a clean path, loss, duplicates, reordering, bursty devices,
//! clock drift, reports and copies (the harness is `sim.rs`).

use super::*;

#[test]
fn a_clean_path_conceals_nothing_and_plays_the_tone_without_a_gap() {
    // Both ways at once, each side talking for 10 s; a 44.1 kHz sound card on one side.
    let mut sim = Sim::new(
        Party::new(1, 44_100, tone(44_100, 10.0, 1000.0, 0.5)),
        Party::new(2, 48_000, tone(48_000, 10.0, 700.0, 0.5)),
        1,
    );
    sim.run_until(10.5);
    for (talker, listener, freq) in [(&sim.a, &sim.b, 1000.0), (&sim.b, &sim.a, 700.0)] {
        let done = when_played(talker, listener, 10.0);
        let (j, m) = (done.jitter, done.media);
        assert!(m.decoded >= 495, "{m:?}");
        // Every packet decoded, in its turn: no loss, no FEC, no concealment, no skip.
        assert_eq!(
            (m.concealed, m.recovered, j.lost, j.late, j.dropped),
            (0, 0, 0, 0, 0),
            "{m:?} {j:?}"
        );
        assert_eq!(m.decoded, j.received - u64::from(j.buffered), "{m:?} {j:?}");
        assert_eq!(listener.decode_errors, 0);
        assert_eq!(listener.underruns, 0);
        assert_tone(listener, 0.5, 10.0, freq);
    }
}

/// Eight seconds of A's tone to B (`reports`: whether B sends reports) with 10 % random
/// loss on the path from 1 s to 6 s: the run, how many frames A sent in the lossy
/// seconds, and B's log once it played what A sent before 6 s.
fn through_ten_percent_loss(reports: bool) -> (Sim, u64, TickLog) {
    let mut sim = one_way(8.0, 48_000, 44_100, 2);
    sim.no_reports = !reports;
    sim.ab.path.loss = 0.10;
    sim.lossy = (S, 6 * S);
    sim.run_until(8.2);
    let sent_in_loss = sim
        .a
        .sent
        .iter()
        .filter(|(at, _)| (S..6 * S).contains(at))
        .count() as u64;
    let after_loss = when_played(&sim.a, &sim.b, 6.0);
    (sim, sent_in_loss, after_loss)
}

#[test]
fn ten_percent_loss_is_recovered_or_concealed_and_the_call_recovers() {
    // Towards a receiver older than reports: plain frames, FEC and concealment.
    let (sim, sent_in_loss, after_loss) = through_ten_percent_loss(false);
    let (j, m) = (after_loss.jitter, after_loss.media);
    // About a tenth lost, and every lost frame filled by FEC or concealment.
    assert!(
        j.lost * 100 >= sent_in_loss * 7 && j.lost * 100 <= sent_in_loss * 13,
        "lost {} of {sent_in_loss}",
        j.lost
    );
    assert_eq!(m.recovered + m.concealed, j.lost, "{m:?} {j:?}");
    // Isolated losses are FEC's; only runs of two or more need concealment.
    assert!(m.recovered >= 2 * m.concealed, "{m:?}");
    // Then two seconds of a clean path: nothing more lost or concealed, the tone whole.
    let end = when_played(&sim.a, &sim.b, 8.0);
    assert_eq!(
        (end.jitter.lost, end.media.concealed),
        (j.lost, m.concealed),
        "{end:?}"
    );
    assert_tone(&sim.b, 6.5, 8.0, 1000.0);
    // Nothing but plain frames for a peer that never reported: it could read no other.
    assert!(sim.a.copies.iter().all(|&c| c == 0));
    assert_eq!(
        (
            m.reports_received,
            m.repaired,
            sim.a.pipeline.stats().redundancy
        ),
        (0, 0, 0)
    );
}

#[test]
fn duplicated_packets_are_dropped_and_nothing_is_concealed() {
    let mut sim = one_way(5.0, 48_000, 48_000, 3);
    sim.ab.path.duplicate = 0.3;
    sim.run_until(5.2);
    let end = when_played(&sim.a, &sim.b, 5.0);
    let (j, m) = (end.jitter, end.media);
    assert!(j.duplicates * 100 >= m.decoded * 20, "{j:?}");
    assert_eq!(
        m.decoded + j.duplicates,
        j.received - u64::from(j.buffered),
        "{m:?} {j:?}"
    );
    assert_eq!((m.concealed, j.dropped), (0, 0), "{m:?} {j:?}");
    assert_tone(&sim.b, 0.5, 5.0, 1000.0);
}

#[test]
fn reordering_within_the_jitter_target_conceals_nothing() {
    let mut sim = one_way(10.0, 48_000, 48_000, 4);
    // Up to 30 ms of jitter: packets 20 ms apart overtake each other.
    sim.ab.path.jitter_ms = 30;
    sim.run_until(10.2);
    let end = when_played(&sim.a, &sim.b, 10.0);
    let (j, m) = (end.jitter, end.media);
    assert!(j.target_ms >= 25, "{j:?}");
    assert_eq!((m.concealed, j.lost, j.late), (0, 0, 0), "{m:?} {j:?}");
    // The first packets set a base that the faster ones after them lower by up to the
    // jitter: the buffer may skip one frame to settle, before the listener hears much.
    let settled = sim.b.log_at(S);
    assert!(settled.jitter.dropped <= 1, "{settled:?}");
    assert_eq!(j.dropped, settled.jitter.dropped, "{j:?}");
    assert_eq!(
        m.decoded + j.dropped,
        j.received - u64::from(j.buffered),
        "{m:?} {j:?}"
    );
    assert_tone(&sim.b, 0.5, 10.0, 1000.0);
}

/// The speaker of the PipeWire call test: pipewire-pulse hands out room a 21.3 ms quantum
/// at a time, so the 20 ms blocks leave the queue 21.3 ms apart and every 16th at once, and
/// the pipeline pops that frame a whole frame early. The jitter buffer settles on the
/// earliest pops (one stretch at the first burst) and then plays every packet in turn.
#[test]
fn a_speaker_taking_audio_a_pipewire_quantum_at_a_time_plays_the_tone_whole() {
    let mut sim = one_way(10.0, 48_000, 48_000, 6);
    sim.b.speaker_quantum_us = 21_333;
    sim.run_until(10.2);
    let settled = sim.b.log_at(S);
    let end = when_played(&sim.a, &sim.b, 10.0);
    let (j, m) = (end.jitter, end.media);
    assert!((19..=22).contains(&j.playout_jitter_ms), "{j:?}");
    assert_eq!(
        (j.lost, j.dropped, j.skipped, m.concealed),
        (0, 0, 0, settled.media.concealed),
        "{m:?} {j:?}"
    );
    assert!(settled.media.concealed <= 1, "{settled:?}");
    // The first double block may find the queue a few samples short (the playback
    // resampler's first frame is shorter by its delay); from then on the queue covers it
    // (`demand.rs`).
    assert!(sim.b.underruns <= 1, "{}", sim.b.underruns);
    assert!(
        sim.b.last_underrun_us.is_none_or(|t| t < S),
        "{:?}",
        sim.b.last_underrun_us
    );
    assert_tone(&sim.b, 0.5, 10.0, 1000.0);
}

/// A speaker that stalls for 30 ms every 2 s and then takes the 30 ms at once (PulseAudio's
/// null sinks on a loaded machine): the first catch-up may find the queue short, after
/// which the queue covers it (`demand.rs`), so the listener hears no more gaps.
#[test]
fn a_speaker_that_catches_up_in_bursts_is_given_the_queue_it_needs() {
    let mut sim = one_way(10.0, 48_000, 48_000, 5);
    sim.b.speaker_stalls = Some((2 * S, 30 * MS));
    sim.run_until(10.2);
    // The catch-ups at 2, 4, 6 and 8 s find enough queued.
    assert!(
        sim.b.last_underrun_us.is_none_or(|t| t < 2 * S + 100 * MS),
        "{} underruns, the latest at {:?} µs",
        sim.b.underruns,
        sim.b.last_underrun_us
    );
    assert_tone(&sim.b, 2.5, 10.0, 1000.0);
}

/// A minute of a call between sound cards whose clocks differ by 200 ppm (12 ms over the
/// minute): the jitter buffer absorbs it, so neither the speaker's queue nor the delay
/// creeps up or runs dry. (The talker replays packets encoded once, so that a simulated
/// minute costs the decoding alone.)
#[test]
fn clock_drift_neither_grows_nor_empties_the_playback_queue() {
    for (far_ppm, b_ppm) in [(100, -100), (-100, 100)] {
        let mut b = Party::new(2, 48_000, Vec::new());
        b.drift_ppm = b_ppm;
        let mut far = FarSide::new();
        far.drift_ppm = far_ppm;
        listen(&mut b, &mut far, 60.0, |_, _| {});
        let why = format!("talker {far_ppm} ppm, listener {b_ppm} ppm");
        for l in b.log.iter().filter(|l| l.at_us >= S) {
            // Topped up to the speaker's 10 ms block each tick, never a frame above it (a
            // frame resampled to follow the talker's clock may be a sample or two longer
            // than 960, and one played longer by the jitter buffer up to 10 ms longer).
            let ms = l.at_us / MS;
            assert!(
                (480..480 + 962 + 480).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            assert!(l.jitter.delay_ms <= 60, "{l:?} at {ms} ms, {why}");
        }
        assert_eq!(b.underruns, 0, "{why}");
        // 12 ms of drift is at most one frame to skip or to stretch (with one frame of
        // concealment), or since time-scaling, rather a few frames played a pitch period
        // (2.5–10 ms) longer or shorter; nothing else is concealed.
        let (start, end) = (b.log_at(S), b.log_at(60 * S - 100 * MS));
        let stretched = end.jitter.stretched - start.jitter.stretched;
        let skipped = end.jitter.skipped - start.jitter.skipped;
        let scaled = end.jitter.expanded + end.jitter.accelerated
            - start.jitter.expanded
            - start.jitter.accelerated;
        assert!(stretched + skipped <= 1, "{end:?}, {why}");
        assert!(scaled <= 5, "{end:?}, {why}");
        assert_eq!(end.media.concealed, stretched, "{end:?}, {why}");
        assert_eq!(end.jitter.lost, 0, "{end:?}, {why}");
        // Resampled to follow the talker's clock: a tone 200 ppm off 1 kHz.
        // The one frame of concealment allowed above is a dip in a 200 ms window.
        assert_continuous_tone(&b, 0.5, 59.9, 1000.0, 0.2, 0.04);
    }
}

/// How long the drift estimator may take to measure a drift (`audio/drift.rs`: 22 s
/// until it trusts a slope, then a step or two to settle), s.
const LEARNT_S: u64 = 60;

/// Ten minutes of a far side whose sound card runs 300 ppm fast, then one 300 ppm slow
/// (180 ms over the call, nine frames), against a speaker on an exact clock: the playback
/// resampler learns the drift, so the jitter buffer never skips, stretches, conceals or
/// drops a frame for it, its delay stays within a frame above its target and the speaker's
/// queue at its 10 ms block.
#[test]
fn a_far_clock_300_ppm_off_is_followed_by_the_resampler_for_ten_minutes() {
    const MINUTES: u64 = 10;
    for far_ppm in [300, -300] {
        let mut b = Party::new(2, 48_000, Vec::new());
        let mut far = FarSide::new();
        far.drift_ppm = far_ppm;
        listen(&mut b, &mut far, MINUTES as f64 * 60.0, |_, _| {});
        let why = format!("talker {far_ppm} ppm");
        let (start, learnt) = (b.log_at(S), b.log_at(LEARNT_S * S));
        let end = b.log_at(MINUTES * 60 * S - 100 * MS);
        // While the drift is still unmeasured (20 s: 6 ms at 300 ppm), the delay may leave
        // its band: it starts anywhere in it (a band above a target that follows the
        // jitter), so up to three frames played a pitch period (at least 2.5 ms) shorter
        // or longer; after that, nothing.
        let learning = drift_repairs(&start, &learnt);
        assert!(learning <= 3, "{start:?} {learnt:?}, {why}");
        assert_eq!(drift_repairs(&learnt, &end), 0, "{learnt:?} {end:?}, {why}");
        assert_eq!((end.jitter.lost, b.underruns), (0, 0), "{end:?}, {why}");
        let mut worst = 0;
        for l in b.log.iter().filter(|l| l.at_us >= S) {
            let ms = l.at_us / MS;
            // Topped up to the 10 ms block; a corrected frame may be a sample or two over
            // 960, and one played longer while learning up to 10 ms.
            assert!(
                (480..480 + 962 + 480).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            // Once the drift is learnt: never stretching (below the target), never a
            // frame above it (shrinking). (While learning, the repairs above.)
            let above = i64::from(l.jitter.delay_ms) - i64::from(l.jitter.target_ms);
            if l.at_us >= LEARNT_S * S {
                assert!((0..20).contains(&above), "{l:?} at {ms} ms, {why}");
                worst = worst.max(above);
            }
        }
        // The learnt correction is the drift.
        let ppm = end.media.playback_drift_ppm;
        assert!((ppm - far_ppm as i32).abs() <= 15, "{ppm} ppm, {why}");
        assert_continuous_tone(
            &b,
            LEARNT_S as f64,
            MINUTES as f64 * 60.0 - 0.1,
            1000.0,
            0.1,
            0.05,
        );
        eprintln!("{why}: correction {ppm} ppm, delay at most {worst} ms above target");
    }
}

/// Ten minutes of a call where one side's 48 kHz microphone runs 200 ppm fast (then slow)
/// against the other's 44.1 kHz speaker on an exact clock: the listener's playback
/// resampler learns the drift and nothing is skipped, stretched, concealed or dropped.
#[test]
fn a_44k1_speaker_and_a_48k_microphone_200_ppm_apart_keep_their_queues_for_ten_minutes() {
    const MINUTES: u64 = 10;
    let seconds = MINUTES as f64 * 60.0;
    for a_ppm in [200, -200] {
        let mut a = Party::new(1, 48_000, tone(48_000, seconds, 1000.0, 0.5));
        a.drift_ppm = a_ppm;
        let b = Party::new(2, 44_100, Vec::new());
        let mut sim = Sim::new(a, b, 5);
        sim.run_until(seconds + 0.2);
        let why = format!("microphone {a_ppm} ppm");
        let (start, learnt) = (sim.b.log_at(S), sim.b.log_at(LEARNT_S * S));
        let end = when_played(&sim.a, &sim.b, seconds - 0.1);
        let learning = drift_repairs(&start, &learnt);
        assert!(learning <= 1, "{start:?} {learnt:?}, {why}");
        assert_eq!(drift_repairs(&learnt, &end), 0, "{learnt:?} {end:?}, {why}");
        assert_eq!((end.jitter.lost, sim.b.underruns), (0, 0), "{end:?}, {why}");
        let queue = 44_100 * 10 / 1000;
        for l in sim
            .b
            .log
            .iter()
            .filter(|l| (S..end.at_us).contains(&l.at_us))
        {
            let ms = l.at_us / MS;
            assert!(
                (queue..queue + 884).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            let above = i64::from(l.jitter.delay_ms) - i64::from(l.jitter.target_ms);
            assert!(above < 20, "{l:?} at {ms} ms, {why}");
        }
        // The listener learnt the talker's drift.
        let ppm = end.media.playback_drift_ppm;
        assert!((ppm - a_ppm as i32).abs() <= 15, "{end:?}, {why}");
        assert_continuous_tone(&sim.b, LEARNT_S as f64, seconds - 0.2, 1000.0, 0.1, 0.05);
    }
}

#[test]
fn with_reports_ten_percent_loss_is_repaired_from_copies_within_the_bitrate_cap() {
    let (sim, sent_in_loss, after_loss) = through_ten_percent_loss(true);
    let (j, m) = (after_loss.jitter, after_loss.media);
    // B reported about once a second, A took the reports and sent copies.
    assert!(
        (7..=9).contains(&sim.b.reports.len()),
        "{} reports",
        sim.b.reports.len()
    );
    let a = sim.a.pipeline.stats();
    assert!(a.reports_received >= 7, "{a:?}");
    assert!(sim.a.copies.contains(&1), "no copies sent");
    // The network lost about a tenth; copies repaired most of it (the first losses came
    // before the first report), FEC and concealment the rest.
    let network = j.lost + m.repaired;
    assert!(
        network * 100 >= sent_in_loss * 7 && network * 100 <= sent_in_loss * 13,
        "lost {network} of {sent_in_loss}"
    );
    assert!(m.repaired * 10 >= network * 6, "{m:?} {j:?}");
    assert_eq!(m.recovered + m.concealed, j.lost, "{m:?} {j:?}");
    assert!(m.concealed * 100 <= sent_in_loss * 2, "{m:?}");
    // Copies cost at most the cap: 1.6 times the bytes a second the same tone takes in
    // plain frames (datagrams whole, headers and all), and they are really sent.
    let rate = |sim: &Sim, from: f64, to: f64| {
        let at = |s: f64| sim.a.log_at((s * S as f64) as u64).media.sent_bytes;
        (at(to) - at(from)) as f64 / (to - from)
    };
    let mut plain = one_way(8.0, 48_000, 44_100, 2);
    plain.no_reports = true;
    plain.run_until(5.5);
    let (clean, protected) = (rate(&plain, 3.0, 5.5), rate(&sim, 3.0, 5.5));
    assert!(
        protected <= 1.6 * clean && protected >= 1.2 * clean,
        "{clean} B/s plain, {protected} B/s with copies"
    );
    assert_tone(&sim.b, 6.5, 8.0, 1000.0);
}

#[test]
fn a_single_lost_packet_is_played_from_the_next_datagrams_copy() {
    let mut sim = one_way(10.0, 48_000, 48_000, 9);
    // Loss from 1 to 3 s makes A send copies (kept for a hold after the loss ends); then
    // on a clean path exactly one frame is lost.
    sim.ab.path.loss = 0.10;
    sim.lossy = (S, 3 * S);
    sim.run_until(4.0);
    assert_eq!(
        sim.a.pipeline.stats().redundancy,
        1,
        "{:?}",
        sim.a.pipeline.stats()
    );
    let next = sim.a.sent.last().expect("sent").1.seq + 10;
    sim.lose_from_a = vec![next];
    sim.run_until(6.3);
    let (j, m) = counted_between(
        &when_played(&sim.a, &sim.b, 3.9),
        &when_played(&sim.a, &sim.b, 6.0),
    );
    assert_played_from_copies(&j, &m, 1);
    assert_eq!(m.decoded, j.played);
    assert_tone(&sim.b, 4.2, 6.0, 1000.0);
}

#[test]
fn a_two_frame_loss_run_is_played_from_copies_two_frames_back() {
    // Bursts make A send one copy of each frame two frames later to a peer that reads no
    // deep copies; then two frames in a row are lost and both are played from their copies.
    let r = a_loss_run_after_bursts(2, true);
    let a = r.sending;
    assert_eq!((a.redundancy, a.first_copy_back), (1, 2), "{a:?}");
    assert_played_from_copies(&r.jitter, &r.media, 2);
    // Every datagram of the run carried one copy.
    assert!(r.copies.iter().all(|&c| c == 1), "{:?}", r.copies);
    assert_tone(&r.sim.b, 5.2, 7.0, 1000.0);
}

/// B's counts between two moments of the call (`after` less `before`), those the copy
/// tests read: lost and played at the jitter buffer; repaired, recovered, concealed and
/// decoded in the pipeline.
fn counted_between(before: &TickLog, after: &TickLog) -> (JitterStats, MediaStats) {
    let (mut j, mut m) = (after.jitter, after.media);
    j.lost -= before.jitter.lost;
    j.played -= before.jitter.played;
    m.repaired -= before.media.repaired;
    m.recovered -= before.media.recovered;
    m.concealed -= before.media.concealed;
    m.decoded -= before.media.decoded;
    (j, m)
}

/// `n` lost frames were all played from copies: nothing lost at the jitter buffer, no
/// FEC, no concealment.
fn assert_played_from_copies(j: &JitterStats, m: &MediaStats, n: u64) {
    assert_eq!(m.repaired, n, "{m:?}");
    assert_eq!((j.lost, m.recovered, m.concealed), (0, 0, 0), "{j:?} {m:?}");
}

/// What [`a_loss_run_after_bursts`] found: B's jitter buffer and pipeline counts over the
/// run, how far back A's copies were then, and the mean bytes of A's frames and of each
/// copy then.
struct RunAfterBursts {
    jitter: JitterStats,
    media: MediaStats,
    /// A's settings when the run began.
    sending: MediaStats,
    farthest: Vec<u8>,
    /// Copies each datagram of the run carried.
    copies: Vec<usize>,
    frame_bytes: f64,
    copy_bytes: f64,
    sim: Sim,
}

/// Loss in runs of three from 1 to 4 s, then exactly `run` frames in a row lost on a clean
/// path (while the copies against the bursts are still sent): see [`RunAfterBursts`].
fn a_loss_run_after_bursts(run: u32, no_features: bool) -> RunAfterBursts {
    let mut sim = one_way(10.0, 48_000, 48_000, 13);
    sim.no_features = no_features;
    sim.ab.path.burst = 0.035;
    sim.ab.path.burst_len = 3;
    sim.lossy = (S, 4 * S);
    sim.run_until(5.0);
    let sending = sim.a.pipeline.stats();
    let next = sim.a.sent.last().expect("sent").1.seq + 10;
    sim.lose_from_a = (next..next + run).collect();
    sim.run_until(7.3);
    let (jitter, media) = counted_between(
        &when_played(&sim.a, &sim.b, 4.9),
        &when_played(&sim.a, &sim.b, 7.0),
    );
    let from = sim
        .a
        .sent
        .iter()
        .position(|(_, f)| f.seq == next)
        .expect("sent");
    let farthest = sim.a.farthest[from..from + 10].to_vec();
    let frames = &sim.a.sent[from..from + 10];
    let frame_bytes =
        frames.iter().map(|(_, f)| f.payload.len()).sum::<usize>() as f64 / frames.len() as f64;
    let copies = sim.a.copies[from..from + 10].to_vec();
    let copy_bytes = sim.a.copy_bytes[from..from + 10].iter().sum::<usize>() as f64
        / copies.iter().sum::<usize>().max(1) as f64;
    RunAfterBursts {
        jitter,
        media,
        sending,
        farthest,
        copies,
        frame_bytes,
        copy_bytes,
        sim,
    }
}

#[test]
fn a_loss_run_as_long_as_the_deep_copies_reach_is_played_from_the_low_rate_copies() {
    let deep = crate::call::media::adapt::DEEP_SPREAD;
    let run = u32::from(deep.last_back());
    assert!(run >= 3, "deep copies reach beyond the lone copy two back");
    let r = a_loss_run_after_bursts(run, false);
    let (j, m) = (r.jitter, r.media);
    // A's features-reading peer got deep copies, re-encoded at the copies' low bitrate
    // (each smaller than the frame that carries it); every frame of the run played from
    // them: no loss at the jitter buffer, no FEC, no concealment.
    assert!(
        r.farthest.iter().all(|&b| b == run as u8),
        "{:?}",
        r.farthest
    );
    assert!(deep.copy_bitrate_bps > 0);
    assert!(
        r.copy_bytes < r.frame_bytes * 0.7,
        "copies {} B, frames {} B",
        r.copy_bytes,
        r.frame_bytes
    );
    assert_played_from_copies(&j, &m, u64::from(run));
    assert_tone(&r.sim.b, 5.2, 7.0, 1000.0);
}

#[test]
fn a_peer_that_reads_no_deep_copies_gets_none_and_loses_the_run_beyond_two() {
    let run = u32::from(crate::call::media::adapt::DEEP_SPREAD.last_back());
    let r = a_loss_run_after_bursts(run, true);
    let (j, m) = (r.jitter, r.media);
    // Without the far side's features: the lone copy two back, every reader's kind, the
    // packet as sent (the frames two before those carrying them: about as long).
    assert!(r.farthest.iter().all(|&b| b == 2), "{:?}", r.farthest);
    assert!(
        r.copy_bytes > r.frame_bytes * 0.9,
        "copies {} B, frames {} B",
        r.copy_bytes,
        r.frame_bytes
    );
    assert_eq!(m.repaired, 2, "{m:?}");
    assert!(j.lost + m.recovered + m.concealed > 0, "{j:?} {m:?}");
}

#[test]
fn under_bursts_the_deep_copies_cost_at_most_the_cap() {
    // Runs of three from 1 to 6 s: A sends deep copies re-encoded at a low bitrate. What it
    // sends then is at most 1.6 times what the same voice takes in plain frames (datagrams
    // whole, headers and all). A voice, not a tone: Opus at 10 kbit/s spends half as much
    // again on a steady tone.
    let talker = || {
        let voice = crate::call::media::speech_sim::speech_with_pauses(48_000, 8.0, 8.0, 0.0);
        Sim::new(
            Party::new(1, 48_000, voice),
            Party::new(2, 48_000, Vec::new()),
            13,
        )
    };
    let mut sim = talker();
    sim.ab.path.burst = 0.035;
    sim.ab.path.burst_len = 3;
    sim.lossy = (S, 6 * S);
    sim.run_until(6.0);
    let deep = crate::call::media::adapt::DEEP_SPREAD;
    let a = sim.a.pipeline.stats();
    assert_eq!(
        (a.redundancy, a.first_copy_back, a.copy_bitrate_bps),
        (deep.count, deep.first_back, deep.copy_bitrate_bps),
        "{a:?}"
    );
    let rate = |sim: &Sim, from: f64, to: f64| {
        let at = |s: f64| sim.a.log_at((s * S as f64) as u64).media.sent_bytes;
        (at(to) - at(from)) as f64 / (to - from)
    };
    let mut plain = talker();
    plain.no_reports = true;
    plain.run_until(6.0);
    let (clean, protected) = (rate(&plain, 3.5, 6.0), rate(&sim, 3.5, 6.0));
    assert!(
        protected <= 1.6 * clean && protected >= 1.2 * clean,
        "{clean} B/s plain, {protected} B/s with deep copies"
    );
}

/// A call's start to a peer that reads deep copies, with A's frames numbered `lost` lost
/// on the way: B's highest jitter target until `until_s`, and the sim.
fn a_start_with_losses(lost: Vec<u32>, until_s: f64) -> (u32, Sim) {
    let mut sim = one_way(5.0, 48_000, 48_000, 17);
    sim.lose_from_a = lost;
    sim.run_until(until_s);
    let target = sim
        .b
        .log
        .iter()
        .map(|l| l.jitter.target_ms)
        .max()
        .unwrap_or(0);
    (target, sim)
}

#[test]
fn at_the_start_lone_losses_are_repaired_by_the_near_copy_without_holding_for_the_deep_ones() {
    // From its first frames A sends the start's copies, one and six back (before any report
    // showed the path). A pair lost (the first of it has no copy in time: its copy one back
    // was in the second), then lone losses: the copy one back repairs those at the floor of
    // a frame, and B does not time-scale its way up to six frames for the deep copies,
    // which only runs of three or more would need.
    let (target, sim) = a_start_with_losses(vec![15, 16, 25, 35], 0.95);
    let start = crate::call::media::adapt::START_SPREAD;
    let a = sim.a.log_at(900 * MS).media;
    assert_eq!(
        (a.redundancy, a.first_copy_back, a.copy_step),
        (start.count, start.first_back, start.step),
        "{a:?}"
    );
    let b = sim.b.log_at(950 * MS);
    assert_eq!((b.jitter.lost, b.media.repaired), (1, 3), "{b:?}");
    assert!(target < 3 * 20, "target {target} ms: {b:?}");
}

#[test]
fn a_run_at_the_start_makes_the_receiver_hold_for_the_deep_copies_from_then_on() {
    // A run of three at the start: B holds six frames and the margin for the copies six
    // back, and a run of six later is played from the copies whole.
    let (_, mut sim) = a_start_with_losses(vec![15, 16, 17], 2.1);
    let b = sim.b.log_at(1_500 * MS);
    assert!(b.jitter.target_ms >= 6 * 20, "{b:?}");
    let before = when_played(&sim.a, &sim.b, 1.9);
    sim.lose_from_a.extend(150..156);
    sim.run_until(4.3);
    let (j, m) = counted_between(&before, &when_played(&sim.a, &sim.b, 4.0));
    assert_played_from_copies(&j, &m, 6);
    assert_tone(&sim.b, 2.2, 4.0, 1000.0);
}
