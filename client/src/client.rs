//! The relay client: connects over QUIC, verifies the relay as [`crate::verify`] says,
//! says `Hello`, matches responses to requests, and queues pushed events. Bulk streams of a
//! connection are in [`crate::bulk`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoned_proto::{
    ALPN, AccountInfo, ClientFrame, ErrorCode, Event, FrameDecoder, Hello, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION, Request, Response, ServerMsg, WireError, decode_server, encode_client,
};
use smol::channel::{Receiver, Sender};
use thiserror::Error;

use crate::verify::{Seen, Trust, Verifier};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("relay: {0}")]
    Relay(#[from] WireError),
    #[error("unexpected answer: {0:?}")]
    Unexpected(Box<Response>),
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    pub fn code(&self) -> Option<phoned_proto::ErrorCode> {
        match self {
            ClientError::Relay(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A QUIC client endpoint on an ephemeral port of `bind` (`0.0.0.0:0` or `[::]:0` for a
/// real network, `127.0.0.1:0` for tests).
pub fn endpoint_on(bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(bind)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::SmolRuntime),
    )
}

/// A QUIC client endpoint on loopback, to share between many connections (tests).
pub fn endpoint() -> quinn::Endpoint {
    endpoint_on(([127, 0, 0, 1], 0).into()).expect("client endpoint on loopback")
}

/// Keep-alive interval of a connection that keeps alive by QUIC alone ([`KeepAlive::Quic`]):
/// a QUIC PING (a few dozen bytes, and the relay's ACK) each second while nothing else is
/// sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The idle timeout a [`KeepAlive::Quic`] connection asks for. QUIC uses the smaller of the
/// two peers' values (RFC 9000 §10.1), so a connection on which nothing arrives for this
/// long is closed on both ends: a relay that died, hangs or became unreachable is noticed
/// 4–5 s after its last packet (4 s, plus up to one keep-alive interval), not after the
/// relay's own `idle_timeout_ms` (15 s by default). Four keep-alives and their ACKs must
/// all be lost for a working link to be cut.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Keep-alive interval of a [`KeepAlive::Beat`] connection: often enough for a NAT's
/// mapping (the relay keeps alive too: `keep_alive_ms`, 10 s by default).
pub const BEAT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The idle timeout a [`KeepAlive::Beat`] connection asks for: only a backstop, the
/// watchdogs of both ends (`phoned_proto::liveness`) cut a silent link after 4 s.
pub const BEAT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a connection tells that the relay is alive (docs/protocol.md §16.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepAlive {
    /// By QUIC alone: keep-alives every [`KEEP_ALIVE`], idle timeout [`IDLE_TIMEOUT`].
    /// What tools and tests use, and what daemons before the beat used. Each keep-alive
    /// costs the relay a QUIC packet in and an ACK out, in its connection's task.
    #[default]
    Quic,
    /// The caller beats each second on the cheapest path (a UDP plane keep-alive, else a
    /// `Ping`, see [`Client::beat`]), watches what comes back, and asks the relay to
    /// watch it ([`Client::ask_watch`]); QUIC keeps alive every
    /// [`BEAT_KEEP_ALIVE`] with an idle timeout of [`BEAT_IDLE_TIMEOUT`].
    Beat,
}

impl KeepAlive {
    /// The QUIC keep-alive interval and idle timeout this asks for.
    pub fn quic(self) -> (Duration, Duration) {
        match self {
            KeepAlive::Quic => (KEEP_ALIVE, IDLE_TIMEOUT),
            KeepAlive::Beat => (BEAT_KEEP_ALIVE, BEAT_IDLE_TIMEOUT),
        }
    }
}

fn client_config(
    trust: Trust,
    seen: Arc<Mutex<Seen>>,
    keep_alive: KeepAlive,
) -> Result<quinn::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier::new(trust, provider.clone(), seen);
    let tls_err = |e: &dyn std::fmt::Display| ClientError::Connect(format!("TLS setup: {e}"));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| tls_err(&e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    let (interval, idle) = keep_alive.quic();
    transport.keep_alive_interval(Some(interval));
    let idle_ms = u32::try_from(idle.as_millis()).unwrap_or(u32::MAX);
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(idle_ms).into()));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn pinned_or_any(pin: Option<&str>) -> Trust {
    match pin {
        Some(p) => Trust::Pinned {
            fingerprint: p.to_owned(),
            learnt: false,
        },
        None => Trust::Any,
    }
}

/// The streams of a connection whose `Hello` has not been said.
pub type RawConnection = (
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    Seen,
);

/// Opens a QUIC connection and its control stream, without saying `Hello`. `pin` is the
/// fingerprint the relay must have (`None`: any).
pub async fn connect_raw(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    pin: Option<&str>,
) -> Result<RawConnection, ClientError> {
    open(
        endpoint,
        addr,
        "phone-relay",
        pinned_or_any(pin),
        KeepAlive::Quic,
    )
    .await
}

async fn open(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    trust: Trust,
    keep_alive: KeepAlive,
) -> Result<RawConnection, ClientError> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let connecting = endpoint
        .connect_with(
            client_config(trust, seen.clone(), keep_alive)?,
            addr,
            server_name,
        )
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let conn = connecting
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| ClientError::Lost(e.to_string()))?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((conn, send, recv, seen))
}

type Pending = Arc<Mutex<HashMap<u32, Sender<Result<Response, WireError>>>>>;

pub struct Client {
    pub conn: quinn::Connection,
    /// The relay's fingerprint as seen in the handshake.
    pub fingerprint: Option<String>,
    /// The relay's certificate chains to a public root.
    pub public_cert: bool,
    send: smol::lock::Mutex<quinn::SendStream>,
    next_id: AtomicU32,
    pending: Pending,
    events: Receiver<Event>,
    goodbye: Arc<Mutex<Option<WireError>>>,
    version: u16,
    _reader: smol::Task<()>,
}

impl Client {
    /// Connects on `endpoint` requiring fingerprint `pin` (any relay when `None`), says
    /// `Hello`, and waits for `Welcome`.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        pin: Option<&str>,
    ) -> Result<Client, ClientError> {
        Client::connect_trusting(endpoint, addr, "phone-relay", pinned_or_any(pin)).await
    }

    /// Connects with an explicit trust policy and TLS server name. Says `Hello` with
    /// [`PROTOCOL_VERSION`]; a relay too old for it refuses that, and the client then
    /// connects again speaking one version less, down to [`MIN_PROTOCOL_VERSION`] (see
    /// [`Client::version`]): a protocol-2 relay keeps receipts acknowledged.
    pub async fn connect_trusting(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
    ) -> Result<Client, ClientError> {
        Client::connect_keeping(endpoint, addr, server_name, trust, KeepAlive::Quic).await
    }

    /// [`Client::connect_trusting`], keeping the connection alive as `keep_alive` says.
    pub async fn connect_keeping(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        keep_alive: KeepAlive,
    ) -> Result<Client, ClientError> {
        let mut version = PROTOCOL_VERSION;
        loop {
            let attempt = Client::connect_with(
                endpoint,
                addr,
                server_name,
                trust.clone(),
                version,
                keep_alive,
            )
            .await;
            match attempt {
                Err(ClientError::Relay(e))
                    if e.code == ErrorCode::UnsupportedVersion
                        && version > MIN_PROTOCOL_VERSION =>
                {
                    tracing::info!("the relay does not speak protocol {version}: {e}");
                    version -= 1;
                }
                other => return other,
            }
        }
    }

    /// Connects and says `Hello` with protocol `version`.
    pub async fn connect_speaking(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        version: u16,
    ) -> Result<Client, ClientError> {
        Client::connect_with(endpoint, addr, server_name, trust, version, KeepAlive::Quic).await
    }

    /// Connects keeping alive as `keep_alive` says, and says `Hello` with protocol
    /// `version`.
    pub async fn connect_with(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        version: u16,
        keep_alive: KeepAlive,
    ) -> Result<Client, ClientError> {
        let (conn, send, recv, seen) = open(endpoint, addr, server_name, trust, keep_alive).await?;
        let pending: Pending = Arc::default();
        let goodbye = Arc::new(Mutex::new(None));
        let (etx, events) = smol::channel::unbounded();
        let reader = smol::spawn(read_loop(recv, pending.clone(), etx, goodbye.clone()));
        let client = Client {
            conn,
            fingerprint: seen.fingerprint,
            public_cert: seen.public,
            send: smol::lock::Mutex::new(send),
            next_id: AtomicU32::new(1),
            pending,
            events,
            goodbye,
            version,
            _reader: reader,
        };
        let hello = Request::Hello(Hello {
            version,
            client: concat!("phoned/", env!("CARGO_PKG_VERSION")).into(),
        });
        match client.request(hello).await? {
            Response::Welcome(w) => Ok(Client {
                version: w.version.min(version),
                ..client
            }),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// The protocol version this connection speaks (the relay's `Welcome` says it).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Sends one request and waits up to 30 s for its answer.
    pub async fn request(&self, req: Request) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = smol::channel::bounded(1);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.write_frame(id, req).await?;
        let answer = smol::future::or(async { rx.recv().await.ok() }, async {
            smol::Timer::after(Duration::from_secs(30)).await;
            None
        })
        .await;
        match answer {
            Some(r) => Ok(r?),
            None => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(self.lost())
            }
        }
    }

    /// Sends a `Ping` without waiting for its `Pong` (which is dropped when it comes): the
    /// device's beat on the control connection when its UDP plane does not carry it
    /// (`phoned_proto::liveness`). What tells the device that the relay lives is that
    /// anything comes back on the connection, the QUIC ACK first.
    pub async fn beat(&self) -> Result<(), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write_frame(id, Request::Ping { nonce: id.into() })
            .await
    }

    /// Writes one request frame on the control stream.
    async fn write_frame(&self, id: u32, req: Request) -> Result<(), ClientError> {
        let mut bytes = Vec::new();
        encode_client(&mut bytes, &ClientFrame { id, req })
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        self.send
            .lock()
            .await
            .write_all(&bytes)
            .await
            .map_err(|e| ClientError::Lost(e.to_string()))
    }

    /// Asks the relay to close this session once nothing has come from it for
    /// `silent_after` (`Request::Watch`, docs/protocol.md §16.7): for a client that beats.
    /// `Ok(false)`: the relay is older than the request and watches nothing.
    pub async fn ask_watch(&self, silent_after: Duration) -> Result<bool, ClientError> {
        let silent_after_ms = u32::try_from(silent_after.as_millis()).unwrap_or(u32::MAX);
        match self.request(Request::Watch { silent_after_ms }).await {
            Ok(Response::Done) => Ok(true),
            Ok(other) => Err(ClientError::Unexpected(Box::new(other))),
            Err(e) if e.code() == Some(ErrorCode::UnknownRequest) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn lost(&self) -> ClientError {
        if let Some(g) = self
            .goodbye
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return ClientError::Relay(g);
        }
        match self.conn.close_reason() {
            Some(r) => ClientError::Lost(r.to_string()),
            None => ClientError::Timeout,
        }
    }

    /// `Provision`: a new account with a free number; returns it and the secret.
    pub async fn provision(&self, name: &str) -> Result<(AccountInfo, String), ClientError> {
        match self
            .request(Request::Provision {
                display_name: name.into(),
            })
            .await?
        {
            Response::Provisioned { account, secret } => Ok((account, secret)),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    pub async fn login(&self, number: &str, password: &str) -> Result<AccountInfo, ClientError> {
        let req = Request::Login {
            number: number.into(),
            password: password.into(),
        };
        match self.request(req).await? {
            Response::LoggedIn(a) => Ok(a),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Logs in as a device that keeps a login token: sends the one it has (from its last
    /// login, if any) and returns the one to keep. The token lets a device that has
    /// logged in before past the back-off that strangers' failed logins put on its
    /// number. A relay that predates tokens gets a plain `Login` (and no token comes back).
    pub async fn login_device(
        &self,
        number: &str,
        password: &str,
        token: Option<&str>,
    ) -> Result<(AccountInfo, Option<String>), ClientError> {
        let req = Request::DeviceLogin {
            number: number.into(),
            password: password.into(),
            token: token.map(str::to_owned),
        };
        match self.request(req).await {
            Ok(Response::DeviceLoggedIn { account, token }) => Ok((account, Some(token))),
            Ok(other) => Err(ClientError::Unexpected(Box::new(other))),
            Err(e) if e.code() == Some(phoned_proto::ErrorCode::UnknownRequest) => {
                Ok((self.login(number, password).await?, None))
            }
            Err(e) => Err(e),
        }
    }

    /// A login token for this device, after logging in without one (`Provision`,
    /// `Register`); `None` from a relay that predates tokens.
    pub async fn device_token(&self) -> Result<Option<String>, ClientError> {
        match self.request(Request::DeviceToken).await {
            Ok(Response::DeviceToken { token }) => Ok(Some(token)),
            Ok(other) => Err(ClientError::Unexpected(Box::new(other))),
            Err(e) if e.code() == Some(phoned_proto::ErrorCode::UnknownRequest) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn account(&self, req: Request) -> Result<AccountInfo, ClientError> {
        match self.request(req).await? {
            Response::Account(a) | Response::LoggedIn(a) => Ok(a),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    pub async fn online(&self) -> Result<Vec<(String, String)>, ClientError> {
        match self.request(Request::ListOnline).await? {
            Response::Online(list) => Ok(list.into_iter().map(|u| (u.number, u.name)).collect()),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Waits up to `within` for an event matching `pred`, dropping others.
    pub async fn wait_event(
        &self,
        within: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let events = self.events.clone();
        smol::future::or(
            async move {
                while let Ok(e) = events.recv().await {
                    if pred(&e) {
                        return Some(e);
                    }
                }
                None
            },
            async {
                smol::Timer::after(within).await;
                None
            },
        )
        .await
    }

    /// The next event pushed by the relay; `None` once the connection is gone.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.recv().await.ok()
    }

    /// The `Goodbye` the relay sent before closing, if any.
    pub fn goodbye(&self) -> Option<WireError> {
        self.goodbye
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the relay closes the connection, up to `within`.
    pub async fn closed(&self, within: Duration) -> Option<quinn::ConnectionError> {
        let conn = self.conn.clone();
        smol::future::or(async move { Some(conn.closed().await) }, async {
            smol::Timer::after(within).await;
            None
        })
        .await
    }
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    pending: Pending,
    events: Sender<Event>,
    goodbye: Arc<Mutex<Option<WireError>>>,
) {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        decoder.push(&buf[..n]);
        while let Ok(Some(body)) = decoder.next_frame() {
            match decode_server(body) {
                Ok(ServerMsg::Response { id, result }) => {
                    if let Some(tx) = pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id)
                    {
                        let _ = tx.try_send(result);
                    }
                }
                Ok(ServerMsg::Event(e)) => {
                    let _ = events.try_send(e);
                }
                Ok(ServerMsg::Goodbye(e)) => {
                    *goodbye.lock().unwrap_or_else(|p| p.into_inner()) = Some(e)
                }
                Err(_) => return,
            }
        }
        decoder.compact();
    }
    // Wake every waiter: the connection is gone.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}
