//! The per-packet forwarding decisions of both media paths, with the sockets and the clock
//! outside: [`receive`] takes one UDP packet (the media plane), [`forward`] one media
//! datagram however it came, and [`deliver`] sends one datagram to one session by the
//! path that session uses now. What goes out is handed to a [`Sink`]; what happened comes
//! back as a value, for the caller to count.
//!
//! Authorization is the call router's, as on the QUIC path: a datagram goes only along a
//! route installed for the session that sent it (`Route::Peer`: the other party of an
//! answered, unheld call; `Route::Room`: the room's speaker selection), to the target's
//! last authenticated address or its QUIC connection. Nothing in a packet names an
//! address or a session to send to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use phoned_proto::plane::{MAX_PACKET, OpenError, peek_id};

use super::peer::{Heard, Peer};
use crate::registry::Route;
use crate::shared::lock;

/// Where [`deliver`] puts what it sends.
pub(crate) trait Sink {
    /// A sealed packet for `to`, from the media socket; `false` if it could not go.
    fn udp(&mut self, to: SocketAddr, packet: &[u8]) -> bool;
    /// A media datagram on `peer`'s QUIC connection; `false` if it was refused.
    fn quic(&mut self, peer: &Peer, datagram: &[u8]) -> bool;
}

/// Which path a delivered datagram took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Udp,
    Quic,
    Failed,
}

/// What became of one media datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Sent on to the other party of a call.
    Sent(Sent),
    /// Handed to its conference room, which sends it to the listeners it picks.
    Room,
    /// Not a media datagram: no call id could be read.
    Malformed,
    /// No route for its call from this session.
    NoRoute,
}

/// What became of one UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Too short or too long to be a packet.
    Size,
    /// No session has its media id, or it did not authenticate with that session's key.
    AuthFailed,
    /// Authentic, but its counter was seen before or is too old.
    Replayed,
    /// An authentic keep-alive; an echo was sent back (`false`: it could not go).
    Keepalive { echoed: bool, heard: Heard },
    /// An authentic media datagram, and what became of it.
    Media { forwarded: Forwarded, heard: Heard },
}

/// Scratch room for one sealed packet.
pub(crate) type Scratch = [u8; MAX_PACKET];

/// Sends `datagram` to `to`: over UDP if `to` was heard there recently, else over its
/// QUIC connection.
pub(crate) fn deliver(
    to: &Peer,
    datagram: &[u8],
    now_ms: u64,
    scratch: &mut Scratch,
    sink: &mut impl Sink,
) -> Sent {
    if let Some(udp) = to.udp()
        && let Some(addr) = udp.fresh_addr(now_ms)
    {
        return match udp.seal(datagram, scratch) {
            Some(n) if sink.udp(addr, &scratch[..n]) => Sent::Udp,
            _ => Sent::Failed,
        };
    }
    if sink.quic(to, datagram) {
        Sent::Quic
    } else {
        Sent::Failed
    }
}

/// Forwards one media datagram that session `from` sent, along its route for the call.
pub(crate) fn forward(
    from: &Peer,
    datagram: &[u8],
    now_ms: u64,
    scratch: &mut Scratch,
    sink: &mut impl Sink,
) -> Forwarded {
    let Some(call) = phoned_proto::media::peek_call(datagram) else {
        return Forwarded::Malformed;
    };
    // Held while sending: the router's writes to one session's routes wait a packet.
    let routes = lock(&from.routes);
    match routes.get(&call) {
        Some(Route::Peer(to)) => Forwarded::Sent(deliver(to, datagram, now_ms, scratch, sink)),
        Some(Route::Room(room)) => {
            room.forward(from.sid, datagram, now_ms, scratch, sink);
            Forwarded::Room
        }
        None => Forwarded::NoRoute,
    }
}

/// Fetches ahead into the cache what [`receive`] will read for each of `packets` (the
/// sessions their media ids name, their routes, the sessions those lead to; see
/// [`super::cache`]). Hints only: a batch's driver gives them for the whole batch before
/// taking its packets one by one, so that their cache misses overlap.
pub(crate) fn prefetch<'p>(
    sessions: &HashMap<u32, Arc<Peer>>,
    packets: impl IntoIterator<Item = &'p [u8]>,
) {
    const CHUNK: usize = 64;
    let mut senders: [Option<&Arc<Peer>>; CHUNK] = [None; CHUNK];
    let mut packets = packets.into_iter().peekable();
    while packets.peek().is_some() {
        let mut n = 0;
        for packet in packets.by_ref().take(CHUNK) {
            let sender = peek_id(packet).and_then(|id| sessions.get(&id));
            if let Some(s) = sender {
                s.prefetch();
            }
            senders[n] = sender;
            n += 1;
        }
        for s in senders[..n].iter().flatten() {
            s.prefetch_routes();
        }
        for s in senders[..n].iter().flatten() {
            s.prefetch_target();
        }
    }
}

/// Takes one packet that came to the media socket from `from`: authenticates it with the
/// key of the session its media id names, moves that session's address to `from` (NAT
/// rebinding), echoes a keep-alive, forwards media.
pub(crate) fn receive(
    sessions: &HashMap<u32, Arc<Peer>>,
    packet: &mut [u8],
    from: SocketAddr,
    now_ms: u64,
    scratch: &mut Scratch,
    sink: &mut impl Sink,
) -> Received {
    let Some(id) = peek_id(packet) else {
        return Received::Size;
    };
    let Some(peer) = sessions.get(&id) else {
        return Received::AuthFailed;
    };
    let Some(udp) = peer.udp() else {
        return Received::AuthFailed;
    };
    let (plain, heard) = match udp.open(packet, from, now_ms) {
        Ok(opened) => opened,
        Err(OpenError::Size) => return Received::Size,
        Err(OpenError::Auth) => return Received::AuthFailed,
        Err(OpenError::Replayed) => return Received::Replayed,
    };
    if plain.is_empty() {
        let echoed = match udp.seal(&[], scratch) {
            Some(n) => sink.udp(from, &scratch[..n]),
            None => false,
        };
        return Received::Keepalive { echoed, heard };
    }
    let forwarded = forward(peer, plain, now_ms, scratch, sink);
    Received::Media { forwarded, heard }
}
