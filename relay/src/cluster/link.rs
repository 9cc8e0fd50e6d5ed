//! Relay links, the I/O of calls between relays ([`super::xcall`] decides): QUIC
//! connections between relays of a cluster, on the relays' own endpoints and ports, with
//! the relay-link ALPN and the cluster certificate both ways ([`super::peer_tls`]).
//!
//! - A relay dialling a device that has a lease on another relay opens (or reuses) a link
//!   to the address that relay advertises in its leases, opens one stream for the call and
//!   registers a *leg*, a pseudo-session standing for the callee ([`ring_remote`]).
//! - A relay accepting a link ([`serve`]) takes each stream as a call for a device here:
//!   its leg stands for the caller and dials with the call's id.
//! - Each leg's task carries the router's events for the leg to the other relay and the
//!   other relay's messages to the router ([`run_leg`]); when the stream or the link
//!   ends, the leg leaves like a session whose connection died.
//! - Media datagrams that come on a link are forwarded from the leg of their call, along
//!   the routes the router installed, as a device's would be; media routed to a leg goes
//!   out on its link as a QUIC datagram.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoned_proto::call::CallId;
use phoned_proto::{FrameDecoder, PROTOCOL_VERSION, ServerMsg, decode_server};
use rustls::pki_types::CertificateDer;
use smol::channel::Receiver;

use super::peer_tls::{self, PEER_SERVER_NAME};
use super::xcall::{Leg, PeerMsg};
use crate::calls::{CallAction, Callee, Caller};
use crate::cert::Identity;
use crate::hub::SessionId;
use crate::plane::forward::Scratch;
use crate::plane::peer::Peer;
use crate::registry::{Outgoing, Routes, SessionHandle};
use crate::shared::{Shared, lock};
use crate::store::{Account, AccountId};

/// How long opening a link to another relay may take before the dial treats that relay's
/// devices as offline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A link's stream must bring its call's ring this soon.
const RING_DEADLINE: Duration = Duration::from_secs(10);
/// Events queued for a leg (a call's few events; far more than it ever holds).
const LEG_QUEUE: usize = 256;

/// The legs of one link by call: where the link's media datagrams come from.
type LinkCalls = Arc<Mutex<HashMap<CallId, Arc<Peer>>>>;

#[derive(Clone)]
struct Link {
    conn: quinn::Connection,
    calls: LinkCalls,
}

/// This relay's links to the others, and where the others' devices are.
pub(crate) struct Links {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    cert: CertificateDer<'static>,
    /// Where other relays reach this one (written in its leases).
    pub advertise: Option<SocketAddr>,
    out: async_lock::Mutex<HashMap<SocketAddr, Link>>,
    /// Account → the link addresses of the other relays where it has a valid lease.
    remote: Mutex<HashMap<AccountId, Vec<SocketAddr>>>,
}

impl Links {
    pub fn new(
        endpoint: quinn::Endpoint,
        identity: &Identity,
        idle_timeout: Duration,
        keep_alive: Duration,
        advertise: Option<SocketAddr>,
    ) -> Result<Links, String> {
        let tls = peer_tls::client_tls(identity).map_err(|e| e.to_string())?;
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(idle_timeout.try_into().map_err(|e| format!("{e}"))?))
            .keep_alive_interval(Some(keep_alive))
            .max_concurrent_uni_streams(0u32.into());
        client.transport_config(Arc::new(transport));
        Ok(Links {
            endpoint,
            client,
            cert: identity.chain[0].clone(),
            advertise,
            out: async_lock::Mutex::new(HashMap::new()),
            remote: Mutex::default(),
        })
    }

    /// The other relays' devices are now `remote` (from their leases).
    pub fn set_remote(&self, remote: HashMap<AccountId, Vec<SocketAddr>>) {
        *lock(&self.remote) = remote;
    }

    fn remote_of(&self, account: AccountId) -> Vec<SocketAddr> {
        lock(&self.remote)
            .get(&account)
            .cloned()
            .unwrap_or_default()
    }

    /// The open link to `addr`, or a new one.
    async fn link(&self, shared: &Arc<Shared>, addr: SocketAddr) -> Option<Link> {
        let mut out = self.out.lock().await;
        if let Some(l) = out.get(&addr)
            && l.conn.close_reason().is_none()
        {
            return Some(l.clone());
        }
        let connecting =
            match self
                .endpoint
                .connect_with(self.client.clone(), addr, PEER_SERVER_NAME)
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%addr, "relay link: cannot connect: {e}");
                    return None;
                }
            };
        let conn = smol::future::or(
            async { connecting.await.map_err(|e| e.to_string()) },
            async {
                smol::Timer::after(CONNECT_TIMEOUT).await;
                Err("timed out".to_owned())
            },
        )
        .await;
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%addr, "relay link: cannot connect: {e}");
                out.remove(&addr);
                return None;
            }
        };
        tracing::info!(%addr, "relay link open");
        let link = Link {
            conn,
            calls: LinkCalls::default(),
        };
        smol::spawn(media_in(shared.clone(), link.clone())).detach();
        out.insert(addr, link.clone());
        Some(link)
    }
}

/// Legs standing for `callee`'s devices on other relays, for a call `caller` places
/// here: one per relay where it has a lease and a link could be opened.
pub(crate) async fn ring_remote(
    shared: &Arc<Shared>,
    caller: AccountId,
    callee: &Account,
) -> Vec<SessionId> {
    let Some(links) = shared.links() else {
        return Vec::new();
    };
    let mut legs = Vec::new();
    for addr in links.remote_of(callee.id) {
        let Some(link) = links.link(shared, addr).await else {
            continue;
        };
        let (send, recv) = match link.conn.open_bi().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%addr, "relay link: cannot open a call stream: {e}");
                continue;
            }
        };
        let leg = Leg::origin(
            caller,
            callee.id,
            callee.number.clone(),
            callee.display_name.clone(),
        );
        let (sid, peer, rx) = pseudo_session(shared, &link.conn);
        smol::spawn(run_leg(
            shared.clone(),
            sid,
            peer,
            leg,
            send,
            recv,
            rx,
            link,
        ))
        .detach();
        legs.push(sid);
    }
    legs
}

/// Ends the legs of a dial that rang none of them (it failed before ringing).
pub(crate) fn abandon(shared: &Shared, legs: &[SessionId], actions: &[CallAction]) {
    for &leg in legs {
        let rung = actions
            .iter()
            .any(|a| matches!(a, CallAction::Send(s, _) if *s == leg));
        if !rung {
            // Its queue's only sender goes: the leg's task ends.
            shared.sessions.remove(leg);
        }
    }
}

/// A leg's session: a place in the registry (its events come to `rx`), and a media
/// endpoint whose QUIC datagrams go on the link.
fn pseudo_session(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
) -> (SessionId, Arc<Peer>, Receiver<Outgoing>) {
    let sid = shared.next_sid();
    let routes: Routes = Arc::default();
    let peer = Arc::new(Peer::new(sid, routes, Box::new(conn.clone())));
    let (out, rx) = smol::channel::bounded(LEG_QUEUE);
    shared.sessions.insert(
        sid,
        SessionHandle {
            out,
            conn: conn.clone(),
            peer: peer.clone(),
            version: PROTOCOL_VERSION,
            watch: None,
        },
    );
    (sid, peer, rx)
}

/// Serves a link another relay opened: each stream is a call for a device here.
pub(crate) async fn serve(shared: Arc<Shared>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let cert = shared.links().map(|l| l.cert.clone());
    let Some(cert) = cert.filter(|c| peer_tls::presented_cluster_cert(&conn, c)) else {
        tracing::warn!(%remote, "relay link refused: not a relay of this cluster");
        conn.close(
            phoned_proto::error::close::PROTOCOL.into(),
            b"not a relay of this cluster",
        );
        return;
    };
    drop(cert);
    tracing::info!(%remote, "relay link accepted");
    let link = Link {
        conn: conn.clone(),
        calls: LinkCalls::default(),
    };
    let media = smol::spawn(media_in(shared.clone(), link.clone()));
    while let Ok((send, recv)) = conn.accept_bi().await {
        smol::spawn(target_leg(shared.clone(), link.clone(), send, recv)).detach();
    }
    drop(media);
    tracing::info!(%remote, reason = ?conn.close_reason(), "relay link closed");
}

/// A call stream from another relay: reads its ring, dials the callee here with the
/// call's id, and runs the leg standing for the caller.
async fn target_leg(
    shared: Arc<Shared>,
    link: Link,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let first = smol::future::or(
        async {
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => return Some(PeerMsg::decode(f)),
                    Ok(None) => {}
                    Err(_) => return None,
                }
                decoder.compact();
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => decoder.push(&buf[..n]),
                    _ => return None,
                }
            }
        },
        async {
            smol::Timer::after(RING_DEADLINE).await;
            None
        },
    )
    .await;
    let ring = match first {
        Some(Ok(ring)) => ring,
        Some(Err(e)) => {
            tracing::warn!("{e}");
            return;
        }
        None => return,
    };
    let PeerMsg::Ring {
        call,
        caller,
        from_number,
        from_name,
        callee,
        callee_number,
        callee_name,
    } = ring
    else {
        tracing::warn!("relay link: a call stream did not start with its ring");
        return;
    };
    let (sid, peer, rx) = pseudo_session(&shared, &link.conn);
    lock(&link.calls).insert(call, peer.clone());
    let caller = Caller {
        session: sid,
        account: caller,
        number: from_number,
        name: from_name,
    };
    let callee = Callee::Account {
        id: callee,
        sessions: shared.sessions_of(callee),
        number: callee_number,
        name: callee_name,
    };
    match shared.calls.dial_as(call, caller, callee).await {
        Ok(actions) => shared.sessions.dispatch_calls(actions),
        Err(_) => {
            shared.sessions.remove(sid);
            lock(&link.calls).remove(&call);
            return;
        }
    }
    let leg = Leg::target(call);
    // What came after the ring in the same read.
    run_leg_with(shared, sid, peer, leg, send, recv, rx, link, decoder).await;
}

enum Wake {
    Out(Option<Outgoing>),
    In(Result<Option<usize>, quinn::ReadError>),
}

#[allow(clippy::too_many_arguments)]
async fn run_leg(
    shared: Arc<Shared>,
    sid: SessionId,
    peer: Arc<Peer>,
    leg: Leg,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    rx: Receiver<Outgoing>,
    link: Link,
) {
    let decoder = FrameDecoder::new();
    run_leg_with(shared, sid, peer, leg, send, recv, rx, link, decoder).await;
}

/// Carries one leg's traffic until its call ends or its stream or link does; then the
/// leg leaves (a call still going ends as a dead device's would).
#[allow(clippy::too_many_arguments)]
async fn run_leg_with(
    shared: Arc<Shared>,
    sid: SessionId,
    peer: Arc<Peer>,
    mut leg: Leg,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    rx: Receiver<Outgoing>,
    link: Link,
    mut incoming: FrameDecoder,
) {
    let mut events = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut pending = true;
    'run: loop {
        // Messages already read (after a ring) first.
        if pending {
            pending = false;
            while let Ok(Some(f)) = incoming.next_frame() {
                let msg = match PeerMsg::decode(f) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("{e}");
                        break 'run;
                    }
                };
                if !apply(&shared, sid, &mut leg, msg).await || leg.done() {
                    break 'run;
                }
            }
            incoming.compact();
        }
        let wake = smol::future::or(async { Wake::Out(rx.recv().await.ok()) }, async {
            Wake::In(recv.read(&mut buf).await)
        })
        .await;
        match wake {
            Wake::Out(Some(Outgoing::Frame(bytes))) => {
                events.push(&bytes);
                let mut wire = Vec::new();
                while let Ok(Some(f)) = events.next_frame() {
                    if let Ok(ServerMsg::Event(e)) = decode_server(f)
                        && let Some(msg) = leg.event(&e)
                    {
                        msg.encode(&mut wire);
                    }
                }
                events.compact();
                if let Some(call) = leg.call() {
                    lock(&link.calls)
                        .entry(call)
                        .or_insert_with(|| peer.clone());
                }
                if !wire.is_empty() && send.write_all(&wire).await.is_err() {
                    break;
                }
                if leg.done() {
                    break;
                }
            }
            Wake::Out(Some(Outgoing::Close { .. }) | None) => break,
            Wake::In(Ok(Some(n))) => {
                incoming.push(&buf[..n]);
                pending = true;
            }
            Wake::In(Ok(None) | Err(_)) => break,
        }
    }
    let _ = send.finish();
    shared.calls.left(sid).await;
    if let Some(call) = leg.call() {
        lock(&link.calls).remove(&call);
    }
    lock(&peer.routes).clear();
    shared.sessions.remove(sid);
}

/// Applies one message of the other relay; `false` if the router has stopped.
async fn apply(shared: &Shared, sid: SessionId, leg: &mut Leg, msg: PeerMsg) -> bool {
    let op = match leg.message(msg) {
        Ok(Some(op)) => op,
        Ok(None) => return true,
        Err(e) => {
            tracing::warn!("{e}");
            return true;
        }
    };
    match shared.calls.op(sid, op).await {
        Ok(Ok(actions)) => {
            shared.sessions.dispatch_calls(actions);
            true
        }
        Ok(Err(e)) => {
            tracing::debug!(sid, "relay link: request refused: {e:?}");
            true
        }
        Err(_) => false,
    }
}

/// Forwards the media datagrams that come on a link, each from the leg of its call.
async fn media_in(shared: Arc<Shared>, link: Link) {
    let mut scratch: Box<Scratch> = Box::new([0u8; phoned_proto::plane::MAX_PACKET]);
    while let Ok(datagram) = link.conn.read_datagram().await {
        let leg = phoned_proto::media::peek_call(&datagram)
            .and_then(|call| lock(&link.calls).get(&call).cloned());
        match leg {
            Some(peer) => crate::session::forward_counted(&shared, &peer, &datagram, &mut scratch),
            None => crate::session::count(&shared, crate::plane::forward::Forwarded::NoRoute),
        }
    }
}
