//! What phoned's programs need beside the protocol itself: the relay client a device (or a
//! test, or a benchmark) talks to a relay with, and the service glue the relay and the
//! daemon share.
//!
//! - [`client`]: connect over QUIC, say `Hello`, requests and their answers, pushed events,
//!   provisioning and login, bulk streams ([`bulk`]) for files.
//! - [`verify`]: how the relay's certificate is trusted (pinned, learnt on first use, public).
//! - [`systemd`]: `sd_notify` readiness, reload, stopping and the watchdog keep-alive.
//! - [`signals`]: SIGTERM/SIGINT stop a service, SIGHUP reloads it.
//! - [`logging`]: `tracing` output in the shape the journal (or a terminal) wants.
//! - [`config`]: the config error, and the line hint of a config file that does not parse.
//! - [`dirs`]: the default state directory.
//!
//! `phoned-proto` holds the messages as pure data; everything here does I/O with them.

pub mod bulk;
pub mod client;
pub mod config;
pub mod dirs;
pub mod logging;
pub mod signals;
pub mod systemd;
pub mod verify;

pub use bulk::{Bulk, BulkError};
pub use client::{
    BEAT_IDLE_TIMEOUT, BEAT_KEEP_ALIVE, Client, ClientError, IDLE_TIMEOUT, KEEP_ALIVE, KeepAlive,
    RawConnection, connect_raw, endpoint, endpoint_on,
};
pub use verify::Trust;
