//! phone-relay: the server every phoned device connects to. It holds accounts and
//! numbers, keeps presence, and (in later versions) routes calls and stores messages.
//!
//! The decisions are sans-IO ([`hub`], [`calls`], [`throttle`], [`reload`]); [`server`]
//! and `session` are the thin QUIC drivers around them; [`store`] is the durable state in
//! LMDB, and [`backup`] copies it while the relay runs.

pub mod admin;
pub mod backup;
mod bulk;
pub mod calls;
pub mod cert;
pub mod config;
pub mod hub;
mod mailbox;
pub mod password;
mod pipeline;
pub mod reload;
mod requests;
pub mod server;
mod session;
pub mod store;
pub mod throttle;

pub use config::Config;
pub use server::{Running, StartError, start};
