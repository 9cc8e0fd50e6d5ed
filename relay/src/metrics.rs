//! What an operator's Prometheus scrapes: the relay's counters, gauges and histograms,
//! written in the OpenMetrics text format by `prometheus-client`. The metrics always
//! exist (each costs an atomic add where it is counted); the endpoint that serves them
//! ([`http`]) runs only when `metrics_listen` is set.
//!
//! Counters move where things happen (sessions, the media forwarder, the group
//! committer); the gauges that describe a state (connections, sessions, calls, mailbox
//! bytes) are set from that state when a scrape asks ([`Live`]), and the relay's own CPU
//! time is read then too ([`cpu`]), so CPU per forwarded packet is
//! `rate(phone_relay_cpu_seconds_total) / rate(phone_relay_media_forwarded_total)`.

pub(crate) mod cpu;
pub(crate) mod http;

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Every metric name starts with this.
pub const PREFIX: &str = "phone_relay";

/// One label, `cause`, naming why something failed or was dropped.
type Cause = [(&'static str, &'static str); 1];

fn cause(why: &'static str) -> Cause {
    [("cause", why)]
}

/// Why a login failed, as the `cause` label of `phone_relay_login_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown number or wrong password.
    Credentials,
    /// Held back by the login back-off before any password was checked.
    RateLimited,
    /// The account is disabled.
    Disabled,
    /// Anything else (a store error, a session already logged in).
    Other,
}

impl LoginFailure {
    fn label(self) -> &'static str {
        match self {
            LoginFailure::Credentials => "credentials",
            LoginFailure::RateLimited => "rate_limited",
            LoginFailure::Disabled => "disabled",
            LoginFailure::Other => "other",
        }
    }
}

/// The media forwarder's counters, one set shared by every session's forwarding task.
#[derive(Clone, Debug, Default)]
pub(crate) struct Media {
    pub forwarded: Counter,
    /// Not a media frame (no call id could be read).
    pub malformed: Counter,
    /// No route for the call from this session (not answered, held, ended, or not its).
    pub no_route: Counter,
    /// The peer's connection refused it (closed, or datagrams too large for it), or the
    /// media socket had no room for it.
    pub send_failed: Counter,
    /// Media plane: a packet for no session's media id, or not authentic for it.
    pub auth_failed: Counter,
    /// Media plane: an authentic packet seen before, or too old for the replay window.
    pub replayed: Counter,
    /// Media plane: authentic packets received (media and keep-alives).
    pub udp_received: Counter,
    /// Media plane: packets sent (media and keep-alive echoes).
    pub udp_sent: Counter,
    /// Media plane: a session's address changed (its first packet, or a NAT rebinding).
    pub udp_moved: Counter,
}

/// The state a scrape reports as gauges, read from the relay when the scrape comes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Live {
    pub connections: u64,
    pub sessions: u64,
    pub accounts_online: u64,
    pub mailbox_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub logins: Counter,
    login_failures: Family<Cause, Counter>,
    pub media: Media,
    pub messages_stored: Counter,
    pub messages_delivered: Counter,
    pub presence_writes: Counter,
    pub presence_events: Counter,
    commit_seconds: Histogram,
    commit_writes: Histogram,
    /// Calls placed and not yet ended (ringing, active or held), as the call router
    /// last counted them.
    pub calls: Gauge,
    /// Conference rooms open, as the call router last counted them.
    pub rooms: Gauge,
    connections: Gauge,
    sessions: Gauge,
    accounts_online: Gauge,
    mailbox_bytes: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let dropped = Family::<Cause, Counter>::default();
        // Counters handed out of a family share their value with it: the forwarder bumps
        // them without a lookup per datagram.
        let drop_counter = |why| dropped.get_or_create(&cause(why)).clone();
        let media = Media {
            forwarded: Counter::default(),
            malformed: drop_counter("malformed"),
            no_route: drop_counter("no_route"),
            send_failed: drop_counter("send_failed"),
            auth_failed: drop_counter("auth_failed"),
            replayed: drop_counter("replayed"),
            udp_received: Counter::default(),
            udp_sent: Counter::default(),
            udp_moved: Counter::default(),
        };
        let login_failures = Family::<Cause, Counter>::default();
        for why in [
            LoginFailure::Credentials,
            LoginFailure::RateLimited,
            LoginFailure::Disabled,
            LoginFailure::Other,
        ] {
            // Present at 0 from the start, so that `rate()` sees the first failure.
            let _ = login_failures.get_or_create(&cause(why.label()));
        }
        let m = Metrics {
            registry: Registry::default(),
            logins: Counter::default(),
            login_failures,
            media,
            messages_stored: Counter::default(),
            messages_delivered: Counter::default(),
            presence_writes: Counter::default(),
            presence_events: Counter::default(),
            // 50 µs to about 1.6 s.
            commit_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
            // 1 to 1024 writes, the committer's largest batch.
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            calls: Gauge::default(),
            rooms: Gauge::default(),
            connections: Gauge::default(),
            sessions: Gauge::default(),
            accounts_online: Gauge::default(),
            mailbox_bytes: Gauge::default(),
        };
        m.registered(Registry::with_prefix(PREFIX), dropped)
    }

    fn registered(mut self, mut r: Registry, dropped: Family<Cause, Counter>) -> Metrics {
        r.register(
            "connections",
            "QUIC connections held, logged in or not",
            self.connections.clone(),
        );
        r.register(
            "sessions",
            "Logged-in sessions (devices online)",
            self.sessions.clone(),
        );
        r.register(
            "accounts_online",
            "Accounts with at least one device online",
            self.accounts_online.clone(),
        );
        r.register(
            "logins",
            "Sessions logged in (Login, DeviceLogin, Provision, Register)",
            self.logins.clone(),
        );
        r.register(
            "login_failures",
            "Logins refused, by cause: credentials, rate_limited, disabled, other",
            self.login_failures.clone(),
        );
        r.register(
            "calls",
            "Calls in progress (ringing, active or held)",
            self.calls.clone(),
        );
        r.register(
            "conference_rooms",
            "Conference rooms open (two or more parties, or ringing)",
            self.rooms.clone(),
        );
        r.register(
            "media_forwarded",
            "Media datagrams forwarded to the other party of their call",
            self.media.forwarded.clone(),
        );
        r.register(
            "media_dropped",
            "Media datagrams not forwarded, by cause: malformed, no_route, send_failed, auth_failed, replayed",
            dropped,
        );
        r.register(
            "media_udp_received",
            "Authentic packets received on the UDP media plane (media and keep-alives)",
            self.media.udp_received.clone(),
        );
        r.register(
            "media_udp_sent",
            "Packets sent on the UDP media plane (media and keep-alive echoes)",
            self.media.udp_sent.clone(),
        );
        r.register(
            "media_udp_address_changes",
            "Sessions heard on the UDP media plane from a new address (first packet, NAT rebinding)",
            self.media.udp_moved.clone(),
        );
        r.register(
            "messages_stored",
            "Text messages committed for their recipient",
            self.messages_stored.clone(),
        );
        r.register(
            "messages_delivered",
            "Stored messages and files whose delivery the recipient acknowledged",
            self.messages_delivered.clone(),
        );
        r.register(
            "presence_writes",
            "Presence batches written to sessions (each one write, one or more events)",
            self.presence_writes.clone(),
        );
        r.register(
            "presence_events",
            "Presence events sent to sessions, inside those batches",
            self.presence_events.clone(),
        );
        r.register_with_unit(
            "store_commit",
            "Group commits of message writes (LMDB commit with fsync), by duration",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        r.register(
            "store_commit_writes",
            "Message writes per group commit",
            self.commit_writes.clone(),
        );
        r.register_with_unit(
            "mailbox",
            "Bytes waiting in all mailboxes for their recipients",
            Unit::Bytes,
            self.mailbox_bytes.clone(),
        );
        r.register_collector(Box::new(cpu::CpuCollector));
        self.registry = r;
        self
    }

    /// Counts a refused login.
    pub fn login_failed(&self, why: LoginFailure) {
        self.login_failures.get_or_create(&cause(why.label())).inc();
    }

    /// Records one group commit of `writes` writes that took `took`.
    pub fn commit(&self, took: Duration, writes: usize) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_writes.observe(writes as f64);
    }

    /// The exposition, with the gauges set from `live`.
    pub fn render(&self, live: Live) -> String {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.connections, live.connections);
        gauge(&self.sessions, live.sessions);
        gauge(&self.accounts_online, live.accounts_online);
        gauge(&self.mailbox_bytes, live.mailbox_bytes);
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}
