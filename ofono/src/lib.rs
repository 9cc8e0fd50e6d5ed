//! `phoned-ofono`: phoned's line as one oFono modem, so that oFono dialers (GNOME Calls,
//! and so Phosh) place, answer and end phoned's calls. It speaks phoned's public D-Bus API
//! (`org.phoned.Phone1`) on one bus and serves oFono's (`org.ofono`) on another, the
//! system bus by default, where oFono's clients look for it.
//!
//! - [`state`]: the mapping of call states and requests, both ways;
//! - [`bridge`]: the model, sans I/O: phoned's events in, oFono signals out;
//! - [`phone`]: the adapter to phoned (its signals become events, requests become calls);
//! - [`service`]: the oFono objects and interfaces;
//! - [`run`]: the wiring, and the refusal to start when `org.ofono` is taken.

pub mod bridge;
pub mod error;
pub mod paths;
pub mod phone;
pub mod run;
pub mod service;
pub mod start_time;
pub mod state;
