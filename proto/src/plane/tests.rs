use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;

use super::packet::peek_counter;
use super::path::{DEAD_AFTER, KEEPALIVE, PROBE_TIMEOUT, RETRY_AFTER};
use super::replay::WINDOW;
use super::*;

fn keys(seed: u8) -> Keys {
    let mut m = [0u8; 32];
    for (i, b) in m.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    Keys::from_exported(&m)
}

fn sealed(keys: &Keys, d: Direction, id: u32, counter: u64, plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_PACKET];
    let n = seal(keys.key(d), id, counter, plain, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn a_packet_round_trips_and_carries_its_id_and_counter() {
    let k = keys(7);
    let mut p = sealed(&k, Direction::Up, 0xdead_beef, 42, b"media bytes");
    assert_eq!(p.len(), HEADER + 11 + TAG);
    assert_eq!(peek_id(&p), Some(0xdead_beef));
    assert_eq!(peek_counter(&p), Some(42));
    assert_eq!(&p[..4], &[0xde, 0xad, 0xbe, 0xef]);
    let (counter, plain) = open_in_place(k.key(Direction::Up), &mut p, |_| true).unwrap();
    assert_eq!((counter, plain), (42, &b"media bytes"[..]));
}

#[test]
fn an_empty_plaintext_is_a_28_byte_keepalive() {
    let k = keys(1);
    let mut p = sealed(&k, Direction::Down, 5, 0, b"");
    assert_eq!(p.len(), 28);
    let (_, plain) = open_in_place(k.key(Direction::Down), &mut p, |_| true).unwrap();
    assert!(plain.is_empty());
}

#[test]
fn the_wrong_key_direction_id_or_counter_fails_authentication() {
    let k = keys(3);
    let p = sealed(&k, Direction::Up, 9, 1, b"hello");
    let mut other_key = p.clone();
    assert_eq!(
        open_in_place(keys(4).key(Direction::Up), &mut other_key, |_| true).map(|_| ()),
        Err(OpenError::Auth)
    );
    let mut other_direction = p.clone();
    assert_eq!(
        open_in_place(k.key(Direction::Down), &mut other_direction, |_| true).map(|_| ()),
        Err(OpenError::Auth)
    );
    for byte in [0, 5, HEADER, p.len() - 1] {
        let mut changed = p.clone();
        changed[byte] ^= 1;
        assert_eq!(
            open_in_place(k.key(Direction::Up), &mut changed, |_| true).map(|_| ()),
            Err(OpenError::Auth),
            "byte {byte}"
        );
    }
}

#[test]
fn a_replay_is_refused_before_decryption() {
    let k = keys(3);
    let mut p = sealed(&k, Direction::Up, 9, 1, b"hello");
    let mut asked = None;
    let r = open_in_place(k.key(Direction::Up), &mut p, |c| {
        asked = Some(c);
        false
    });
    assert_eq!(r.map(|_| ()), Err(OpenError::Replayed));
    assert_eq!(asked, Some(1));
}

#[test]
fn short_and_oversized_packets_are_refused() {
    let k = keys(0);
    for len in [0, 1, HEADER, HEADER + TAG - 1, MAX_PACKET + 1] {
        let mut p = vec![0u8; len];
        assert_eq!(
            open_in_place(k.key(Direction::Up), &mut p, |_| true).map(|_| ()),
            Err(OpenError::Size)
        );
        assert_eq!(peek_id(&p), None);
    }
    let mut small = [0u8; 10];
    assert_eq!(
        seal(k.key(Direction::Up), 1, 1, b"too big", &mut small),
        None
    );
}

#[test]
fn the_window_accepts_each_counter_once_and_reordering_within_it() {
    let mut w = ReplayWindow::new();
    assert!(w.accept(100));
    assert!(!w.accept(100));
    assert!(w.accept(99));
    assert!(w.accept(3000));
    assert!(!w.fresh(3000 - WINDOW - 1));
    assert!(w.fresh(3000 - WINDOW));
    assert!(w.accept(3000 - WINDOW));
    assert!(!w.accept(3000 - WINDOW));
    // A jump far ahead forgets everything behind the new window.
    assert!(w.accept(1_000_000));
    assert!(!w.fresh(3000));
    assert!(w.fresh(1_000_000 - 1));
}

#[test]
fn the_first_counter_may_be_anything() {
    let mut w = ReplayWindow::new();
    assert!(w.accept(u64::MAX - 1));
    assert!(w.accept(u64::MAX));
    assert!(!w.accept(u64::MAX));
    let mut w = ReplayWindow::new();
    assert!(w.accept(0));
    assert!(!w.accept(0));
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn drain(p: &mut UdpPath, now: Duration) -> Vec<PathAction> {
    std::iter::from_fn(|| p.poll(now)).collect()
}

#[test]
fn a_path_probes_goes_up_on_an_echo_and_keeps_alive() {
    let mut p = UdpPath::new(secs(0.0));
    assert!(!p.is_up());
    assert_eq!(drain(&mut p, secs(0.0)), [PathAction::SendKeepalive]);
    assert_eq!(drain(&mut p, secs(0.1)), []);
    p.heard(secs(0.1));
    assert!(p.is_up());
    assert_eq!(drain(&mut p, secs(0.1)), [PathAction::WentUp]);
    // In a call or not, a keep-alive each second: the device's beat.
    assert_eq!(p.next_wake(secs(0.2)), KEEPALIVE);
    assert_eq!(drain(&mut p, secs(0.9)), []);
    assert_eq!(drain(&mut p, KEEPALIVE), [PathAction::SendKeepalive]);
    p.heard(secs(1.1));
    assert_eq!(drain(&mut p, secs(1.5)), []);
    assert_eq!(
        drain(&mut p, KEEPALIVE + KEEPALIVE),
        [PathAction::SendKeepalive]
    );
}

#[test]
fn no_echo_means_quic_then_a_retry_later() {
    let mut p = UdpPath::new(secs(0.0));
    let mut sent = 0;
    let mut t = 0.0;
    while secs(t) < PROBE_TIMEOUT {
        sent += drain(&mut p, secs(t)).len();
        t += 0.1;
    }
    assert!(sent >= 3, "probes sent: {sent}");
    assert_eq!(drain(&mut p, PROBE_TIMEOUT), [PathAction::WentDown]);
    assert!(!p.is_up());
    assert_eq!(drain(&mut p, PROBE_TIMEOUT + secs(1.0)), []);
    assert_eq!(p.next_wake(PROBE_TIMEOUT), PROBE_TIMEOUT + RETRY_AFTER);
    assert_eq!(
        drain(&mut p, PROBE_TIMEOUT + RETRY_AFTER),
        [PathAction::SendKeepalive]
    );
    p.heard(PROBE_TIMEOUT + RETRY_AFTER + secs(0.01));
    assert!(p.is_up());
}

#[test]
fn echoes_that_stop_mid_call_take_media_back_to_quic() {
    let mut p = UdpPath::new(secs(0.0));
    drain(&mut p, secs(0.0));
    p.heard(secs(0.01));
    drain(&mut p, secs(0.01));
    // Media keeps coming from the relay for a while.
    for i in 1..50 {
        let now = secs(f64::from(i) * 0.1);
        p.heard(now);
        drain(&mut p, now);
    }
    // Then nothing: the next keep-alive goes unanswered.
    let mut t = 5.0;
    let mut actions = Vec::new();
    while actions.last() != Some(&PathAction::WentDown) {
        actions.extend(drain(&mut p, secs(t)));
        t += 0.1;
        assert!(t < 5.0 + KEEPALIVE.as_secs_f64() + DEAD_AFTER.as_secs_f64() + 0.3);
    }
    assert!(!p.is_up());
}

proptest! {
    /// Random bytes never panic the opener, and are never authentic.
    #[test]
    fn random_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let k = keys(9);
        let _ = peek_id(&bytes);
        let mut b = bytes.clone();
        let r = open_in_place(k.key(Direction::Up), &mut b, |_| true);
        prop_assert!(r.is_err());
    }

    /// Whatever is sealed opens to itself, with its counter.
    #[test]
    fn sealing_round_trips(
        plain in proptest::collection::vec(any::<u8>(), 0..1500),
        id in any::<u32>(),
        counter in any::<u64>(),
        seed in any::<u8>(),
    ) {
        let k = keys(seed);
        let mut p = sealed(&k, Direction::Down, id, counter, &plain);
        prop_assert_eq!(peek_id(&p), Some(id));
        let (c, opened) = open_in_place(k.key(Direction::Down), &mut p, |_| true).unwrap();
        prop_assert_eq!(c, counter);
        prop_assert_eq!(opened, &plain[..]);
    }

    /// The window agrees with a model: a counter is accepted iff it was never accepted
    /// and is newer than, or at most `WINDOW` behind, the newest accepted.
    #[test]
    fn the_window_matches_its_model(
        start in 0u64..1_000_000,
        steps in proptest::collection::vec(-2500i64..2500, 1..400),
    ) {
        let mut w = ReplayWindow::new();
        let mut seen = HashSet::new();
        let mut newest: Option<u64> = None;
        let mut at = start;
        for s in steps {
            at = at.saturating_add_signed(s);
            let expect = !seen.contains(&at)
                && newest.is_none_or(|n| at > n || n - at <= WINDOW);
            prop_assert_eq!(w.fresh(at), expect, "counter {}", at);
            prop_assert_eq!(w.accept(at), expect);
            if expect {
                seen.insert(at);
                newest = Some(newest.map_or(at, |n| n.max(at)));
            }
        }
    }
}
