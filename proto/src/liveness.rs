//! Liveness of a device's link to the relay (docs/protocol.md §16.7), sans-IO: times are
//! durations since any fixed instant the caller keeps.
//!
//! A device proves it is alive at least every [`BEAT`] by the cheapest path it has: while
//! its UDP media path answers, the plane keep-alive it sends every second anyway (the relay
//! echoes it from its batched media threads); otherwise an application `Ping` on the QUIC
//! control connection ([`Heartbeat`]). Its QUIC connection keeps alive only as often as a
//! NAT needs. Each side runs a [`Watchdog`] over everything it receives from the other
//! (QUIC packets, plane packets) and takes the link as dead after [`SILENT_AFTER`] of
//! silence: the device reconnects, the relay closes the session (so that presence and calls
//! see the device gone as soon as when QUIC keep-alives ran every second with a 4 s idle
//! timeout).

use std::time::Duration;

/// How often a device keeps its link alive (plane keep-alive or QUIC `Ping`).
pub const BEAT: Duration = Duration::from_secs(1);

/// Silence after which either side takes the link as dead: four beats must all be lost.
pub const SILENT_AFTER: Duration = Duration::from_secs(4);

/// The relay heard on the UDP plane within this long: the plane carries the beat, no
/// `Ping` is needed. Two beats, so that one lost echo costs no `Ping`, and a plane that
/// stops answering is replaced by `Ping`s well before [`SILENT_AFTER`].
pub const PLANE_FRESH: Duration = Duration::from_secs(2);

/// When the other side was last heard from, and whether that was too long ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// The latest time anything was heard (or the watch started).
    last: Duration,
    /// The receive counter as last seen ([`Watchdog::count`]).
    count: Option<u64>,
}

impl Watchdog {
    /// A watch that starts at `now`, as if the other side was heard then.
    pub fn new(now: Duration) -> Watchdog {
        Watchdog {
            last: now,
            count: None,
        }
    }

    /// The other side was heard at `at` (earlier times than the latest are ignored).
    pub fn heard(&mut self, at: Duration) {
        self.last = self.last.max(at);
    }

    /// A counter of what came from the other side (say, a QUIC connection's received
    /// datagrams) reads `count` at `now`: if it moved since the last reading, the other
    /// side was heard (at `now`, as far as the watch knows). The first reading only sets
    /// the base.
    pub fn count(&mut self, now: Duration, count: u64) {
        if self.count.is_some_and(|c| c != count) {
            self.heard(now);
        }
        self.count = Some(count);
    }

    /// When the other side was last heard.
    pub fn last_heard(&self) -> Duration {
        self.last
    }

    /// How long nothing has been heard at `now`.
    pub fn silent_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.last)
    }

    /// Nothing heard for [`SILENT_AFTER`]: the link is dead.
    pub fn is_dead(&self, now: Duration) -> bool {
        self.silent_for(now) >= SILENT_AFTER
    }
}

/// The device's side: when its beat must go as an application `Ping` on the QUIC
/// connection because the UDP plane does not carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// When the latest `Ping` went.
    pinged: Option<Duration>,
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat::default()
    }

    /// Whether the plane carries the beat at `now`: the relay was heard on it (`plane`:
    /// when, if ever) within [`PLANE_FRESH`].
    pub fn plane_carries(now: Duration, plane: Option<Duration>) -> bool {
        plane.is_some_and(|p| now.saturating_sub(p) < PLANE_FRESH)
    }

    /// Whether to send a `Ping` now; `true` counts it as sent.
    pub fn ping_due(&mut self, now: Duration, plane: Option<Duration>) -> bool {
        if Heartbeat::plane_carries(now, plane) || self.pinged.is_some_and(|t| now < t + BEAT) {
            return false;
        }
        self.pinged = Some(now);
        true
    }

    /// When [`Heartbeat::ping_due`] may next say yes (at the latest).
    pub fn next_wake(&self, now: Duration, plane: Option<Duration>) -> Duration {
        let next_ping = self.pinged.map_or(now, |t| t + BEAT);
        let plane_stale = plane.map_or(now, |p| p + PLANE_FRESH);
        next_ping.max(plane_stale).max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn silence_for_the_bound_is_death_and_anything_heard_restarts_it() {
        let mut w = Watchdog::new(s(10.0));
        assert!(!w.is_dead(s(13.9)));
        assert!(w.is_dead(s(14.0)));
        w.heard(s(13.0));
        assert!(!w.is_dead(s(16.9)));
        assert!(w.is_dead(s(17.0)));
        // An older time does not move the watch back.
        w.heard(s(11.0));
        assert_eq!(w.last_heard(), s(13.0));
    }

    #[test]
    fn a_counter_that_moves_is_heard_and_one_that_stays_is_not() {
        let mut w = Watchdog::new(s(0.0));
        // The first reading is the base, whatever its value.
        w.count(s(1.0), 500);
        assert_eq!(w.last_heard(), s(0.0));
        w.count(s(2.0), 500);
        assert_eq!(w.last_heard(), s(0.0));
        w.count(s(3.0), 501);
        assert_eq!(w.last_heard(), s(3.0));
        w.count(s(6.5), 501);
        assert!(!w.is_dead(s(6.5)));
        w.count(s(7.0), 501);
        assert!(w.is_dead(s(7.0)));
    }

    #[test]
    fn a_fresh_plane_carries_the_beat_and_no_ping_goes() {
        let mut h = Heartbeat::new();
        for tick in 0..100 {
            let now = s(f64::from(tick) * 0.25);
            // Echoes each second, heard a little after the keep-alive.
            let plane = Some(s((now.as_secs_f64() - 0.01).floor().max(0.0)));
            assert!(!h.ping_due(now, plane), "at {now:?}");
        }
    }

    #[test]
    fn without_a_plane_a_ping_goes_each_beat() {
        let mut h = Heartbeat::new();
        let sent: Vec<u32> = (0..40)
            .filter(|&tick| h.ping_due(s(f64::from(tick) * 0.25), None))
            .collect();
        assert_eq!(sent, vec![0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
    }

    #[test]
    fn pings_start_once_the_plane_goes_quiet_well_before_the_relay_gives_up() {
        let mut h = Heartbeat::new();
        let last_echo = s(10.0);
        let mut first = None;
        for tick in 40..80 {
            let now = s(f64::from(tick) * 0.25);
            if h.ping_due(now, Some(last_echo)) {
                first.get_or_insert(now);
            }
        }
        let first = first.expect("a ping");
        assert_eq!(first, last_echo + PLANE_FRESH);
        // The relay heard the device at about the last echo: the first ping reaches it
        // with half the silence bound to spare.
        assert!(first + BEAT < last_echo + SILENT_AFTER);
    }

    #[test]
    fn next_wake_is_when_a_ping_may_be_due() {
        let mut h = Heartbeat::new();
        assert_eq!(h.next_wake(s(5.0), None), s(5.0));
        assert!(h.ping_due(s(5.0), None));
        assert_eq!(h.next_wake(s(5.2), None), s(6.0));
        assert_eq!(h.next_wake(s(5.2), Some(s(5.1))), s(7.1));
    }
}
