//! The UDP media plane (protocol 4; docs/protocol.md §16, docs/architecture.md "Media
//! plane"): a UDP socket beside the QUIC endpoint (`media_listen`) where logged-in
//! sessions send their media as sealed packets, forwarded by plain threads that receive
//! and send in batches (`recvmmsg`/`sendmmsg`), with no task, wake-up or allocation per
//! packet. The QUIC control connection is unchanged, and QUIC datagrams stay the media
//! path of older clients and of clients whose UDP path does not work.
//!
//! - [`peer`]: a session's media endpoint (QUIC connection, keys, replay window, address);
//! - [`forward`]: the per-packet decisions, sans-IO;
//! - [`io`]: the forwarding threads around them;
//! - [`sockaddr`]: socket addresses for the C calls;
//! - [`cache`]: prefetch hints, so that a batch's cache misses overlap.
//!
//! The table of sessions by media id is read once per received batch under a read lock;
//! it is written only when a session logs in or ends.

mod cache;
pub(crate) mod forward;
mod io;
pub(crate) mod peer;
mod sockaddr;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use phoned_proto::plane::{KEY_LABEL, Keys};

use crate::metrics::Media;
use forward::Sink;
use peer::Peer;

/// Milliseconds on the relay's monotonic media clock (what `now_ms` means everywhere in
/// the media paths).
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How often a forwarding thread that receives nothing looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(200);

pub(crate) type Table = RwLock<HashMap<u32, Arc<Peer>>>;

pub(crate) struct Plane {
    pub table: Table,
    /// The first socket; the QUIC path's forwarders send UDP packets on it.
    socket: UdpSocket,
    /// Where the media socket listens.
    pub local: SocketAddr,
    /// The port sessions are told to send to (`media_advertise_port`, else the bound one).
    pub port: u16,
    pub counters: Media,
    stop: AtomicBool,
}

/// Stops the forwarding threads when dropped (they end within [`STOP_POLL`]).
pub(crate) struct Running {
    pub plane: Arc<Plane>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.plane.stop.store(true, Ordering::Relaxed);
    }
}

impl Plane {
    /// Binds `threads` sockets on `listen` (with `SO_REUSEPORT` when more than one, so
    /// that the kernel spreads clients over them) and starts one forwarding thread on each.
    pub fn start(
        listen: SocketAddr,
        advertise: Option<u16>,
        threads: usize,
        counters: Media,
    ) -> std::io::Result<Running> {
        let threads = threads.max(1);
        let first = io::bind(listen, threads > 1)?;
        let local = first.local_addr()?;
        let mut sockets = vec![first.try_clone()?];
        for _ in 1..threads {
            sockets.push(io::bind(local, true)?);
        }
        let plane = Arc::new(Plane {
            table: RwLock::default(),
            socket: first,
            local,
            port: advertise.unwrap_or(local.port()),
            counters,
            stop: AtomicBool::new(false),
        });
        for (i, socket) in sockets.into_iter().enumerate() {
            let plane = plane.clone();
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || io::run(&socket, &plane))?;
        }
        Ok(Running { plane })
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Gives `peer` a media id and its keys from `conn`'s TLS exporter, and puts it in the
    /// table; returns the id (`None` if the exporter failed).
    pub fn register(&self, peer: &Arc<Peer>, conn: &quinn::Connection) -> Option<u32> {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let id = loop {
            let id = getrandom::u32().ok()?;
            if id != 0 && !table.contains_key(&id) {
                break id;
            }
        };
        let mut material = [0u8; 32];
        conn.export_keying_material(&mut material, KEY_LABEL, &id.to_be_bytes())
            .ok()?;
        if !peer.enable_udp(id, Keys::from_exported(&material)) {
            return None;
        }
        table.insert(id, peer.clone());
        Some(id)
    }

    pub fn unregister(&self, id: u32) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// A sink that sends at once (one `sendto` per packet), for the QUIC path's forwarders.
    pub fn direct(&self) -> Direct<'_> {
        Direct { plane: self }
    }
}

/// Sends each packet at once, without waiting for room in the socket's buffer.
pub(crate) struct Direct<'a> {
    plane: &'a Plane,
}

impl Sink for Direct<'_> {
    fn udp(&mut self, to: SocketAddr, packet: &[u8]) -> bool {
        let sent = io::send_now(&self.plane.socket, to, packet);
        if sent {
            self.plane.counters.udp_sent.inc();
        }
        sent
    }

    fn quic(&mut self, peer: &Peer, datagram: &[u8]) -> bool {
        peer.send_quic(datagram)
    }
}

/// The QUIC path's sink when the relay has no media plane: everything goes over QUIC.
pub(crate) struct QuicOnly;

impl Sink for QuicOnly {
    fn udp(&mut self, _to: SocketAddr, _packet: &[u8]) -> bool {
        false
    }

    fn quic(&mut self, peer: &Peer, datagram: &[u8]) -> bool {
        peer.send_quic(datagram)
    }
}
