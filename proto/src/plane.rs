//! The UDP media plane (protocol 4, docs/protocol.md §16): the same media datagrams as
//! [`crate::media`], sent as plain UDP packets to the relay's media port instead of QUIC
//! datagrams, each authenticated and encrypted per hop with a key both ends derive from
//! their QUIC connection's TLS secrets (nothing secret goes on the wire).
//!
//! - [`packet`]: the packet layout, sealing and opening (AES-128-GCM), the key derivation
//!   parameters.
//! - [`replay`]: the sliding replay window (2048 bits, as WireGuard's) each receiver keeps
//!   per session and direction.
//! - [`path`]: the client's view of its UDP path: probe, keep-alive, when to fall back to
//!   QUIC datagrams and when to try UDP again.
//!
//! All of it is sans-IO: bytes and times in, bytes and decisions out.

pub mod packet;
pub mod path;
pub mod replay;

pub use packet::{
    Direction, HEADER, KEY_LABEL, Keys, MAX_PACKET, OpenError, TAG, open_in_place, peek_counter,
    peek_id, seal,
};
pub use path::{PathAction, UdpPath};
pub use replay::ReplayWindow;

#[cfg(test)]
mod tests;
