//! The QUIC server: binds the endpoint, starts the tasks that own shared state (the call
//! router, the revision watch) and accepts connections, each served by
//! [`crate::session`]. [`Running`] is the handle a caller keeps: it reloads and shuts down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phoned_proto::ALPN;
use phoned_proto::error::close;
use smol::Task;
use thiserror::Error;

use crate::calls::{CallIds, Calls};
use crate::cert::{self, CertError};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::registry::Registry;
use crate::reload::{self, Reloaded};
use crate::router::{self, Mono, Router};
use crate::shared::{Shared, lock};
use crate::store::Committer;
use crate::store::{Store, StoreError};
use crate::token::Tokens;

/// How often the relay looks for account changes made by other processes (admin CLI).
const REVISION_POLL: Duration = Duration::from_millis(300);

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no random numbers from the operating system: {0}")]
    Random(getrandom::Error),
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A relay that is serving. Dropping it stops the accept loop; call
/// [`Running::shutdown`] for a graceful close.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the metrics endpoint listens, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the UDP media plane listens, when it runs.
    pub media_addr: Option<SocketAddr>,
    fingerprint: Mutex<String>,
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    _accept: Task<()>,
    _watch: Task<()>,
    _router: Task<()>,
    _upkeep: Task<()>,
    _liveness: Task<()>,
    _flusher: Task<()>,
    _metrics: Option<Task<()>>,
    /// Stops the media plane's threads when dropped.
    _media: Option<crate::plane::Running>,
    _cluster: Option<Task<()>>,
}

impl Running {
    /// Number of logged-in sessions (for tests and benchmarks).
    pub fn logged_in(&self) -> usize {
        self.shared.logged_in()
    }

    /// Number of connections held, logged in or not (for tests).
    pub fn connections(&self) -> u32 {
        self.shared.connections()
    }

    /// The one-line service status: where it serves, and whether it is out of space.
    pub fn status(&self) -> String {
        match self.shared.space(|s| s.health.short()) {
            Some(why) => format!("serving on {}; OUT OF SPACE: {why}", self.addr),
            None => format!("serving on {}", self.addr),
        }
    }

    /// Why the relay refuses new messages and uploads for want of space, if it does (as
    /// the upkeep task last measured).
    pub fn out_of_space(&self) -> Option<crate::space::Shortage> {
        self.shared.space(|s| s.health.short())
    }

    /// The fingerprint of the certificate new connections see.
    pub fn fingerprint(&self) -> String {
        lock(&self.fingerprint).clone()
    }

    /// Applies a re-read config without dropping connections: rates, limits and
    /// switches at once, the certificate (its files are read again) and the transport
    /// timeouts for new connections. `listen`, `state_dir` and `map_size_mib` keep their
    /// values until a restart. On error nothing has changed.
    pub fn reload(&self, new: Config) -> Result<Reloaded, StartError> {
        let old = self.shared.config();
        let (new, mut reloaded) = reload::plan(&old, new);
        let identity = identity(&new)?;
        let fingerprint = identity.fingerprint();
        let server = server_config(&new, identity)?;
        // Everything that can fail has succeeded; apply.
        self.endpoint.set_server_config(Some(server));
        self.shared.calls.set_ring_timeout(millis(new.ring_timeout));
        self.shared.set_config(new);
        let mut current = lock(&self.fingerprint);
        if *current != fingerprint {
            reloaded.applied.push("certificate");
            reloaded.fingerprint = Some(fingerprint.clone());
            *current = fingerprint;
        }
        Ok(reloaded)
    }

    /// Closes every connection with a `SHUTDOWN` code and waits briefly for peers to see it.
    pub async fn shutdown(self) {
        self.endpoint
            .close(close::SHUTDOWN.into(), b"relay shutting down");
        let idle = self.endpoint.wait_idle();
        smol::future::or(idle, async {
            smol::Timer::after(Duration::from_secs(2)).await;
        })
        .await;
        // In a cluster, the others see this relay's devices go now (those that moved to
        // another relay stay online there), not when the leases expire.
        if let Store::Postgres(pg) = &self.shared.store {
            let pg = pg.clone();
            let cleared = blocking::unblock(move || {
                let me = pg.relay_id().to_owned();
                pg.sync_leases(&me, &[], crate::cluster::leases::TTL, true, None)
            });
            if let Err(e) = cleared.await {
                tracing::warn!("cluster: removing this relay's leases: {e}");
            }
        }
    }
}

/// Opens the store, loads or makes the TLS identity, binds and starts serving.
/// Must be called from within a smol executor.
pub fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| StoreError::Dir {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    let store = match Store::open(&config.store, &config.state_dir, config.map_size_mib)? {
        Store::Postgres(pg) => {
            let id = crate::cluster::relay_id(config.relay_id.as_deref());
            tracing::info!(relay_id = %id, "relay id in the cluster: {id}");
            Store::Postgres(pg.with_relay_id(&id))
        }
        heed => heed,
    };
    let metrics = Arc::new(Metrics::new());
    let committer = {
        let metrics = metrics.clone();
        Committer::start_observed(
            store.clone(),
            Box::new(move |took, writes| metrics.commit(took, writes)),
        )?
    };
    let identity = identity(&config)?;
    let tokens = Tokens::load_or_create(&config.state_dir)?;
    let fingerprint = identity.fingerprint();
    // Both from the TLS key, so that devices believe a restarted relay's resets.
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(identity.reset_key()));
    let cid_key = identity.connection_id_key();
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let link_identity = cert::Identity {
        chain: identity.chain.clone(),
        key: identity.key.clone_key(),
    };
    let server_config = server_config(&config, identity)?;
    let socket = std::net::UdpSocket::bind(config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    enlarge_socket_buffers(&socket);
    let endpoint = quinn::Endpoint::new(
        endpoint_config,
        Some(server_config),
        socket,
        Arc::new(quinn::SmolRuntime),
    )
    .map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = endpoint.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let metrics_listener = config.metrics_listen.map(bind_metrics).transpose()?;
    // Without its media plane the relay still serves everything, media on QUIC datagrams.
    let media = config.media_listen.and_then(|at| {
        let started = crate::plane::Plane::start(
            at,
            config.media_advertise_port,
            config.media_threads,
            metrics.media.clone(),
        );
        match started {
            Ok(running) => {
                tracing::info!(addr = %running.plane.local, "media plane on UDP {}", running.plane.local);
                Some(running)
            }
            Err(e) => {
                tracing::error!("cannot listen for media on {at}: {e}; media goes over QUIC datagrams");
                None
            }
        }
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let calls = Calls::new(
        millis(config.ring_timeout),
        CallIds::random().map_err(StartError::Random)?,
    );
    let (router, commands) = Router::new();
    let clock = Mono::new();
    let sessions = Arc::new(Registry::default());
    let (kick, kicked) = smol::channel::bounded(1);
    let (flush, flushes) = smol::channel::bounded(1);
    let router_task = {
        let sessions = sessions.clone();
        let (calls_gauge, rooms_gauge) = (metrics.calls.clone(), metrics.rooms.clone());
        smol::spawn(router::drive(
            calls,
            commands,
            clock,
            move |actions| sessions.dispatch_calls(actions),
            move |calls, rooms| {
                calls_gauge.set(i64::try_from(calls).unwrap_or(i64::MAX));
                rooms_gauge.set(i64::try_from(rooms).unwrap_or(i64::MAX));
            },
        ))
    };
    let shared = Arc::new(Shared::new(
        config,
        store,
        committer,
        Hasher::new(workers),
        tokens,
        sessions,
        router,
        clock,
        kick,
        flush,
        metrics,
        media.as_ref().map(|m| m.plane.clone()),
    ));
    crate::upkeep::restore_partials(&shared);
    let upkeep = smol::spawn(crate::upkeep::run(shared.clone(), kicked, addr));
    let flusher = smol::spawn(crate::flusher::run(shared.clone(), flushes, clock));
    let liveness = smol::spawn(crate::liveness::run(shared.clone()));
    let accept = smol::spawn(accept_loop(endpoint.clone(), shared.clone()));
    let watch = smol::spawn(watch_revisions(shared.clone()));
    let cluster = match &shared.store {
        Store::Postgres(pg) => {
            let advertise = shared
                .config()
                .cluster_advertise
                .or_else(|| (!addr.ip().is_unspecified()).then_some(addr));
            match advertise {
                Some(at) => tracing::info!(%at, "relay links (calls from other relays) on {at}"),
                None => tracing::warn!(
                    "cluster_advertise is not set and listen is a wildcard address: other \
                     relays cannot call devices here (their calls end as offline)"
                ),
            }
            let config = shared.config();
            let links = crate::cluster::link::Links::new(
                endpoint.clone(),
                &link_identity,
                config.idle_timeout,
                config.keep_alive,
                advertise,
            )
            .map_err(StartError::Tls)?;
            shared.set_links(Arc::new(links));
            let (wake, woken) = smol::channel::bounded(1);
            shared.set_cluster(wake);
            let me = pg.relay_id().to_owned();
            let notices = crate::cluster::listen(pg.clone(), me.clone());
            Some(smol::spawn(crate::cluster::run(
                shared.clone(),
                pg.clone(),
                me,
                notices,
                woken,
            )))
        }
        Store::Heed(_) => None,
    };
    let (metrics_addr, metrics_task) = match metrics_listener {
        Some((listener, at)) => {
            tracing::info!(addr = %at, "metrics endpoint on http://{at}/metrics");
            let task = smol::spawn(crate::metrics::http::serve(listener, shared.clone()));
            (Some(at), Some(task))
        }
        None => (None, None),
    };
    Ok(Running {
        addr,
        metrics_addr,
        media_addr: media.as_ref().map(|m| m.plane.local),
        fingerprint: Mutex::new(fingerprint),
        endpoint,
        shared,
        _accept: accept,
        _watch: watch,
        _router: router_task,
        _upkeep: upkeep,
        _liveness: liveness,
        _flusher: flusher,
        _metrics: metrics_task,
        _media: media,
        _cluster: cluster,
    })
}

/// Binds the metrics endpoint's TCP listener; returns it with the address it got.
fn bind_metrics(addr: SocketAddr) -> Result<(async_net::TcpListener, SocketAddr), StartError> {
    let bind = |source| StartError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    let at = listener.local_addr().map_err(bind)?;
    let listener = async_net::TcpListener::try_from(listener).map_err(bind)?;
    Ok((listener, at))
}

/// Socket buffer the relay asks for, each way. Every call's media goes through its one UDP
/// socket, and the default (208 KiB, a few hundred small datagrams) is too small for that:
/// - receiving, it overflows whenever the endpoint's task is descheduled for a few
///   milliseconds at 50 000 datagrams/s, and each overflow is a lost frame;
/// - sending, a full buffer makes quinn wait before it sends to *any* connection (on
///   loopback a datagram counts against it until its receiver has read it).
///
/// 1 MiB holds about 20 ms at 100 000 datagrams/s: enough for a stall, not enough to let
/// a standing queue add much delay. The kernel caps the request at `net.core.rmem_max` /
/// `wmem_max`. `relay/benches/forwarding.rs` measured the difference (docs/benchmarks.md).
const SOCKET_BUFFER_BYTES: libc::c_int = 1 << 20;

/// Asks for [`SOCKET_BUFFER_BYTES`] of receive and send buffer; best effort.
fn enlarge_socket_buffers(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    for (option, name) in [(libc::SO_RCVBUF, "receive"), (libc::SO_SNDBUF, "send")] {
        // SAFETY: setsockopt reads one c_int from the pointer we pass, on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&SOCKET_BUFFER_BYTES as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::warn!(
                "cannot enlarge the UDP {name} buffer: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The configured certificate (PEM files, read now), else the stored self-signed one.
fn identity(config: &Config) -> Result<cert::Identity, CertError> {
    match &config.tls {
        Some((c, k)) => cert::load_pem(c, k),
        None => cert::load_or_create(&config.state_dir),
    }
}

fn server_config(
    config: &Config,
    identity: cert::Identity,
) -> Result<quinn::ServerConfig, StartError> {
    let tls_err = |e: &dyn std::fmt::Display| StartError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        // Asked of every client, required of none: relay links present the cluster's
        // certificate ([`crate::cluster::peer_tls`]), devices none.
        .with_client_cert_verifier(Arc::new(crate::cluster::peer_tls::ClusterCert::new(
            identity.chain[0].clone(),
            provider.clone(),
        )))
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| tls_err(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec(), crate::cluster::peer_tls::PEER_ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| tls_err(&e))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            config.idle_timeout.try_into().map_err(|e| tls_err(&e))?,
        ))
        .keep_alive_interval(Some(config.keep_alive))
        .max_concurrent_bidi_streams(16u32.into())
        .max_concurrent_uni_streams(0u32.into());
    server.transport_config(Arc::new(transport));
    Ok(server)
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    // Refusals are logged once per episode, not per connection: a flood must not flood
    // the log too.
    let mut refusing = None;
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        match shared.admit(remote.ip()) {
            Ok(slot) => {
                if refusing.take().is_some() {
                    tracing::info!("taking new connections again");
                }
                smol::spawn(crate::session::run(shared.clone(), incoming, slot)).detach();
            }
            Err(why) => {
                if refusing != Some(why) {
                    tracing::warn!(
                        open = shared.connections(),
                        "{}; refusing {remote} and others like it",
                        why.as_str()
                    );
                    refusing = Some(why);
                }
                incoming.refuse();
            }
        }
    }
}

/// Applies account changes made by other processes (the admin CLI) to live sessions.
/// A store that cannot be read (PostgreSQL down) is said once, and again when it is back.
async fn watch_revisions(shared: Arc<Shared>) {
    let mut seen = None;
    let mut failing = false;
    loop {
        smol::Timer::after(REVISION_POLL).await;
        let store = shared.store.clone();
        let rev = match blocking::unblock(move || store.revision()).await {
            Ok(r) => r,
            Err(e) => {
                if !failing {
                    tracing::error!(
                        "reading the accounts revision: {e}; new logins and account changes \
                         fail until the store is back"
                    );
                    failing = true;
                }
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("the store is reachable again");
        }
        if seen == Some(rev) {
            continue;
        }
        seen = Some(rev);
        let online = shared.online_accounts();
        for id in online {
            shared.sync_account(id).await;
        }
    }
}
