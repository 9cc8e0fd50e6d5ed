//! Whether a call's two audio devices work, sans-IO: [`DeviceHealth`] takes the results of
//! opening the capture and playback devices, what the running streams report (their
//! frame counters and `problem()`), and the time; it says when to open a device again,
//! when to close a stream that failed, and what to tell the user ([`HealthAction`]).
//!
//! A direction that is down is not the end of the call: the media thread (`session.rs`)
//! runs a stand-in for it (`standin.rs`: silence in, output discarded) so the far side
//! still hears what exists, and this machine asks for a new open every [`RETRY`] until
//! one works. The user sees one line for both directions, reported only when it changes
//! (and once when the first opens have settled, so a working start clears an old
//! problem shown at the account level).

use std::time::Duration;

use crate::audio::backend::Direction;

/// How long a failed direction waits before it is opened again: soon enough that a
/// returning device is back within about a second, rare enough that a missing one costs
/// nothing (one failed open a second).
pub const RETRY: Duration = Duration::from_secs(1);

/// A running stream whose device has moved no audio for this long counts as failed, even
/// if it reports no problem (a cpal stream whose worker gave up, a server that hangs).
/// Longer than any device period or start-up delay (ALSA's largest periods are ~0.5 s).
pub const STALL: Duration = Duration::from_secs(2);

/// How long a failure of a running stream waits before it is reported, so that both
/// directions failing for one cause (the sound server died: each of its streams notices
/// within a block or two) make one report, one log line, one D-Bus change.
pub const SETTLE: Duration = Duration::from_millis(100);

/// What the media thread should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAction {
    /// Open this direction's device (away from the media tick: it may take a while).
    Open(Direction),
    /// This direction's stream failed: close it; its stand-in takes over.
    Close(Direction),
    /// The call's audio problem is now this, in one line for users (`None`: all works).
    Report(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    /// An open is under way; `why` is the failure it retries after, if any, so the
    /// reported problem does not flap while a retry runs.
    Opening { why: Option<String> },
    /// Moving audio: the stream's frame counter as last seen, and when it last moved.
    Running { frames: u64, moved_at: Duration },
    /// Not working, for `why`; opened again at `retry_at`.
    Down { why: String, retry_at: Duration },
}

impl Side {
    fn problem(&self) -> Option<&str> {
        match self {
            Side::Opening { why } => why.as_deref(),
            Side::Running { .. } => None,
            Side::Down { why, .. } => Some(why),
        }
    }

    /// Whether the first open has not come back yet.
    fn unsettled(&self) -> bool {
        matches!(self, Side::Opening { why: None })
    }
}

/// The health of a call's capture and playback devices; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use phoned::audio::backend::Direction;
/// use phoned::call::media::{DeviceHealth, HealthAction};
///
/// let mut health = DeviceHealth::new();
/// let now = Duration::ZERO;
/// assert_eq!(health.poll(now), Some(HealthAction::Open(Direction::Capture)));
/// assert_eq!(health.poll(now), Some(HealthAction::Open(Direction::Playback)));
/// health.opened(now, Direction::Capture, Ok(()));
/// health.opened(now, Direction::Playback, Err("no such device".into()));
/// assert_eq!(
///     health.poll(now),
///     Some(HealthAction::Report(Some("no audio output: no such device".into())))
/// );
/// assert_eq!(health.poll(now), None);
/// ```
#[derive(Debug)]
pub struct DeviceHealth {
    capture: Side,
    playback: Side,
    /// Opens and closes asked for and not yet polled, in order.
    pending: Vec<HealthAction>,
    /// What was last reported; `None` until the first report.
    reported: Option<Option<String>>,
    /// A side changed since the last report was worked out: only then is the message
    /// built again (the media thread polls every tick).
    dirty: bool,
    /// A running stream failed: no report before this, in case the other one follows.
    settle_until: Duration,
}

impl Default for DeviceHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceHealth {
    /// Both devices still to open: the first polls ask for them.
    pub fn new() -> DeviceHealth {
        DeviceHealth {
            capture: Side::Opening { why: None },
            playback: Side::Opening { why: None },
            pending: vec![
                HealthAction::Open(Direction::Capture),
                HealthAction::Open(Direction::Playback),
            ],
            reported: None,
            dirty: true,
            settle_until: Duration::ZERO,
        }
    }

    fn side(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Capture => &mut self.capture,
            Direction::Playback => &mut self.playback,
        }
    }

    /// An open of `direction` asked for by [`HealthAction::Open`] came back: the stream
    /// runs, or `why` it could not be opened.
    ///
    /// A retry that fails keeps the reason the direction first went down for: the user's
    /// line stays as it was until the device is back (the first reason says what
    /// happened; "connection refused" on every retry after a server died would only
    /// change the line). A retry that works waits [`SETTLE`] before the report, so that
    /// both directions coming back together make one report.
    pub fn opened(&mut self, now: Duration, direction: Direction, result: Result<(), String>) {
        let side = self.side(direction);
        let Side::Opening { why: before } = side else {
            return;
        };
        let retry = before.is_some();
        *side = match (result, before.take()) {
            (Ok(()), _) => Side::Running {
                frames: 0,
                moved_at: now,
            },
            (Err(why), first) => Side::Down {
                why: first.unwrap_or(why),
                retry_at: now + RETRY,
            },
        };
        self.dirty = true;
        if retry {
            self.settle_until = self.settle_until.max(now + SETTLE);
        }
    }

    /// What `direction`'s running stream reports at `now`: its frame counter and its
    /// `problem()`. A problem, or a counter that has not moved for [`STALL`], takes the
    /// direction down: its stream is to be closed.
    pub fn observe(
        &mut self,
        now: Duration,
        direction: Direction,
        frames: u64,
        problem: Option<String>,
    ) {
        let side = self.side(direction);
        let Side::Running {
            frames: seen,
            moved_at,
        } = side
        else {
            return;
        };
        let why = match problem {
            Some(p) => p,
            None if frames != *seen => {
                *seen = frames;
                *moved_at = now;
                return;
            }
            None if now.saturating_sub(*moved_at) >= STALL => {
                format!("the {direction} device stopped moving audio")
            }
            None => return,
        };
        *side = Side::Down {
            why,
            retry_at: now + RETRY,
        };
        self.pending.push(HealthAction::Close(direction));
        self.dirty = true;
        self.settle_until = self.settle_until.max(now + SETTLE);
    }

    /// The next thing to do at `now`, if any; call until `None`.
    pub fn poll(&mut self, now: Duration) -> Option<HealthAction> {
        if !self.pending.is_empty() {
            return Some(self.pending.remove(0));
        }
        for direction in [Direction::Capture, Direction::Playback] {
            let side = self.side(direction);
            if let Side::Down { why, retry_at } = side
                && now >= *retry_at
            {
                *side = Side::Opening {
                    why: Some(std::mem::take(why)),
                };
                return Some(HealthAction::Open(direction));
            }
        }
        if !self.dirty
            || self.capture.unsettled()
            || self.playback.unsettled()
            || now < self.settle_until
        {
            return None;
        }
        self.dirty = false;
        let problem = self.problem();
        if self.reported.as_ref() == Some(&problem) {
            return None;
        }
        self.reported = Some(problem.clone());
        Some(HealthAction::Report(problem))
    }

    /// The problem in one line: each direction that does not work, and why.
    fn problem(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("input", self.capture.problem()),
            ("output", self.playback.problem()),
        ]
        .into_iter()
        .filter_map(|(what, why)| Some(format!("no audio {what}: {}", why?)))
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Whether `direction` has a running stream (else its stand-in plays).
    pub fn running(&self, direction: Direction) -> bool {
        matches!(
            match direction {
                Direction::Capture => &self.capture,
                Direction::Playback => &self.playback,
            },
            Side::Running { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Capture, Playback};

    const MS: Duration = Duration::from_millis(1);

    fn drain(h: &mut DeviceHealth, now: Duration) -> Vec<HealthAction> {
        std::iter::from_fn(|| h.poll(now)).collect()
    }

    fn started() -> DeviceHealth {
        let mut h = DeviceHealth::new();
        assert_eq!(
            drain(&mut h, Duration::ZERO),
            [HealthAction::Open(Capture), HealthAction::Open(Playback)]
        );
        h
    }

    #[test]
    fn a_start_where_both_devices_open_reports_once_that_all_works() {
        let mut h = started();
        h.opened(10 * MS, Capture, Ok(()));
        // Nothing is said while the other open is still under way.
        assert_eq!(drain(&mut h, 10 * MS), []);
        h.opened(20 * MS, Playback, Ok(()));
        assert_eq!(drain(&mut h, 20 * MS), [HealthAction::Report(None)]);
        for t in 1..1000 {
            let now = 20 * MS + t * 5 * MS;
            h.observe(now, Capture, t as u64 * 240, None);
            h.observe(now, Playback, t as u64 * 240, None);
            assert_eq!(drain(&mut h, now), []);
        }
        assert!(h.running(Capture) && h.running(Playback));
    }

    #[test]
    fn no_device_at_all_is_one_report_and_a_retry_a_second_without_more_reports() {
        let mut h = started();
        h.opened(MS, Capture, Err("connection refused".into()));
        h.opened(MS, Playback, Err("connection refused".into()));
        assert_eq!(
            drain(&mut h, MS),
            [HealthAction::Report(Some(
                "no audio input: connection refused; no audio output: connection refused".into()
            ))]
        );
        assert!(!h.running(Capture) && !h.running(Playback));
        // Ticks every 5 ms for 10 s: exactly one open per direction per second, no reports.
        let mut opens = 0;
        for t in 1..=2000u32 {
            let now = MS + t * 5 * MS;
            for a in drain(&mut h, now) {
                match a {
                    HealthAction::Open(d) => {
                        opens += 1;
                        h.opened(now, d, Err("connection refused".into()));
                    }
                    other => panic!("unexpected {other:?} at {now:?}"),
                }
            }
        }
        assert_eq!(opens, 20);
    }

    #[test]
    fn a_stream_with_a_problem_is_closed_reported_retried_and_recovers() {
        let mut h = started();
        h.opened(MS, Capture, Ok(()));
        h.opened(MS, Playback, Ok(()));
        assert_eq!(drain(&mut h, MS), [HealthAction::Report(None)]);
        let lost = "audio server connection lost (playback): Connection terminated";
        h.observe(100 * MS, Playback, 4800, Some(lost.into()));
        assert_eq!(drain(&mut h, 100 * MS), [HealthAction::Close(Playback)]);
        assert_eq!(
            drain(&mut h, 100 * MS + SETTLE),
            [HealthAction::Report(Some(format!(
                "no audio output: {lost}"
            )))]
        );
        assert_eq!(drain(&mut h, 1099 * MS), []);
        assert_eq!(drain(&mut h, 1100 * MS), [HealthAction::Open(Playback)]);
        // The retry fails for another reason: the line keeps the first one.
        h.opened(1110 * MS, Playback, Err("connection refused".into()));
        assert_eq!(drain(&mut h, 1110 * MS + SETTLE), []);
        assert_eq!(drain(&mut h, 2110 * MS), [HealthAction::Open(Playback)]);
        // While the retry runs, the problem stands unchanged: nothing to say.
        assert_eq!(drain(&mut h, 2115 * MS), []);
        h.opened(2120 * MS, Playback, Ok(()));
        assert_eq!(drain(&mut h, 2120 * MS), []);
        assert_eq!(
            drain(&mut h, 2120 * MS + SETTLE),
            [HealthAction::Report(None)]
        );
        assert!(h.running(Playback));
    }

    #[test]
    fn a_stream_that_stops_moving_audio_counts_as_failed() {
        let mut h = started();
        h.opened(Duration::ZERO, Capture, Ok(()));
        h.opened(Duration::ZERO, Playback, Ok(()));
        drain(&mut h, Duration::ZERO);
        h.observe(500 * MS, Capture, 480, None);
        // Stuck at 480 frames: fine for just under two seconds, failed at two.
        h.observe(2499 * MS, Capture, 480, None);
        assert_eq!(drain(&mut h, 2499 * MS), []);
        h.observe(2500 * MS, Capture, 480, None);
        assert_eq!(drain(&mut h, 2500 * MS), [HealthAction::Close(Capture)]);
        assert_eq!(
            drain(&mut h, 2500 * MS + SETTLE),
            [HealthAction::Report(Some(
                "no audio input: the capture device stopped moving audio".into()
            ))]
        );
    }

    #[test]
    fn both_streams_failing_for_one_cause_make_one_report() {
        let mut h = started();
        h.opened(MS, Capture, Ok(()));
        h.opened(MS, Playback, Ok(()));
        drain(&mut h, MS);
        // The server dies: capture notices first, playback a block later.
        h.observe(500 * MS, Capture, 960, Some("server gone".into()));
        assert_eq!(drain(&mut h, 500 * MS), [HealthAction::Close(Capture)]);
        h.observe(520 * MS, Playback, 960, Some("server gone".into()));
        assert_eq!(drain(&mut h, 520 * MS), [HealthAction::Close(Playback)]);
        assert_eq!(drain(&mut h, 619 * MS), []);
        assert_eq!(
            drain(&mut h, 620 * MS),
            [HealthAction::Report(Some(
                "no audio input: server gone; no audio output: server gone".into()
            ))]
        );
        // A server is back: both reopen, a moment apart; one report that all works.
        assert_eq!(
            drain(&mut h, 1520 * MS),
            [HealthAction::Open(Capture), HealthAction::Open(Playback)]
        );
        h.opened(1530 * MS, Capture, Ok(()));
        h.opened(1560 * MS, Playback, Ok(()));
        assert_eq!(drain(&mut h, 1600 * MS), []);
        assert_eq!(drain(&mut h, 1660 * MS), [HealthAction::Report(None)]);
    }

    #[test]
    fn late_results_for_a_side_not_opening_are_ignored() {
        let mut h = started();
        h.opened(MS, Capture, Ok(()));
        h.opened(MS, Playback, Ok(()));
        drain(&mut h, MS);
        h.opened(2 * MS, Capture, Err("stale".into()));
        assert!(h.running(Capture));
        // Observing a side that is not running changes nothing.
        let mut down = started();
        down.opened(MS, Capture, Err("gone".into()));
        down.observe(2 * MS, Capture, 0, Some("other".into()));
        down.opened(MS, Playback, Ok(()));
        assert_eq!(
            drain(&mut down, 3 * MS),
            [HealthAction::Report(Some("no audio input: gone".into()))]
        );
    }
}
