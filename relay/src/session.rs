//! One client connection: its control stream's reader and writer, and the session state
//! (hello seen, account logged in). Requests are answered in order by [`crate::requests`];
//! store-and-forward ones ([`crate::mailbox`]) are pipelined through [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phoned_proto::codec::peek_request_id;
use phoned_proto::error::close;
use phoned_proto::{
    ErrorCode, Event, FrameDecoder, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Request, Response,
    ServerMsg, Welcome, WireError, decode_client, encode_server,
};
use smol::channel::{Receiver, Sender};
use tracing::Instrument;

use crate::calls::CallAction;
use crate::hub::SessionId;
use crate::mailbox::Queued;
use crate::pipeline::Pipeline;
use crate::plane::forward::{Forwarded, Scratch, Sent, forward};
use crate::plane::peer::Peer;
use crate::registry::{Outgoing, Routes, SessionHandle};
use crate::server::unix_ms;
use crate::shared::{Shared, Slot, lock};
use crate::store::AccountId;

/// Frames queued for a client before it counts as too slow and is disconnected.
const OUT_QUEUE: usize = 1024;
/// A client must open its control stream, and complete `Hello`, this soon after
/// connecting (and both before the login timeout, when that is shorter).
const STREAM_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) struct Session {
    pub shared: Arc<Shared>,
    pub sid: SessionId,
    pub remote: SocketAddr,
    pub account: Option<AccountId>,
    /// Call actions to apply after the current request's response is queued, so that a
    /// client sees `CallPlaced` before the call's first event.
    pub after_reply: Vec<CallAction>,
    out: Sender<Outgoing>,
    conn: quinn::Connection,
    hello: bool,
    /// The protocol version the session speaks (its `Hello`'s).
    version: u16,
    /// This session as a media endpoint.
    peer: Arc<Peer>,
    /// Its id on the UDP media plane, once it has one.
    media_id: Option<u32>,
    /// Answers of pipelined store-and-forward requests, in order.
    pipeline: Pipeline,
}

/// What [`Session::begin`] made of a request.
enum Begun {
    /// Its write is queued; the task gives the answer.
    Queued(Queued),
    /// Refused before anything was queued.
    Refused(WireError),
    /// Not a store-and-forward request: handle it once the earlier ones are answered.
    Other(Request),
}

/// Queues the answer `result` to request `id` on the session's writer, or closes the
/// connection if the client does not read its answers.
pub(crate) fn send_reply(
    out: &Sender<Outgoing>,
    conn: &quinn::Connection,
    id: u32,
    result: Result<Response, WireError>,
) {
    let mut bytes = Vec::new();
    let msg = ServerMsg::Response { id, result };
    if let Err(e) = encode_server(&mut bytes, &msg) {
        tracing::error!("response too large: {e}");
        return send_reply(
            out,
            conn,
            id,
            Err(WireError::new(ErrorCode::Internal, "response too large")),
        );
    }
    if out.try_send(Outgoing::Frame(bytes)).is_err() {
        conn.close(close::TOO_SLOW.into(), b"client not reading its responses");
    }
}

/// Serves one connection, from its handshake to its end, in a span of its own: every
/// event it and the tasks it starts log carries its session id and address.
/// `slot` is the connection's place within the connection limits, given back when the
/// connection ends.
pub(crate) async fn run(shared: Arc<Shared>, incoming: quinn::Incoming, slot: Slot) {
    let remote = incoming.remote_address();
    let span = tracing::info_span!("session", sid = tracing::field::Empty, %remote);
    serve(shared, incoming, remote).instrument(span).await;
    drop(slot);
}

async fn serve(shared: Arc<Shared>, incoming: quinn::Incoming, remote: SocketAddr) {
    let accepted = Instant::now();
    // Logged out, a connection only costs the relay: it must log in soon or go, so that
    // idle ones cannot pile up and hold the connection limits.
    let login_timeout = shared.config().login_timeout;
    let login_deadline = accepted + login_timeout;
    let handshake = smol::future::or(async { Some(incoming.await) }, async {
        smol::Timer::at(login_deadline).await;
        None
    });
    let conn = match handshake.await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::debug!("handshake failed: {e}");
            return;
        }
        None => {
            tracing::debug!("handshake not done before the login deadline");
            return;
        }
    };
    if crate::cluster::peer_tls::is_peer_link(&conn) {
        crate::cluster::link::serve(shared, conn).await;
        return;
    }
    let stream_deadline = login_deadline.min(accepted + STREAM_DEADLINE);
    let streams = smol::future::or(async { conn.accept_bi().await.ok() }, async {
        smol::Timer::at(stream_deadline).await;
        None
    })
    .await;
    let Some((send, recv)) = streams else {
        conn.close(close::PROTOCOL.into(), b"no control stream");
        return;
    };
    let sid = shared.next_sid();
    tracing::Span::current().record("sid", sid);
    let (out, rx) = smol::channel::bounded(OUT_QUEUE);
    let routes: Routes = Arc::default();
    let peer = Arc::new(Peer::new(sid, routes.clone(), Box::new(conn.clone())));
    shared.sessions.insert(
        sid,
        SessionHandle {
            out: out.clone(),
            conn: conn.clone(),
            peer: peer.clone(),
            version: MIN_PROTOCOL_VERSION,
            watch: None,
        },
    );
    let writer = smol::spawn(write_loop(send, rx, conn.clone()).in_current_span());
    // Not instrumented: it logs nothing, and entering a span on every poll would cost
    // the forwarding hot path.
    let media = smol::spawn(forward_media(conn.clone(), peer.clone(), shared.clone()));
    // Every further stream the client opens is one file transfer.
    let bulk = {
        let (shared, conn) = (shared.clone(), conn.clone());
        smol::spawn(
            async move {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    smol::spawn(
                        crate::bulk::handle(shared.clone(), sid, send, recv).in_current_span(),
                    )
                    .detach();
                }
            }
            .in_current_span(),
        )
    };
    tracing::debug!("connected");
    let mut session = Session {
        shared: shared.clone(),
        sid,
        remote,
        account: None,
        after_reply: Vec::new(),
        pipeline: Pipeline::new(out.clone(), conn.clone()),
        out,
        conn,
        hello: false,
        version: MIN_PROTOCOL_VERSION,
        peer,
        media_id: None,
    };
    session.read_loop(recv, accepted, login_timeout).await;
    session.pipeline.flush().await;
    shared.calls.left(sid).await;
    if let (Some(id), Some(plane)) = (session.media_id, &shared.media) {
        plane.unregister(id);
    }
    // Routes hold the peers they lead to: cleared, no cycle outlives the session.
    lock(&routes).clear();
    shared.sessions.remove(sid);
    shared.leave(sid);
    shared.delivery.leave(sid);
    drop(media);
    drop(bulk);
    if let Some(id) = session.account {
        let store = shared.store.clone();
        let _ = blocking::unblock(move || store.touch(id, unix_ms())).await;
    }
    // A client's own close (a daemon stopping) or the idle timeout (one that vanished).
    tracing::debug!(reason = ?session.conn.close_reason(), "disconnected");
    drop(session);
    writer.await;
}

impl Session {
    /// Reads and handles frames until the stream or the connection ends. Until the
    /// session has logged in, `Hello` must come within [`STREAM_DEADLINE`] and the login
    /// within `login_timeout` of `accepted`.
    async fn read_loop(
        &mut self,
        mut recv: quinn::RecvStream,
        accepted: Instant,
        login_timeout: Duration,
    ) {
        let mut decoder = FrameDecoder::new();
        let mut buf = vec![0u8; 16 * 1024];
        let login_deadline = accepted + login_timeout;
        let hello_deadline = login_deadline.min(Instant::now() + STREAM_DEADLINE);
        loop {
            let read = if self.account.is_some() {
                recv.read(&mut buf).await.map(Read::from)
            } else {
                let deadline = if self.hello {
                    login_deadline
                } else {
                    hello_deadline
                };
                let late = async {
                    smol::Timer::at(deadline).await;
                    Ok(Read::Late)
                };
                smol::future::or(async { recv.read(&mut buf).await.map(Read::from) }, late).await
            };
            match read {
                Ok(Read::Bytes(n)) => decoder.push(&buf[..n]),
                Ok(Read::Late | Read::Finished) if !self.hello => {
                    self.close(
                        close::PROTOCOL,
                        ErrorCode::ProtocolViolation,
                        "no Hello in time".into(),
                    );
                    return;
                }
                Ok(Read::Late) => {
                    let secs = login_timeout.as_secs_f64();
                    self.close(
                        close::PROTOCOL,
                        ErrorCode::NotLoggedIn,
                        format!("not logged in within {secs} s"),
                    );
                    return;
                }
                Ok(Read::Finished) | Err(_) => return,
            }
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f.to_vec(),
                    Ok(None) => break,
                    Err(e) => {
                        self.close(close::PROTOCOL, ErrorCode::ProtocolViolation, e.to_string());
                        return;
                    }
                };
                if !self.handle_frame(&frame).await {
                    return;
                }
            }
            decoder.compact();
        }
    }

    /// Handles one frame; `false` ends the connection.
    async fn handle_frame(&mut self, body: &[u8]) -> bool {
        let frame = match decode_client(body) {
            Ok(f) => f,
            Err(e) => {
                return match (self.hello, peek_request_id(body)) {
                    (true, Some(id)) => {
                        self.reply(
                            id,
                            Err(WireError::new(ErrorCode::UnknownRequest, e.to_string())),
                        );
                        true
                    }
                    _ => {
                        self.close(close::PROTOCOL, ErrorCode::ProtocolViolation, e.to_string());
                        false
                    }
                };
            }
        };
        if !self.hello {
            let Request::Hello(hello) = frame.req else {
                self.close(
                    close::PROTOCOL,
                    ErrorCode::ProtocolViolation,
                    "the first request must be Hello".into(),
                );
                return false;
            };
            if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.version) {
                let message = format!(
                    "client speaks protocol {}, this relay speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}",
                    hello.version
                );
                self.reply(
                    frame.id,
                    Err(WireError::new(
                        ErrorCode::UnsupportedVersion,
                        message.clone(),
                    )),
                );
                self.close(close::VERSION, ErrorCode::UnsupportedVersion, message);
                return false;
            }
            tracing::debug!(client = %hello.client.chars().take(64).collect::<String>(), "hello");
            self.hello = true;
            self.version = hello.version;
            self.shared.delivery.hello(self.sid, hello.version);
            self.shared.sessions.hello(self.sid, hello.version);
            self.reply(
                frame.id,
                Ok(Response::Welcome(Welcome {
                    // The session speaks the client's version: it may be older than ours.
                    version: hello.version,
                    relay: concat!("phone-relay/", env!("CARGO_PKG_VERSION")).to_owned(),
                    max_frame: phoned_proto::MAX_FRAME as u32,
                })),
            );
            return true;
        }
        match self.begin(frame.req).await {
            Begun::Queued(task) => self.pipeline.queued(frame.id, task).await,
            Begun::Refused(e) => self.pipeline.ready(frame.id, Err(e)).await,
            Begun::Other(req) => {
                self.pipeline.flush().await;
                let anonymous = self.account.is_none();
                let result = self.request(req).await;
                self.reply(frame.id, result);
                if anonymous && self.account.is_some() {
                    self.media_plane();
                }
                let deferred = std::mem::take(&mut self.after_reply);
                self.shared.sessions.dispatch_calls(deferred);
            }
        }
        true
    }

    /// Starts a store-and-forward request (logged in): queues its write, in order.
    /// Anything else comes back to be handled in turn.
    async fn begin(&mut self, req: Request) -> Begun {
        let Some(me) = self.account else {
            return Begun::Other(req);
        };
        let queued = match req {
            Request::SendMessage {
                client_id,
                to,
                text,
            } => self.send_message(me, client_id, to, text).await,
            Request::Delivered { id } => self.delivered(me, id).await,
            Request::ReceiptSeen { id } => self.receipt_seen(me, id).await,
            other => return Begun::Other(other),
        };
        match queued {
            Ok(task) => Begun::Queued(task),
            Err(e) => Begun::Refused(e),
        }
    }

    /// Just logged in: a protocol 4 session gets its media id and the media port, when
    /// the relay has a media plane (older ones keep their media on QUIC datagrams).
    fn media_plane(&mut self) {
        let Some(plane) = &self.shared.media else {
            return;
        };
        let event = Event::MediaPlane {
            id: 0,
            port: plane.port,
        };
        if event.since() > self.version || self.media_id.is_some() {
            return;
        }
        let Some(id) = plane.register(&self.peer, &self.conn) else {
            tracing::warn!("no media keys from the TLS exporter: media stays on QUIC");
            return;
        };
        self.media_id = Some(id);
        let mut bytes = Vec::new();
        let event = Event::MediaPlane {
            id,
            port: plane.port,
        };
        if encode_server(&mut bytes, &ServerMsg::Event(event)).is_ok()
            && self.out.try_send(Outgoing::Frame(bytes)).is_err()
        {
            self.conn
                .close(close::TOO_SLOW.into(), b"client not reading its events");
        }
    }

    pub fn reply(&self, id: u32, result: Result<Response, WireError>) {
        send_reply(&self.out, &self.conn, id, result);
    }

    fn close(&self, code: u32, error: ErrorCode, message: String) {
        tracing::debug!(code, "closing: {message}");
        let error = WireError::new(error, message);
        if self.out.try_send(Outgoing::Close { code, error }).is_err() {
            self.conn.close(code.into(), b"closing");
        }
    }
}

/// What a read of the control stream gave.
enum Read {
    Bytes(usize),
    /// The client finished its side.
    Finished,
    /// A deadline passed first.
    Late,
}

impl From<Option<usize>> for Read {
    fn from(read: Option<usize>) -> Read {
        read.map_or(Read::Finished, Read::Bytes)
    }
}

/// Drains the session's queue into its control stream, coalescing queued frames.
async fn write_loop(mut send: quinn::SendStream, rx: Receiver<Outgoing>, conn: quinn::Connection) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Outgoing::Frame(bytes) => {
                    batch.extend_from_slice(&bytes);
                    if batch.len() < 64 * 1024 {
                        next = rx.try_recv().ok();
                    }
                }
                Outgoing::Close { code, error } => {
                    let _ = encode_server(&mut batch, &ServerMsg::Goodbye(error.clone()));
                    let _ = send.write_all(&batch).await;
                    let _ = send.finish();
                    // Give the goodbye a moment to arrive: closing discards unsent data.
                    let _ =
                        smol::future::or(async { send.stopped().await.ok().flatten() }, async {
                            smol::Timer::after(Duration::from_millis(300)).await;
                            None
                        })
                        .await;
                    conn.close(code.into(), error.message.as_bytes());
                    return;
                }
            }
        }
        if !batch.is_empty() {
            if send.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    }
    let _ = send.finish();
}

/// Forwards this session's QUIC media datagrams to the other party of their call, or into
/// their conference room ([`crate::plane::forward`], the same decisions as the UDP media
/// plane's): only along routes the call router installed, so a client can never make the
/// relay send to an address or session of its choosing, nor into a room it is not in.
/// Every datagram is counted, forwarded or dropped by cause (one into a room counts
/// once, as forwarded).
async fn forward_media(conn: quinn::Connection, peer: Arc<Peer>, shared: Arc<Shared>) {
    let mut scratch: Box<Scratch> = Box::new([0u8; phoned_proto::plane::MAX_PACKET]);
    while let Ok(datagram) = conn.read_datagram().await {
        forward_counted(&shared, &peer, &datagram, &mut scratch);
    }
}

/// Forwards one media datagram from `peer` along its routes, by the media plane when the
/// relay has one, and counts what became of it.
pub(crate) fn forward_counted(
    shared: &Shared,
    peer: &Peer,
    datagram: &[u8],
    scratch: &mut Scratch,
) {
    let now = crate::plane::now_ms();
    let forwarded = match &shared.media {
        Some(plane) => forward(peer, datagram, now, scratch, &mut plane.direct()),
        None => forward(peer, datagram, now, scratch, &mut crate::plane::QuicOnly),
    };
    count(shared, forwarded);
}

/// Counts what became of one media datagram.
pub(crate) fn count(shared: &Shared, forwarded: Forwarded) {
    let counted = &shared.metrics.media;
    match forwarded {
        Forwarded::Sent(Sent::Udp | Sent::Quic) | Forwarded::Room => counted.forwarded.inc(),
        Forwarded::Sent(Sent::Failed) => counted.send_failed.inc(),
        Forwarded::Malformed => counted.malformed.inc(),
        Forwarded::NoRoute => counted.no_route.inc(),
    };
}
