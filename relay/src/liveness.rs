//! The relay's watch over its devices' liveness (docs/protocol.md §16.7): a device that
//! asked to be watched (`Request::Watch`: it beats, [`phoned_proto::liveness`], a plane
//! keep-alive or a `Ping` each second, with long QUIC keep-alives) and then sends nothing
//! for its bound (4 s for phoned: nothing on its QUIC connection, nothing on the UDP plane)
//! has its connection closed, so that presence and calls see it gone as soon as a QUIC idle
//! timeout of 4 s used to tell.
//!
//! Only sessions that asked are watched: older daemons, tools and other clients keep
//! alive by QUIC at their own pace and are left to the QUIC idle timeout, as before.
//!
//! [`Watch`] decides, with the readings and the clock passed in; [`run`] is the task that
//! reads the watched sessions' counters each [`SWEEP`] and closes the silent ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::error::close;
use phoned_proto::liveness::Watchdog;

use crate::hub::SessionId;
use crate::shared::Shared;

/// How often the task looks: a silent device is closed within 0.5 s after its bound.
pub(crate) const SWEEP: Duration = Duration::from_millis(500);

/// One session's readings at one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub sid: SessionId,
    /// Datagrams received on its QUIC connection so far.
    pub quic_rx: u64,
    /// When it was last heard on the UDP plane (ms on [`crate::plane::now_ms`]'s clock).
    pub plane_ms: Option<u64>,
    /// How long it may be silent (what it asked for in `Watch`).
    pub bound: Duration,
}

/// The watchdogs of all sessions, sans-IO.
#[derive(Default)]
pub(crate) struct Watch {
    dogs: HashMap<SessionId, Watchdog>,
}

impl Watch {
    /// One sweep at `now` (on the plane's clock) over the readings of every watched
    /// session; returns those silent for longer than their bound. Sessions not in
    /// `readings` are forgotten.
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
            if dog.silent_for(now) >= r.bound {
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
            .map(|(sid, conn, peer, bound)| Reading {
                sid: *sid,
                quic_rx: conn.stats().udp_rx.datagrams,
                plane_ms: peer.udp().and_then(|u| u.heard_ms()),
                bound: *bound,
            })
            .collect();
        let now = Duration::from_millis(crate::plane::now_ms());
        let silent = watch.sweep(now, &readings);
        for sid in silent {
            if let Some((_, conn, _, bound)) = handles.iter().find(|h| h.0 == sid) {
                tracing::info!(
                    sid,
                    remote = %conn.remote_address(),
                    "nothing from the device for {:.1} s: closing its connection",
                    bound.as_secs_f64()
                );
                conn.close(close::SILENT.into(), b"silent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(4);

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn reading(sid: SessionId, quic_rx: u64, plane_ms: Option<u64>) -> Reading {
        Reading {
            sid,
            quic_rx,
            plane_ms,
            bound: BOUND,
        }
    }

    #[test]
    fn a_device_beating_on_the_plane_lives_and_is_closed_at_its_bound_after_it_stops() {
        let mut w = Watch::default();
        // Keep-alives each second on the plane; its QUIC connection quiet.
        for t in (0..10_000).step_by(500) {
            let plane = Some(t / 1000 * 1000);
            assert!(w.sweep(at(t), &[reading(1, 7, plane)]).is_empty());
        }
        // Last heard at 9 s.
        let mut closed = None;
        for t in (10_000..20_000).step_by(500) {
            if !w.sweep(at(t), &[reading(1, 7, Some(9_000))]).is_empty() {
                closed = Some(t);
                break;
            }
        }
        assert_eq!(closed, Some(13_000));
    }

    #[test]
    fn quic_traffic_keeps_a_watched_device_alive() {
        let mut w = Watch::default();
        // Heard once on the plane, then only on QUIC (its UDP path broke: Pings).
        for (i, t) in (0..20_000).step_by(500).enumerate() {
            let rx = i as u64 / 2;
            assert!(w.sweep(at(t), &[reading(1, rx, Some(0))]).is_empty());
        }
    }

    #[test]
    fn a_pinging_device_that_stops_is_closed() {
        let mut w = Watch::default();
        assert!(w.sweep(at(0), &[reading(1, 10, None)]).is_empty());
        assert!(w.sweep(at(1_000), &[reading(1, 11, None)]).is_empty());
        assert!(w.sweep(at(4_500), &[reading(1, 11, None)]).is_empty());
        assert_eq!(w.sweep(at(5_000), &[reading(1, 11, None)]), vec![1]);
    }

    #[test]
    fn each_session_has_its_own_bound() {
        let mut w = Watch::default();
        let long = Reading {
            bound: Duration::from_secs(10),
            ..reading(2, 0, None)
        };
        assert!(w.sweep(at(0), &[reading(1, 0, None), long]).is_empty());
        assert_eq!(w.sweep(at(4_000), &[reading(1, 0, None), long]), vec![1]);
        assert!(w.sweep(at(9_500), &[long]).is_empty());
        assert_eq!(w.sweep(at(10_000), &[long]), vec![2]);
    }

    #[test]
    fn gone_sessions_are_forgotten_and_a_new_one_starts_afresh() {
        let mut w = Watch::default();
        w.sweep(at(0), &[reading(1, 0, Some(0))]);
        w.sweep(at(500), &[]);
        assert!(w.dogs.is_empty());
        // Seen again, the watch starts at this sighting, not at the old one's last.
        assert!(w.sweep(at(10_000), &[reading(1, 0, Some(0))]).is_empty());
        assert_eq!(w.sweep(at(14_000), &[reading(1, 0, Some(0))]), vec![1]);
    }
}
