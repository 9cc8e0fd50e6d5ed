//! One session's media endpoint, as the forwarders see it: its QUIC connection (always
//! there: the fallback, and the only path of a session older than protocol 4), and once
//! the session has a media id, its UDP side: keys, the counter of packets sent to it, the
//! replay window of packets from it, and the address it was last heard from.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use phoned_proto::plane::{Direction, Keys, OpenError, ReplayWindow, open_in_place, seal};

use super::cache;
use crate::hub::SessionId;
use crate::registry::{Route, Routes};
use crate::shared::lock;

/// A session heard on the UDP plane within this long gets its media over UDP; after
/// that, over its QUIC connection (its client fell back, or went away). A client in a
/// call sends at least a keep-alive a second.
pub(crate) const UDP_FRESH_MS: u64 = 3_000;

/// Where a session's QUIC datagrams go (a `quinn::Connection`; a recorder in tests).
pub(crate) trait QuicOut: Send + Sync {
    /// Queues one datagram; `false` if the connection refused it (closed, too large).
    fn send_datagram(&self, datagram: Bytes) -> bool;
}

impl QuicOut for quinn::Connection {
    fn send_datagram(&self, datagram: Bytes) -> bool {
        quinn::Connection::send_datagram(self, datagram).is_ok()
    }
}

pub(crate) struct Peer {
    pub sid: SessionId,
    /// This session's media routes (call → where its media goes), set by the router.
    pub routes: Routes,
    quic: Box<dyn QuicOut>,
    udp: OnceLock<Udp>,
}

/// A session's UDP side, from its login on (protocol 4 and a relay with a media plane).
pub(crate) struct Udp {
    pub id: u32,
    keys: Keys,
    /// Packets sealed for this session so far: the next one's counter.
    sent: AtomicU64,
    state: Mutex<UdpState>,
}

#[derive(Default)]
struct UdpState {
    window: ReplayWindow,
    /// Where the session's latest authentic packet came from, and when (ms).
    addr: Option<(SocketAddr, u64)>,
}

/// What an authentic packet from a session told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heard {
    /// It came from another address than the one before (NAT rebinding, or the first).
    pub moved: bool,
}

impl Peer {
    pub fn new(sid: SessionId, routes: Routes, quic: Box<dyn QuicOut>) -> Peer {
        Peer {
            sid,
            routes,
            quic,
            udp: OnceLock::new(),
        }
    }

    /// Gives the session its UDP side; `false` if it had one already.
    pub fn enable_udp(&self, id: u32, keys: Keys) -> bool {
        self.udp
            .set(Udp {
                id,
                keys,
                sent: AtomicU64::new(0),
                state: Mutex::default(),
            })
            .is_ok()
    }

    pub fn udp(&self) -> Option<&Udp> {
        self.udp.get()
    }

    /// Fetching ahead for a batch ([`cache`]; hints only, no effect on behaviour), in
    /// three steps, each over the whole batch before the next, so that each step finds
    /// what the one before asked for. First this session itself: its routes' address,
    /// its UDP state and replay window, its keys (all inline).
    pub fn prefetch(&self) {
        cache::prefetch(self);
    }

    /// Then its routes (the lock and the first route, inline beside it).
    pub fn prefetch_routes(&self) {
        cache::prefetch(&*self.routes);
    }

    /// Then the session its first route leads to, to which its media will be sealed and
    /// sent.
    pub fn prefetch_target(&self) {
        if let Some(Route::Peer(to)) = lock(&self.routes).first() {
            cache::prefetch(&**to);
        }
    }

    /// Sends one media datagram over the QUIC connection.
    pub fn send_quic(&self, datagram: &[u8]) -> bool {
        self.quic.send_datagram(Bytes::copy_from_slice(datagram))
    }
}

impl Udp {
    /// Authenticates and decrypts a packet from this session in place, checks and moves
    /// its replay window, and takes `from` as its address (an authentic, fresh packet
    /// from a new address is a NAT rebinding). Returns the plaintext.
    pub fn open<'a>(
        &self,
        packet: &'a mut [u8],
        from: SocketAddr,
        now_ms: u64,
    ) -> Result<(&'a [u8], Heard), OpenError> {
        let mut state = lock(&self.state);
        let window = &state.window;
        let (counter, plain) =
            open_in_place(self.keys.key(Direction::Up), packet, |c| window.fresh(c))?;
        state.window.accept(counter);
        let moved = state.addr.is_none_or(|(a, _)| a != from);
        state.addr = Some((from, now_ms));
        Ok((plain, Heard { moved }))
    }

    /// When an authentic packet last came from this session (ms), if ever.
    pub fn heard_ms(&self) -> Option<u64> {
        lock(&self.state).addr.map(|(_, at)| at)
    }

    /// Where to send this session's media over UDP now, if it was heard recently.
    pub fn fresh_addr(&self, now_ms: u64) -> Option<SocketAddr> {
        lock(&self.state)
            .addr
            .filter(|(_, at)| now_ms.saturating_sub(*at) <= UDP_FRESH_MS)
            .map(|(a, _)| a)
    }

    /// Seals `plaintext` for this session into `out`; returns the packet's length.
    pub fn seal(&self, plaintext: &[u8], out: &mut [u8]) -> Option<usize> {
        let counter = self.sent.fetch_add(1, Ordering::Relaxed);
        seal(
            self.keys.key(Direction::Down),
            self.id,
            counter,
            plaintext,
            out,
        )
    }
}
