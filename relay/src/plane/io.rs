//! The forwarding threads: each blocks in `recvmmsg` for a batch of packets, has what the
//! batch will read fetched into the cache ([`forward::prefetch`]), takes the packets
//! through [`forward::receive`] with the session table read-locked once for the batch,
//! and sends what came out with `sendmmsg`, never waiting for room in the send buffer
//! (a packet that finds it full is dropped and counted: late media is worthless). The
//! buffers are made once per thread; nothing is allocated per packet.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};

use phoned_proto::plane::MAX_PACKET;

use super::forward::{self, Forwarded, Received, Scratch, Sent, Sink};
use super::peer::Peer;
use super::sockaddr::{from_raw, to_raw};
use super::{Plane, STOP_POLL, now_ms};
use crate::metrics::Media;

/// Packets taken per `recvmmsg`.
const BATCH: usize = 64;
/// Packets queued for one `sendmmsg` (a packet in a room goes to up to 3 listeners).
const OUT: usize = 4 * BATCH;
/// Socket buffers asked for, each way (the kernel caps them at `rmem_max`/`wmem_max`):
/// about 40 ms at 100 000 packets/s.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn check(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn set_int(fd: libc::c_int, level: libc::c_int, option: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: setsockopt reads one c_int from the pointer, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// A UDP socket bound to `addr`, with `SO_REUSEPORT` if `shared`, large buffers and a
/// receive timeout of [`STOP_POLL`].
pub(super) fn bind(addr: SocketAddr, shared: bool) -> std::io::Result<UdpSocket> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the fd is owned by the UdpSocket made below.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh socket nobody else owns.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    if shared && !set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1) {
        return Err(std::io::Error::last_os_error());
    }
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        if !set_int(fd, libc::SOL_SOCKET, option, SOCKET_BUFFER) {
            tracing::warn!(
                "media socket: cannot enlarge a buffer: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut raw: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = to_raw(&addr, &mut raw);
    // SAFETY: raw holds a sockaddr of `len` bytes.
    check(unsafe { libc::bind(fd, (&raw as *const libc::sockaddr_storage).cast(), len) })?;
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket)
}

/// One `sendto` that does not wait for room in the send buffer.
pub(super) fn send_now(socket: &UdpSocket, to: SocketAddr, packet: &[u8]) -> bool {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut raw: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = to_raw(&to, &mut raw);
    // SAFETY: the buffer and the address are valid for their lengths.
    let rc = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            libc::MSG_DONTWAIT,
            (&raw as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    rc >= 0
}

/// Buffers for `n` packets and the `mmsghdr`s that point into them (made once; the
/// buffers never move, so the pointers stay valid).
struct Ring {
    bufs: Vec<[u8; MAX_PACKET]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Ring {
    fn new(n: usize) -> Box<Ring> {
        // SAFETY: all-zero is valid for these C structs.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut ring = Box::new(Ring {
            bufs: vec![[0u8; MAX_PACKET]; n],
            addrs: vec![zero_addr; n],
            iovs: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
        });
        let r = &mut *ring;
        for i in 0..n {
            r.iovs.push(libc::iovec {
                iov_base: r.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_PACKET,
            });
        }
        for i in 0..n {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&mut r.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = &mut r.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            r.msgs.push(m);
        }
        ring
    }
}

/// The outgoing batch of one thread.
struct Outbox {
    fd: libc::c_int,
    ring: Box<Ring>,
    queued: usize,
    sent: u64,
    failed: u64,
}

impl Outbox {
    fn flush(&mut self) {
        let (mut done, mut failed) = (0, 0);
        while done < self.queued {
            // SAFETY: msgs[done..queued] point at filled buffers and addresses.
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd,
                    self.ring.msgs[done..].as_mut_ptr(),
                    (self.queued - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                done += rc as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            if rc < 0 && e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Full buffer, or this packet's address refused: drop it, go on with the rest.
            done += 1;
            failed += 1;
        }
        self.failed += failed;
        self.sent += self.queued as u64 - failed;
        self.queued = 0;
    }
}

impl Sink for Outbox {
    fn udp(&mut self, to: SocketAddr, packet: &[u8]) -> bool {
        if self.queued == self.ring.bufs.len() {
            self.flush();
        }
        let i = self.queued;
        let ring = &mut *self.ring;
        ring.bufs[i][..packet.len()].copy_from_slice(packet);
        ring.iovs[i].iov_len = packet.len();
        ring.msgs[i].msg_hdr.msg_namelen = to_raw(&to, &mut ring.addrs[i]);
        self.queued += 1;
        true
    }

    fn quic(&mut self, peer: &Peer, datagram: &[u8]) -> bool {
        peer.send_quic(datagram)
    }
}

/// What one batch did, added to the shared counters once per batch.
#[derive(Default)]
struct Tally {
    forwarded: u64,
    malformed: u64,
    no_route: u64,
    send_failed: u64,
    auth_failed: u64,
    replayed: u64,
    received: u64,
    rebinds: u64,
}

impl Tally {
    fn count(&mut self, r: Received) {
        let heard = match r {
            Received::Size => {
                self.malformed += 1;
                return;
            }
            Received::AuthFailed => {
                self.auth_failed += 1;
                return;
            }
            Received::Replayed => {
                self.replayed += 1;
                return;
            }
            Received::Keepalive { echoed, heard } => {
                if !echoed {
                    self.send_failed += 1;
                }
                heard
            }
            Received::Media { forwarded, heard } => {
                match forwarded {
                    Forwarded::Sent(Sent::Udp | Sent::Quic) | Forwarded::Room => {
                        self.forwarded += 1
                    }
                    Forwarded::Sent(Sent::Failed) => self.send_failed += 1,
                    Forwarded::Malformed => self.malformed += 1,
                    Forwarded::NoRoute => self.no_route += 1,
                }
                heard
            }
        };
        self.received += 1;
        if heard.moved {
            self.rebinds += 1;
        }
    }

    fn add_to(&self, m: &Media) {
        let add = |c: &prometheus_client::metrics::counter::Counter, n: u64| {
            if n > 0 {
                c.inc_by(n);
            }
        };
        add(&m.forwarded, self.forwarded);
        add(&m.malformed, self.malformed);
        add(&m.no_route, self.no_route);
        add(&m.send_failed, self.send_failed);
        add(&m.auth_failed, self.auth_failed);
        add(&m.replayed, self.replayed);
        add(&m.udp_received, self.received);
        add(&m.udp_moved, self.rebinds);
    }
}

/// A forwarding thread's loop, until the plane stops.
pub(super) fn run(socket: &UdpSocket, plane: &Plane) {
    let fd = socket.as_raw_fd();
    let mut inbox = Ring::new(BATCH);
    let mut out = Outbox {
        fd,
        ring: Ring::new(OUT),
        queued: 0,
        sent: 0,
        failed: 0,
    };
    let mut scratch: Box<Scratch> = Box::new([0u8; MAX_PACKET]);
    while !plane.stopping() {
        for m in inbox.msgs.iter_mut() {
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_flags = 0;
        }
        // SAFETY: the mmsghdrs point at BATCH buffers of MAX_PACKET bytes and addresses.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                inbox.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue; // the receive timeout (to look at `stop`), or an interrupt
        }
        let now = now_ms();
        let mut tally = Tally::default();
        {
            let table = plane.table.read().unwrap_or_else(|p| p.into_inner());
            let batch = (0..n as usize).map(|i| &inbox.bufs[i][..inbox.msgs[i].msg_len as usize]);
            forward::prefetch(&table, batch);
            for i in 0..n as usize {
                let m = &inbox.msgs[i];
                let len = m.msg_len as usize;
                let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let Some(from) = from_raw(&inbox.addrs[i]) else {
                    continue;
                };
                if truncated {
                    tally.malformed += 1;
                    continue;
                }
                let packet = &mut inbox.bufs[i][..len];
                let r = forward::receive(&table, packet, from, now, &mut scratch, &mut out);
                tally.count(r);
            }
        }
        out.flush();
        tally.send_failed += std::mem::take(&mut out.failed);
        let sent = std::mem::take(&mut out.sent);
        if sent > 0 {
            plane.counters.udp_sent.inc_by(sent);
        }
        tally.add_to(&plane.counters);
    }
}
