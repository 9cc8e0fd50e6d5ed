//! Scenario tests, each a short hand-made packet trace with the exact playout expected.

use super::*;

/// µs per 20 ms frame and timestamp ticks per frame.
const F: u64 = 20_000;
const TS: u32 = 960;

/// What a pop returned, owned: packets by the id byte of their payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    Pkt(u8),
    Fec(u8),
    Conceal,
    Silence,
}
use P::*;

fn buffer() -> JitterBuffer {
    JitterBuffer::new(JitterConfig::default()).expect("default config")
}

/// A packet to push: arrival µs, seq, timestamp, id.
#[derive(Clone, Copy, Debug)]
struct In {
    at: u64,
    seq: u32,
    ts: u32,
    id: u8,
}

/// Packet `i` of a plain stream: sent at `i` frames, 5 ms transit plus `extra` µs.
fn nth(i: u32, extra: u64) -> In {
    In {
        at: u64::from(i) * F + 5_000 + extra,
        seq: i,
        ts: i * TS,
        id: i as u8,
    }
}

/// Packets `0..n` on time, except those `lose` says.
fn stream(n: u32, lose: impl Fn(u32) -> bool) -> Vec<In> {
    (0..n).filter(|&i| !lose(i)).map(|i| nth(i, 0)).collect()
}

/// Pops `ticks` times every 20 ms from 10 ms, pushing each packet before the first tick at
/// or after its arrival.
fn drive(jb: &mut JitterBuffer, packets: &[In], ticks: u64) -> Vec<P> {
    drive_from(jb, packets, 10_000, ticks)
}

fn drive_from(jb: &mut JitterBuffer, packets: &[In], first_tick: u64, ticks: u64) -> Vec<P> {
    let mut packets: Vec<In> = packets.to_vec();
    packets.sort_by_key(|p| p.at);
    let mut pending = packets.iter().peekable();
    (0..ticks)
        .map(|k| {
            let now = first_tick + k * F;
            while let Some(p) = pending.next_if(|p| p.at <= now) {
                jb.push(p.at, p.seq, p.ts, &[0x48, p.id, 0]);
            }
            match jb.pop(now) {
                Playout::Packet(b) => Pkt(b[1]),
                Playout::Fec(b) => Fec(b[1]),
                Playout::Conceal => Conceal,
                Playout::Silence => Silence,
            }
        })
        .collect()
}

#[test]
fn silence_before_the_first_packet() {
    let mut jb = buffer();
    assert_eq!(drive(&mut jb, &[], 3), [Silence; 3]);
    assert_eq!(
        jb.stats(),
        JitterStats {
            target_ms: 20,
            ..JitterStats::default()
        }
    );
}

#[test]
fn a_clean_stream_plays_each_packet_once_in_order_after_one_frame() {
    let mut jb = buffer();
    let out = drive(&mut jb, &stream(6, |_| false), 7);
    assert_eq!(
        out,
        [Silence, Pkt(0), Pkt(1), Pkt(2), Pkt(3), Pkt(4), Pkt(5)]
    );
    let s = jb.stats();
    assert_eq!(
        (s.played, s.lost, s.late, s.concealed, s.stretched),
        (6, 0, 0, 0, 1)
    );
    assert_eq!((s.delay_ms, s.target_ms), (25, 20));
}

#[test]
fn reordered_packets_play_in_order() {
    let mut jb = buffer();
    let mut packets = stream(6, |_| false);
    packets[2].at = packets[3].at + 1_000; // 3 overtakes 2
    let out = drive(&mut jb, &packets, 7);
    assert_eq!(
        out,
        [Silence, Pkt(0), Pkt(1), Pkt(2), Pkt(3), Pkt(4), Pkt(5)]
    );
}

#[test]
fn duplicates_are_ignored_in_the_buffer_and_after_playing() {
    let mut jb = buffer();
    let mut packets = stream(6, |_| false);
    packets.extend(stream(6, |_| false).into_iter().map(|mut p| {
        p.at += 1_000;
        p
    }));
    let mut late_copy = nth(0, 0);
    late_copy.at += 3 * F;
    packets.push(late_copy);
    let out = drive(&mut jb, &packets, 7);
    assert_eq!(
        out,
        [Silence, Pkt(0), Pkt(1), Pkt(2), Pkt(3), Pkt(4), Pkt(5)]
    );
    let s = jb.stats();
    assert_eq!((s.duplicates, s.late, s.played), (7, 0, 6));
}

#[test]
fn a_lost_packet_is_recovered_with_fec_from_the_next() {
    let mut jb = buffer();
    let out = drive(&mut jb, &stream(6, |i| i == 3), 7);
    assert_eq!(
        out,
        [Silence, Pkt(0), Pkt(1), Pkt(2), Fec(4), Pkt(4), Pkt(5)]
    );
    let s = jb.stats();
    assert_eq!((s.lost, s.fec, s.concealed), (1, 1, 0));
}

#[test]
fn two_losses_in_a_row_conceal_then_use_fec() {
    let mut jb = buffer();
    let out = drive(&mut jb, &stream(7, |i| i == 3 || i == 4), 8);
    assert_eq!(
        out,
        [
            Silence,
            Pkt(0),
            Pkt(1),
            Pkt(2),
            Conceal,
            Fec(5),
            Pkt(5),
            Pkt(6)
        ]
    );
    let s = jb.stats();
    assert_eq!((s.lost, s.fec, s.concealed), (2, 1, 1));
}

#[test]
fn a_late_packet_is_dropped_counted_and_raises_the_target() {
    let mut jb = buffer();
    let mut packets = stream(8, |_| false);
    packets[3].at += 100_000;
    let out = drive(&mut jb, &packets, 12);
    assert_eq!(
        out[..8],
        [
            Silence,
            Pkt(0),
            Pkt(1),
            Pkt(2),
            Fec(4),
            Pkt(4),
            Pkt(5),
            Pkt(6)
        ]
    );
    // Packet 3 came at 165 ms, 100 ms after its time: with so few packets seen, that is the
    // 95th percentile, and the buffer grows its delay to cover it: packet 7, the last one
    // here, is to be played a pitch period longer; with nothing left to expand, it then
    // stretches (concealing in speech: the next packet will say whether that was DTX).
    assert_eq!(out[8..], [Pkt(7), Conceal, Conceal, Conceal]);
    let s = jb.stats();
    assert_eq!((s.late, s.lost, s.played, s.target_ms), (1, 1, 7, 100));
    assert_eq!(
        s.stretched,
        1 + 3,
        "the start-up wait and the three concealed"
    );
}

#[test]
fn a_dtx_pause_is_silence_not_loss() {
    let mut jb = buffer();
    // Frames 4..=9 not sent: the sequence number goes on, the timestamp jumps.
    let mut packets = stream(4, |_| false);
    for (seq, frame) in (4..7).zip(10..13) {
        packets.push(In {
            seq,
            ..nth(frame, 0)
        });
    }
    let out = drive(&mut jb, &packets, 14);
    assert_eq!(out[..5], [Silence, Pkt(0), Pkt(1), Pkt(2), Pkt(3)]);
    // The playout clock cannot know the pause is DTX until the next packet: meanwhile it
    // conceals (Opus fades out) and then stays silent.
    assert_eq!(
        out[5..11],
        [Conceal, Conceal, Conceal, Conceal, Conceal, Silence]
    );
    assert_eq!(out[11..], [Pkt(10), Pkt(11), Pkt(12)]);
    assert_eq!(jb.stats().lost, 0);
}

/// Two talkspurts with a DTX pause between, popped every frame from `phase` µs on; when
/// `rephase`, each silent frame is shortened by what [`JitterBuffer::rephase_us`] allows.
/// Returns the delay at the second talkspurt's first packet, and the trims asked for.
fn second_talkspurt_delay(phase: u64, rephase: bool) -> (u32, Vec<u64>) {
    let mut jb = buffer();
    let mut packets = stream(5, |_| false);
    for (seq, frame) in (5..10).zip(30..35) {
        packets.push(In {
            seq,
            ..nth(frame, 0)
        });
    }
    let mut pending = packets.iter().peekable();
    let (mut now, mut trims) = (phase, Vec::new());
    loop {
        while let Some(p) = pending.next_if(|p| p.at <= now) {
            jb.push(p.at, p.seq, p.ts, &[0x48, p.id, 0]);
        }
        let played = matches!(jb.pop(now), Playout::Packet(b) if b[1] == 30);
        let trim = if rephase { jb.rephase_us() } else { 0 };
        if played {
            assert_eq!(trim, 0, "a talkspurt plays at its own pace");
            return (jb.stats().delay_ms, trims);
        }
        if trim > 0 {
            trims.push(trim);
        }
        now += F - trim;
        assert!(now < 40 * F, "the second talkspurt never played");
    }
}

#[test]
fn silence_between_talkspurts_brings_the_delay_down_near_the_target() {
    // Popping 18 ms after the packets arrive puts the delay at 38 ms: within a frame of
    // the 20 ms target, so no whole frame is ever dropped and it stays there.
    let (without, none) = second_talkspurt_delay(23_000, false);
    assert_eq!((without, none.len()), (38, 0));
    // Shortened silences (half a frame at most each) bring it to the target plus the
    // 5 ms of headroom.
    let (with, trims) = second_talkspurt_delay(23_000, true);
    assert_eq!(with, 25, "trims {trims:?}");
    assert!(trims.iter().all(|&t| t <= F / 2), "{trims:?}");
    assert_eq!(trims.iter().sum::<u64>(), 13_000);
    // Already at the target: nothing to do.
    let (at_target, trims) = second_talkspurt_delay(5_000, true);
    assert_eq!((at_target, trims.len()), (20, 0));
}

#[test]
fn a_dtx_gap_with_the_next_packet_here_is_silence_not_loss() {
    let mut jb = buffer();
    // Frame 3 is not sent (DTX): the sequence number goes on, the timestamp jumps a frame.
    let mut packets = stream(3, |_| false);
    for (seq, frame) in (3..6).zip(4..7) {
        packets.push(In {
            seq,
            ..nth(frame, 0)
        });
    }
    let out = drive(&mut jb, &packets, 7);
    assert_eq!(
        out,
        [Silence, Pkt(0), Pkt(1), Pkt(2), Silence, Pkt(4), Pkt(5)]
    );
    let s = jb.stats();
    assert_eq!((s.lost, s.concealed, s.played), (0, 0, 5));
}

#[test]
fn sequence_numbers_and_timestamps_wrap_around() {
    let mut jb = buffer();
    let (seq0, ts0) = (u32::MAX - 3, u32::MAX - 2 * TS);
    let packets: Vec<In> = (0..10)
        .map(|i| In {
            seq: seq0.wrapping_add(i),
            ts: ts0.wrapping_add(i * TS),
            ..nth(i, 0)
        })
        .collect();
    let out = drive(&mut jb, &packets, 11);
    let expect: Vec<P> = std::iter::once(Silence).chain((0..10).map(Pkt)).collect();
    assert_eq!(out, expect);
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn a_big_sequence_jump_is_a_restarted_source() {
    let mut jb = buffer();
    let mut packets = stream(5, |_| false);
    for i in 5..10 {
        packets.push(In {
            seq: 777_777 + i,
            ts: 123_456_789 + i * TS,
            ..nth(i, 0)
        });
    }
    let out = drive(&mut jb, &packets, 12);
    // Packet 4 was still held when the new stream came: it is dropped with the old stream,
    // and the new one starts after one frame of delay.
    assert_eq!(
        out[..10],
        [
            Silence,
            Pkt(0),
            Pkt(1),
            Pkt(2),
            Pkt(3),
            Silence,
            Pkt(5),
            Pkt(6),
            Pkt(7),
            Pkt(8)
        ]
    );
    let s = jb.stats();
    assert_eq!((s.resyncs, s.dropped), (1, 1));
}

#[test]
fn a_source_restarting_from_zero_resyncs_after_a_run_of_late_packets() {
    let mut jb = buffer();
    let mut packets = stream(60, |_| false);
    // After frame 60 the source restarts with seq 0 and timestamp 0.
    for i in 60..120 {
        packets.push(In {
            seq: i - 60,
            ts: (i - 60) * TS,
            ..nth(i, 0)
        });
    }
    let out = drive(&mut jb, &packets, 122);
    let s = jb.stats();
    // Seq 0.. with timestamp 0.. again looks like duplicates of what played a second ago;
    // after half a second of nothing else the buffer follows the new stream.
    assert_eq!(s.resyncs, 1, "{s:?}");
    assert_eq!(s.duplicates, 26, "{s:?}");
    assert!(out[90..120].iter().all(|p| matches!(p, Pkt(_))), "{out:?}");
}

#[test]
fn a_timestamp_far_ahead_is_a_restarted_source() {
    let mut jb = buffer();
    let mut packets = stream(5, |_| false);
    for i in 5..10 {
        packets.push(In {
            ts: (i + 500) * TS, // 10 s ahead, sequence numbers consecutive
            ..nth(i, 0)
        });
    }
    let out = drive(&mut jb, &packets, 12);
    assert_eq!(jb.stats().resyncs, 1);
    assert_eq!(out[5..10], [Silence, Pkt(5), Pkt(6), Pkt(7), Pkt(8)]);
}

#[test]
fn stalled_playout_never_plays_anything_older_than_the_hard_maximum() {
    let mut jb = buffer();
    // One second of packets arrives while nobody pops (the playout device hung).
    let packets = stream(80, |_| false);
    let out = drive_from(&mut jb, &packets, 1_010_000, 40);
    let first = out.iter().find_map(|p| match p {
        Pkt(id) => Some(*id),
        _ => None,
    });
    // At 1.01 s the newest packet is 49 (arrived 0.985 s): playing resumes ~20–40 ms behind.
    assert!(first.is_some_and(|id| id >= 48), "{out:?}");
    let s = jb.stats();
    assert!(s.delay_ms <= 40 && s.dropped > 0, "{s:?}");
}

#[test]
fn concealment_stops_after_max_conceal() {
    let mut jb = buffer();
    let out = drive(&mut jb, &stream(3, |_| false), 12);
    assert_eq!(out[..4], [Silence, Pkt(0), Pkt(1), Pkt(2)]);
    assert_eq!(out[4..9], [Conceal; 5]);
    assert_eq!(out[9..], [Silence; 3]);
}

#[test]
fn rising_jitter_raises_the_target_and_the_delay_follows() {
    let mut jb = buffer();
    let packets: Vec<In> = (0..100)
        .map(|i| nth(i, if i % 2 == 1 { 50_000 } else { 0 }))
        .collect();
    drive(&mut jb, &packets, 100);
    let s = jb.stats();
    assert_eq!(s.jitter_ms, 50);
    assert_eq!(s.target_ms, 50);
    assert!(s.delay_ms >= 50 && s.delay_ms < 70, "{s:?}");
    assert!(s.late <= 2, "only while the target was still rising: {s:?}");
}

#[test]
fn bad_payloads_are_rejected() {
    let mut jb = buffer();
    assert_eq!(jb.push(0, 1, 1, &[]), Push::Rejected);
    assert_eq!(jb.push(0, 1, 1, &[0; MAX_PACKET_BYTES + 1]), Push::Rejected);
    assert_eq!(jb.push(0, 1, 1, &[0; MAX_PACKET_BYTES]), Push::Buffered);
    assert_eq!(jb.stats().rejected, 2);
}

#[test]
fn out_of_range_settings_are_errors() {
    let bad = |c: JitterConfig| JitterBuffer::new(c).err().map(|e| e.what);
    let d = JitterConfig::default;
    assert_eq!(
        bad(JitterConfig {
            min_delay_ms: 0,
            ..d()
        }),
        None
    );
    assert_eq!(
        bad(JitterConfig {
            jitter_margin_ms: 101,
            ..d()
        }),
        Some("jitter_margin_ms")
    );
    assert_eq!(
        bad(JitterConfig {
            max_delay_ms: 30,
            ..d()
        }),
        Some("max_delay_ms")
    );
    assert_eq!(
        bad(JitterConfig {
            min_delay_ms: 190,
            ..d()
        }),
        Some("min_delay_ms")
    );
    assert_eq!(
        bad(JitterConfig {
            jitter_percentile: 101,
            ..d()
        }),
        Some("jitter_percentile")
    );
    assert_eq!(
        bad(JitterConfig {
            window_packets: 2,
            ..d()
        }),
        Some("window_packets")
    );
    assert_eq!(bad(JitterConfig::for_frame(FrameDuration::Ms10)), None);
    let e = JitterBuffer::new(JitterConfig {
        max_delay_ms: 5000,
        ..d()
    })
    .err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("jitter buffer setting max_delay_ms = 5000 is out of range (40..=1000)")
    );
}
