//! The link's media path: where a call's media datagrams go out, and the UDP media plane
//! (protocol 4, docs/protocol.md §16) beside the QUIC connection. Once the relay has told
//! this session its media id and port ([`phoned_proto::Event::MediaPlane`]), a thread
//! probes the relay's media port; while the probe's echoes come ([`UdpPath`]), media is
//! sent there as sealed UDP packets, and otherwise as QUIC datagrams, which always work.
//! Media from the relay is taken from both and goes the same way to the driver.
//!
//! The path keeps alive each second, in a call or not: that keep-alive is the device's
//! beat (`phoned_proto::liveness`), and its echo tells the link's watchdog that the relay
//! lives ([`MediaLink::udp_heard`]).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::call::media::MediaRoutes;
use bytes::Bytes;
use phoned_proto::plane::{
    Direction, KEY_LABEL, Keys, MAX_PACKET, PathAction, ReplayWindow, UdpPath, open_in_place, seal,
};

/// The UDP thread looks at its path at least this often.
const POLL: Duration = Duration::from_millis(100);

/// Which way a call's media goes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPath {
    Udp,
    Quic,
}

/// A connection's media path, shared by the link and the calls' media threads.
pub struct MediaLink {
    conn: quinn::Connection,
    udp: Mutex<Option<Arc<UdpLink>>>,
}

impl MediaLink {
    pub fn new(conn: quinn::Connection) -> MediaLink {
        MediaLink {
            conn,
            udp: Mutex::new(None),
        }
    }

    fn udp(&self) -> Option<Arc<UdpLink>> {
        self.udp.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends one media datagram: over UDP while that path works, else as a QUIC datagram.
    /// A datagram that cannot go is dropped (late audio is worthless).
    pub fn send(&self, datagram: Bytes) {
        if let Some(udp) = self.udp()
            && udp.send(&datagram)
        {
            return;
        }
        let _ = self.conn.send_datagram(datagram);
    }

    /// The path media goes out on now.
    pub fn path(&self) -> MediaPath {
        match self.udp() {
            Some(u) if u.up.load(Ordering::Relaxed) => MediaPath::Udp,
            _ => MediaPath::Quic,
        }
    }

    /// When the relay was last heard on the UDP path (an echo or media), if ever.
    pub fn udp_heard(&self) -> Option<Instant> {
        let udp = self.udp()?;
        let ms = udp.heard_ms.load(Ordering::Relaxed);
        (ms != u64::MAX).then(|| udp.started + Duration::from_millis(ms))
    }

    /// The round trip to the relay (the QUIC connection's estimate).
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// The relay gave this session media id `id` and port `port` on `relay`'s address:
    /// derives the keys, opens the UDP socket and starts its thread, whose media from the
    /// relay goes to `media`. On any failure media stays on QUIC.
    pub fn start_udp(&self, relay: IpAddr, id: u32, port: u16, media: MediaRoutes) {
        let mut material = [0u8; 32];
        if let Err(e) =
            self.conn
                .export_keying_material(&mut material, KEY_LABEL, &id.to_be_bytes())
        {
            tracing::warn!("no media keys from the TLS exporter ({e:?}): media stays on QUIC");
            return;
        }
        let target = SocketAddr::new(relay, port);
        let bind: SocketAddr = if relay.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(bind).and_then(|s| {
            s.connect(target)?;
            s.set_read_timeout(Some(POLL))?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("no UDP media socket for {target}: {e}; media stays on QUIC");
                return;
            }
        };
        let started = Instant::now();
        let link = Arc::new(UdpLink {
            socket,
            id,
            keys: Keys::from_exported(&material),
            sent: AtomicU64::new(0),
            up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            heard_ms: AtomicU64::new(u64::MAX),
            started,
            state: Mutex::new(State {
                path: UdpPath::new(Duration::ZERO),
                window: ReplayWindow::new(),
            }),
        });
        let thread = {
            let link = link.clone();
            std::thread::Builder::new()
                .name("media-udp".into())
                .spawn(move || link.run(&media, target))
        };
        if let Err(e) = thread {
            tracing::warn!("cannot start the UDP media thread: {e}; media stays on QUIC");
            return;
        }
        tracing::debug!(%target, id, "probing the relay's UDP media port");
        if let Some(old) = self
            .udp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(link)
        {
            old.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the UDP side (the connection ended).
    pub fn close(&self) {
        if let Some(u) = self.udp.lock().unwrap_or_else(|p| p.into_inner()).take() {
            u.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for MediaLink {
    fn drop(&mut self) {
        self.close();
    }
}

struct State {
    path: UdpPath,
    window: ReplayWindow,
}

struct UdpLink {
    socket: UdpSocket,
    id: u32,
    keys: Keys,
    /// Packets sealed so far: the next one's counter.
    sent: AtomicU64,
    /// Media goes over UDP (the path is up).
    up: AtomicBool,
    stop: AtomicBool,
    /// When the relay was last heard (ms since `started`; `u64::MAX`: never).
    heard_ms: AtomicU64,
    started: Instant,
    state: Mutex<State>,
}

impl UdpLink {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn seal_and_send(&self, plaintext: &[u8]) -> bool {
        let mut out = [0u8; MAX_PACKET];
        let counter = self.sent.fetch_add(1, Ordering::Relaxed);
        let Some(n) = seal(
            self.keys.key(Direction::Up),
            self.id,
            counter,
            plaintext,
            &mut out,
        ) else {
            return false;
        };
        self.socket.send(&out[..n]).is_ok()
    }

    /// Sends a media datagram if the path is up; `false` sends it over QUIC instead.
    fn send(&self, datagram: &[u8]) -> bool {
        self.up.load(Ordering::Relaxed) && self.seal_and_send(datagram)
    }

    /// The thread: receives from the relay's media port, keeps the path alive, until
    /// stopped.
    fn run(&self, media: &MediaRoutes, target: SocketAddr) {
        let mut buf = [0u8; MAX_PACKET];
        while !self.stop.load(Ordering::Relaxed) {
            let wake = {
                let now = self.now();
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(action) = state.path.poll(now) {
                    self.act(action, target);
                }
                state.path.next_wake(now).saturating_sub(now)
            };
            let timeout = wake.clamp(Duration::from_millis(1), POLL);
            let _ = self.socket.set_read_timeout(Some(timeout));
            // Errors: the timeout, or the port unreachable (ICMP) while probing.
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let packet = &mut buf[..n];
            if phoned_proto::plane::peek_id(packet) != Some(self.id) {
                continue;
            }
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let window = &state.window;
            let opened = open_in_place(self.keys.key(Direction::Down), packet, |c| window.fresh(c));
            let Ok((counter, plain)) = opened else {
                continue;
            };
            state.window.accept(counter);
            let now = self.now();
            state.path.heard(now);
            let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX - 1);
            self.heard_ms.store(ms, Ordering::Relaxed);
            if !plain.is_empty() {
                media.deliver(Bytes::copy_from_slice(plain));
            }
        }
    }

    fn act(&self, action: PathAction, target: SocketAddr) {
        match action {
            PathAction::SendKeepalive => {
                self.seal_and_send(&[]);
            }
            PathAction::WentUp => {
                self.up.store(true, Ordering::Relaxed);
                tracing::info!(%target, "media over UDP");
            }
            PathAction::WentDown => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%target, "the UDP media path stopped answering: media over QUIC datagrams");
                } else {
                    tracing::info!(%target, "no answer on the UDP media port: media over QUIC datagrams");
                }
            }
        }
    }
}
