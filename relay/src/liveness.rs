//! The relay's watch over its devices' liveness (docs/protocol.md §16.7): a device that
//! keeps alive by the beat ([`phoned_proto::liveness`]: a plane keep-alive or a `Ping`
//! each second, with long QUIC keep-alives) and then goes silent for
//! [`phoned_proto::liveness::SILENT_AFTER`] (nothing on its QUIC connection, nothing on the
//! UDP plane) has its connection closed, so that presence and calls see it gone as soon as
//! a QUIC idle timeout of 4 s used to tell.
//!
//! A session is watched once it has shown that it beats: the relay heard it on the UDP
//! plane, or it sent a `Ping`. Older devices keep their QUIC keep-alive at 1 s, so their
//! connection is never silent that long while they live; sessions that never beat (older
//! relays' clients, tools) are left to the QUIC idle timeout.
//!
//! [`Watch`] decides, with the readings and the clock passed in; [`run`] is the task that
//! reads every session's counters each [`SWEEP`] and closes the silent ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::error::close;
use phoned_proto::liveness::{SILENT_AFTER, Watchdog};

use crate::hub::SessionId;
use crate::shared::Shared;

/// How often the task looks: a silent device is closed 4–4.5 s after it was last heard.
pub(crate) const SWEEP: Duration = Duration::from_millis(500);

/// One session's readings at one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub sid: SessionId,
    /// Datagrams received on its QUIC connection so far.
    pub quic_rx: u64,
    /// When it was last heard on the UDP plane (ms on [`crate::plane::now_ms`]'s clock).
    pub plane_ms: Option<u64>,
    /// It sent a `Ping`.
    pub pinged: bool,
}

/// The watchdogs of all sessions, sans-IO.
#[derive(Default)]
pub(crate) struct Watch {
    dogs: HashMap<SessionId, Watchdog>,
}

impl Watch {
    /// One sweep at `now` (on the plane's clock) over the readings of every live session;
    /// returns the watched sessions that were silent too long. Sessions not in `readings`
    /// are forgotten.
    pub fn sweep(&mut self, now: Duration, readings: &[Reading]) -> Vec<SessionId> {
        let mut silent = Vec::new();
        let mut seen = HashMap::with_capacity(readings.len());
        for r in readings {
            let mut dog = self
                .dogs
                .remove(&r.sid)
                .unwrap_or_else(|| Watchdog::new(now));
            dog.count(now, r.quic_rx);
            if let Some(ms) = r.plane_ms {
                dog.heard(Duration::from_millis(ms));
            }
            let beats = r.pinged || r.plane_ms.is_some();
            if beats && dog.is_dead(now) {
                silent.push(r.sid);
            } else {
                seen.insert(r.sid, dog);
            }
        }
        self.dogs = seen;
        silent
    }
}

/// The task: sweeps every [`SWEEP`] until the relay stops (the task is dropped).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut watch = Watch::default();
    loop {
        smol::Timer::after(SWEEP).await;
        let handles = shared.sessions.watched();
        let readings: Vec<Reading> = handles
            .iter()
            .map(|(sid, conn, peer, pinged)| Reading {
                sid: *sid,
                quic_rx: conn.stats().udp_rx.datagrams,
                plane_ms: peer.udp().and_then(|u| u.heard_ms()),
                pinged: *pinged,
            })
            .collect();
        let now = Duration::from_millis(crate::plane::now_ms());
        let silent = watch.sweep(now, &readings);
        for sid in silent {
            if let Some((_, conn, _, _)) = handles.iter().find(|h| h.0 == sid) {
                tracing::info!(
                    sid,
                    remote = %conn.remote_address(),
                    "nothing from the device for {} s: closing its connection",
                    SILENT_AFTER.as_secs()
                );
                conn.close(close::SILENT.into(), b"silent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn reading(sid: SessionId, quic_rx: u64, plane_ms: Option<u64>, pinged: bool) -> Reading {
        Reading {
            sid,
            quic_rx,
            plane_ms,
            pinged,
        }
    }

    #[test]
    fn a_device_beating_on_the_plane_lives_and_is_closed_four_seconds_after_it_stops() {
        let mut w = Watch::default();
        // Keep-alives each second on the plane; its QUIC connection quiet.
        for t in (0..10_000).step_by(500) {
            let plane = Some(t / 1000 * 1000);
            assert!(w.sweep(at(t), &[reading(1, 7, plane, false)]).is_empty());
        }
        // Last heard at 9 s.
        let mut closed = None;
        for t in (10_000..20_000).step_by(500) {
            if !w
                .sweep(at(t), &[reading(1, 7, Some(9_000), false)])
                .is_empty()
            {
                closed = Some(t);
                break;
            }
        }
        assert_eq!(closed, Some(13_000));
    }

    #[test]
    fn quic_traffic_keeps_a_watched_device_alive() {
        let mut w = Watch::default();
        // Once heard on the plane, then only QUIC (its UDP path broke: Pings).
        for (i, t) in (0..20_000).step_by(500).enumerate() {
            let rx = i as u64 / 2;
            assert!(w.sweep(at(t), &[reading(1, rx, Some(0), true)]).is_empty());
        }
    }

    #[test]
    fn a_pinging_device_that_stops_is_closed() {
        let mut w = Watch::default();
        assert!(w.sweep(at(0), &[reading(1, 10, None, true)]).is_empty());
        assert!(w.sweep(at(1_000), &[reading(1, 11, None, true)]).is_empty());
        assert!(w.sweep(at(4_500), &[reading(1, 11, None, true)]).is_empty());
        assert_eq!(w.sweep(at(5_000), &[reading(1, 11, None, true)]), vec![1]);
    }

    #[test]
    fn a_session_that_never_beat_is_left_to_the_quic_idle_timeout() {
        let mut w = Watch::default();
        for t in (0..60_000).step_by(500) {
            assert!(w.sweep(at(t), &[reading(1, 3, None, false)]).is_empty());
        }
    }

    #[test]
    fn gone_sessions_are_forgotten_and_a_new_one_starts_afresh() {
        let mut w = Watch::default();
        w.sweep(at(0), &[reading(1, 0, Some(0), false)]);
        w.sweep(at(500), &[]);
        assert!(w.dogs.is_empty());
        // Seen again (a new session with the same id cannot happen, but the watch would
        // start it at its first sighting, not at the old one's last).
        assert!(
            w.sweep(at(10_000), &[reading(1, 0, Some(0), false)])
                .is_empty()
        );
        assert_eq!(
            w.sweep(at(14_000), &[reading(1, 0, Some(0), false)]),
            vec![1]
        );
    }
}
