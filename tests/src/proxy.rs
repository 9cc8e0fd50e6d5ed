//! A UDP forwarder between one client and a server, on loopback. It can be cut: after
//! [`UdpProxy::cut`] every datagram in both directions is silently dropped, as when a
//! device loses its network without closing its connection. It can also impair the path
//! towards the client ([`UdpProxy::start_impaired`]): seeded loss, bursts, duplicates,
//! jitter and reordering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smol::Task;
use smol::net::UdpSocket;

use crate::impair::{Decider, Impairment};

pub struct UdpProxy {
    /// Where the client should send.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    _tasks: [Task<()>; 2],
}

impl UdpProxy {
    /// Starts forwarding to `target`. Must be called inside a smol executor context.
    pub async fn start(target: SocketAddr) -> std::io::Result<UdpProxy> {
        UdpProxy::start_impaired(target, Impairment::default(), 0).await
    }

    /// Like [`UdpProxy::start`], with `impairment` on datagrams from the server to the
    /// client, decided by a generator seeded with `seed`.
    pub async fn start_impaired(
        target: SocketAddr,
        impairment: Impairment,
        seed: u64,
    ) -> std::io::Result<UdpProxy> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(target).await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let client: Arc<smol::lock::Mutex<Option<SocketAddr>>> = Arc::default();
        let up = {
            let (front, back, cut, client) =
                (front.clone(), back.clone(), cut.clone(), client.clone());
            smol::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().await = Some(from);
                    if !cut.load(Ordering::Relaxed) {
                        let _ = back.send(&buf[..n]).await;
                    }
                }
            })
        };
        let down = {
            let cut = cut.clone();
            smol::spawn(async move {
                let mut decider = Decider::new(impairment, seed);
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let to = *client.lock().await;
                    let (Some(to), false) = (to, cut.load(Ordering::Relaxed)) else {
                        continue;
                    };
                    for delay in decider.decide() {
                        if delay.is_zero() {
                            let _ = front.send_to(&buf[..n], to).await;
                        } else {
                            let (front, bytes) = (front.clone(), buf[..n].to_vec());
                            smol::spawn(async move {
                                smol::Timer::after(delay).await;
                                let _ = front.send_to(&bytes, to).await;
                            })
                            .detach();
                        }
                    }
                }
            })
        };
        Ok(UdpProxy {
            addr,
            cut,
            _tasks: [up, down],
        })
    }

    /// Drops all traffic from now on.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Forwards traffic again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}
