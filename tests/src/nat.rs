//! A UDP forwarder that behaves like a NAT in front of one client: the server sees the
//! client's packets come from the forwarder's outbound socket, and [`NatProxy::rebind`]
//! swaps that socket for a new one (a new source port, as when a NAT drops a mapping and
//! makes another). Packets the server sends to an old port are dropped, as a NAT would.
//! [`NatProxy::block`] drops everything both ways (UDP blocked on the path).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smol::Task;
use smol::lock::Mutex;
use smol::net::UdpSocket;

struct Shared {
    front: UdpSocket,
    target: SocketAddr,
    /// The outbound socket now, and its generation.
    back: Mutex<(UdpSocket, u64)>,
    generation: AtomicU64,
    client: Mutex<Option<SocketAddr>>,
    blocked: AtomicBool,
}

pub struct NatProxy {
    /// Where the client should send.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: std::sync::Mutex<Vec<Task<()>>>,
}

impl NatProxy {
    /// Starts forwarding to `target`. Must be called inside a smol executor context.
    pub async fn start(target: SocketAddr) -> std::io::Result<NatProxy> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            front,
            target,
            back: Mutex::new((back.clone(), 0)),
            generation: AtomicU64::new(0),
            client: Mutex::new(None),
            blocked: AtomicBool::new(false),
        });
        let up = {
            let shared = shared.clone();
            smol::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = shared.front.recv_from(&mut buf).await {
                    *shared.client.lock().await = Some(from);
                    if shared.blocked.load(Ordering::Relaxed) {
                        continue;
                    }
                    let back = shared.back.lock().await.0.clone();
                    let _ = back.send_to(&buf[..n], shared.target).await;
                }
            })
        };
        let down = smol::spawn(Self::down(shared.clone(), back, 0));
        Ok(NatProxy {
            addr,
            shared,
            tasks: std::sync::Mutex::new(vec![up, down]),
        })
    }

    async fn down(shared: Arc<Shared>, back: UdpSocket, generation: u64) {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            if shared.generation.load(Ordering::Relaxed) != generation
                || shared.blocked.load(Ordering::Relaxed)
            {
                continue;
            }
            if let Some(to) = *shared.client.lock().await {
                let _ = shared.front.send_to(&buf[..n], to).await;
            }
        }
    }

    /// A new outbound socket from now on: the server sees a new source port.
    pub async fn rebind(&self) -> std::io::Result<SocketAddr> {
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        let at = back.local_addr()?;
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.shared.back.lock().await = (back.clone(), generation);
        let task = smol::spawn(Self::down(self.shared.clone(), back, generation));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        Ok(at)
    }

    /// Drops every packet both ways from now on.
    pub fn block(&self) {
        self.shared.blocked.store(true, Ordering::Relaxed);
    }
}
