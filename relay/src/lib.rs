//! phone-relay: the server every phoned device connects to. What each module owns:
//!
//! - Decisions, sans-IO (time and inputs in, actions out): [`hub`] who is online and who
//!   hears of it; [`calls`] the call router (who rings, who answered, where media goes);
//!   [`conference`] conference rooms beside it, and which speakers a room forwards;
//!   [`throttle`] login back-off and account-creation budgets; [`admission`] the
//!   connection limits (in all, per address); [`reload`] what a changed config changes;
//!   [`space`] the disk and database reserves, unfinished uploads and acknowledgements
//!   waiting for room.
//! - Owners of live state: `router` the task that owns the call router and drives its
//!   ring timeouts; `registry` the live sessions, their writer queues and media routes;
//!   `shared` presence, limits and config behind private locks, shared by all sessions;
//!   `delivery` how far each session has been sent its inbox, and who acks receipts;
//!   `flusher` the task that sends presence batches when the hub says they are due;
//!   `upkeep` the task that measures free space, expires unfinished uploads and retries
//!   acknowledgements; `liveness` the task that closes devices that stopped beating.
//! - Drivers, moving bytes: [`server`] binds the QUIC endpoint, starts those tasks and
//!   accepts connections; `session` serves one connection's control stream (answers from
//!   `requests`, messages via `mailbox` and `pipeline`) and forwards its QUIC media
//!   datagrams; `plane` is the UDP media plane (sealed packets, forwarded in batches by
//!   plain threads; its per-packet decisions sans-IO in `plane::forward`); `push`
//!   sends a device its inbox and receipts from the store, in order; `bulk` serves file
//!   transfer streams.
//! - Durable state: [`store`] accounts, numbers and mailboxes, in LMDB or PostgreSQL
//!   behind one interface; [`backup`] copies the LMDB store while the relay runs; [`admin`] the `phone-relay admin` account commands
//!   (the relay applies their changes to live sessions).
//! - [`cluster`]: several relays on one PostgreSQL database: presence leases, and
//!   `LISTEN/NOTIFY` for what other relays changed.
//! - `metrics`: counters and gauges for operators, served as OpenMetrics text on
//!   `metrics_listen` when that is set.
//! - [`config`], [`cert`] (the TLS identity), [`token`] (device login tokens) and
//!   [`password`] (Argon2id on a thread pool).

pub mod admin;
pub mod admission;
pub mod backup;
mod bulk;
pub mod calls;
pub mod cert;
pub mod cluster;
pub mod conference;
pub mod config;
mod delivery;
mod flusher;
pub mod hub;
mod liveness;
mod mailbox;
mod metrics;
pub mod password;
mod pipeline;
mod plane;
mod push;
mod registry;
pub mod reload;
mod requests;
mod room_media;
mod router;
pub mod server;
mod session;
mod shared;
pub mod space;
pub mod store;
pub mod throttle;
pub mod token;
mod upkeep;

pub use config::Config;
pub use server::{Running, StartError, start};
