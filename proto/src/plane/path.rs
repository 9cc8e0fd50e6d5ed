//! The client's view of its UDP media path to the relay (docs/protocol.md §16.5): whether
//! media goes over UDP or over QUIC datagrams, and when to send a keep-alive.
//!
//! - **Probing** (at start, and on each retry): a keep-alive every [`PROBE_EVERY`]; the
//!   relay echoes each. Any authentic packet from the relay makes the path **up**; none
//!   within [`PROBE_TIMEOUT`] makes it **down**.
//! - **Up**: media goes over UDP. A keep-alive every [`KEEPALIVE`], in a call or not: it
//!   is the device's beat ([`crate::liveness`]), which tells the relay the device lives
//!   and, by its echo, the device that the relay does (so the QUIC connection need not
//!   keep alive every second); it also keeps a NAT's mapping, and a path that breaks is
//!   noticed within a few seconds. If a keep-alive stays unanswered, with nothing else
//!   from the relay, for [`DEAD_AFTER`], the path is down.
//! - **Down**: media goes over QUIC datagrams; probing starts again after [`RETRY_AFTER`].
//!
//! Times are durations since any fixed instant the caller keeps.

use std::time::Duration;

pub const PROBE_EVERY: Duration = Duration::from_millis(500);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
pub const KEEPALIVE: Duration = crate::liveness::BEAT;
pub const DEAD_AFTER: Duration = Duration::from_secs(3);
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Probing { since: Duration },
    Up,
    Down { retry_at: Duration },
}

/// What the path asks its driver to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAction {
    /// Send a keep-alive (an empty sealed packet) to the relay's media port.
    SendKeepalive,
    /// The path came up: media goes over UDP from now on.
    WentUp,
    /// The path went down: media goes over QUIC datagrams from now on.
    WentDown,
}

#[derive(Debug, Clone)]
pub struct UdpPath {
    state: State,
    /// When the latest keep-alive went out.
    sent: Option<Duration>,
    /// The first keep-alive sent since the relay was last heard, if any.
    unanswered: Option<Duration>,
    /// Announced changes not yet polled.
    pending: Option<PathAction>,
}

impl UdpPath {
    /// A path that starts probing at `now`.
    pub fn new(now: Duration) -> UdpPath {
        UdpPath {
            state: State::Probing { since: now },
            sent: None,
            unanswered: None,
            pending: None,
        }
    }

    /// Whether media should go over UDP now.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// An authentic packet came from the relay (an echo or media).
    pub fn heard(&mut self, _now: Duration) {
        self.unanswered = None;
        if self.state != State::Up {
            self.state = State::Up;
            self.pending = Some(PathAction::WentUp);
        }
    }

    /// What to do at `now`; call it until it returns `None`, again at
    /// [`UdpPath::next_wake`] and after every [`UdpPath::heard`].
    pub fn poll(&mut self, now: Duration) -> Option<PathAction> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        match self.state {
            State::Probing { since } => {
                if now >= since + PROBE_TIMEOUT {
                    self.go_down(now);
                    return Some(PathAction::WentDown);
                }
                self.keepalive_due(now, PROBE_EVERY)
            }
            State::Up => {
                if self.unanswered.is_some_and(|t| now >= t + DEAD_AFTER) {
                    self.go_down(now);
                    return Some(PathAction::WentDown);
                }
                self.keepalive_due(now, KEEPALIVE)
            }
            State::Down { retry_at } => {
                if now >= retry_at {
                    self.state = State::Probing { since: now };
                    self.sent = None;
                    self.unanswered = None;
                    return self.keepalive_due(now, PROBE_EVERY);
                }
                None
            }
        }
    }

    /// When [`UdpPath::poll`] next has something to do (at the latest).
    pub fn next_wake(&self, now: Duration) -> Duration {
        let after = |every: Duration| self.sent.map_or(now, |s| s + every);
        match self.state {
            State::Probing { since } => after(PROBE_EVERY).min(since + PROBE_TIMEOUT),
            State::Up => {
                let dead = self.unanswered.map_or(Duration::MAX, |t| t + DEAD_AFTER);
                after(KEEPALIVE).min(dead)
            }
            State::Down { retry_at } => retry_at,
        }
        .max(now)
    }

    fn keepalive_due(&mut self, now: Duration, every: Duration) -> Option<PathAction> {
        if self.sent.is_some_and(|s| now < s + every) {
            return None;
        }
        self.sent = Some(now);
        self.unanswered.get_or_insert(now);
        Some(PathAction::SendKeepalive)
    }

    fn go_down(&mut self, now: Duration) {
        self.state = State::Down {
            retry_at: now + RETRY_AFTER,
        };
        self.unanswered = None;
    }
}
