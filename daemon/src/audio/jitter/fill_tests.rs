//! [`JitterBuffer::fill`] and [`JitterBuffer::set_min_delay_ms`]: redundant copies of
//! earlier packets fill only what is still missing and not yet due, and leave the timing
//! estimate and the duplicate/late counts alone.

use super::*;

const F: u64 = 20_000;
const TS: u32 = 960;

fn buffer() -> JitterBuffer {
    JitterBuffer::new(JitterConfig::default()).expect("default config")
}

/// Pops at `now`, returning the payload's first byte for a packet.
fn pop(jb: &mut JitterBuffer, now: u64) -> Option<u8> {
    match jb.pop(now) {
        Playout::Packet(p) => Some(p[0]),
        _ => None,
    }
}

/// Pops a frame's time apart from 10 ms on until `n` packets played (or 10 frames
/// passed); their first bytes.
fn play(jb: &mut JitterBuffer, n: usize) -> Vec<u8> {
    let mut played = Vec::new();
    let mut now = 10_000;
    while played.len() < n && now < 10 * F {
        if let Some(id) = pop(jb, now) {
            played.push(id);
        }
        now += F;
    }
    played
}

#[test]
fn a_copy_fills_a_missing_packet_that_is_not_yet_due() {
    let mut jb = buffer();
    // Packets 0, 1 arrive; 2 is lost; 3 arrives carrying a copy of 2.
    jb.push(5_000, 0, 0, &[0]);
    jb.push(F + 5_000, 1, TS, &[1]);
    jb.push(3 * F + 5_000, 3, 3 * TS, &[3]);
    assert!(jb.fill(3 * F + 5_000, 2, 2 * TS, &[2]));
    let played = play(&mut jb, 4);
    assert_eq!(played, [0, 1, 2, 3]);
    let s = jb.stats();
    assert_eq!((s.lost, s.fec, s.duplicates, s.late), (0, 0, 0, 0), "{s:?}");
    // The copy came a frame late but is no transit sample: no jitter measured.
    assert_eq!(s.jitter_ms, 0, "{s:?}");
}

#[test]
fn copies_of_packets_here_played_or_past_are_ignored_without_counting() {
    let mut jb = buffer();
    jb.push(5_000, 0, 0, &[0]);
    jb.push(F + 5_000, 1, TS, &[1]);
    // A copy of a packet that is here.
    assert!(!jb.fill(F + 5_000, 0, 0, &[9]));
    // Before the first packet nothing is filled.
    let mut fresh = buffer();
    assert!(!fresh.fill(0, 5, 5 * TS, &[5]));
    // Play 0 and 1, then a copy of 0 (played) and of a packet older than the stream.
    let mut now = 25_000;
    let mut played = 0;
    while played < 2 {
        played += usize::from(pop(&mut jb, now).is_some());
        now += F;
    }
    assert!(!jb.fill(now, 0, 0, &[9]));
    // A copy ahead of the newest packet is not a copy of an earlier one.
    assert!(!jb.fill(now, 7, 7 * TS, &[7]));
    assert!(!jb.fill(now, 1, TS, &[]));
    let s = jb.stats();
    assert_eq!((s.duplicates, s.late, s.received), (0, 0, 2), "{s:?}");
}

#[test]
fn a_raised_floor_raises_the_target_and_comes_back_down() {
    let mut jb = buffer();
    for i in 0..20u32 {
        jb.push(u64::from(i) * F + 5_000, i, i * TS, &[i as u8]);
        jb.pop(u64::from(i) * F + 6_000);
    }
    assert_eq!(jb.stats().target_ms, 20);
    jb.set_min_delay_ms(45);
    jb.pop(20 * F + 6_000);
    assert_eq!(jb.stats().target_ms, 45);
    assert_eq!(jb.config().min_delay_ms, 45);
    // Kept within what the configuration allows.
    jb.set_min_delay_ms(5_000);
    assert_eq!(jb.config().min_delay_ms, 180);
    jb.set_min_delay_ms(20);
    jb.pop(21 * F + 6_000);
    assert_eq!(jb.stats().target_ms, 20);
}

#[test]
fn a_packet_that_comes_after_its_copy_takes_the_copys_place() {
    let mut jb = buffer();
    // Packets 0, 1; 3 arrives with a copy of 2 (re-encoded: another payload); then 2
    // itself, reordered: the packet is played, not the copy, and is no duplicate.
    jb.push(5_000, 0, 0, &[0]);
    jb.push(F + 5_000, 1, TS, &[1]);
    jb.push(3 * F + 5_000, 3, 3 * TS, &[3]);
    assert!(jb.fill(3 * F + 5_000, 2, 2 * TS, &[20]));
    assert_eq!(jb.push(3 * F + 6_000, 2, 2 * TS, &[2]), Push::Buffered);
    // Once the packet is here, a copy of it changes nothing, and the packet again is a
    // duplicate.
    assert!(!jb.fill(3 * F + 7_000, 2, 2 * TS, &[21]));
    assert_eq!(jb.push(3 * F + 8_000, 2, 2 * TS, &[2]), Push::Duplicate);
    let played = play(&mut jb, 4);
    assert_eq!(played, [0, 1, 2, 3]);
    assert_eq!(jb.stats().duplicates, 1, "{:?}", jb.stats());
}
