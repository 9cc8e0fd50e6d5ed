//! The link to the relay, an adapter of the driver: connect, verify, log in (or provision
//! on first start), report it online, pass on the relay's events and media datagrams, and
//! reconnect with back-off when the network or the relay goes away (told by the watch of
//! [`liveness`], or the connection's end), or at once when the core asks (a reload changed
//! the relay, its pin or the credentials). The live client is handed to the driver, which
//! owns it. When the daemon stops, the link closes its
//! connection and gives the close a moment to reach the relay, so that the others see this
//! phone go offline at once rather than after the idle timeout.

pub mod backoff;
pub mod failover;
pub mod liveness;
pub mod media;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::error::close;
use phoned_proto::{AccountInfo, ErrorCode};
use smol::channel::Receiver;
use thiserror::Error;

use crate::call::media::MediaRoutes;
use crate::core::{CoreError, ErrorKind, LinkEvent};
use crate::credentials::{self, Credentials, CredentialsError};
use crate::driver::Handle;
use crate::store::StoreError;
use backoff::Backoff;
use failover::{Rotation, Target};
use media::MediaLink;
use phoned_client::{Client, ClientError, KeepAlive, Trust};

/// The reconnect schedule (see [`backoff`] for why the first tries are short): the first
/// retry comes 0.1–0.2 s after the link is lost, later ones back off to 5–10 s apart; each
/// of the first five tries gets 3.5 s to reach the relay's `Welcome`, later ones 10 s
/// (quinn's own limit would be its idle timeout). A relay back within 12 s of going away
/// is reached within about 2 s of listening again.
pub const BACKOFF: backoff::Policy = backoff::Policy {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(10),
    quick_timeout: Duration::from_millis(3_500),
    quick_attempts: 5,
    slow_timeout: Duration::from_secs(10),
};

/// How long a stopping daemon waits for its QUIC close to go out. Without a close the relay
/// keeps the session, and shows the phone online, until its watch sees the device silent
/// (4 s; an older relay: until the idle timeout, 15 s by default); the close takes one
/// packet, so this only bounds a stop on a dead link.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The settings key of the fingerprint learnt on first use for a relay address.
/// The settings key of the fingerprint learnt for `relay` on first connection.
pub(crate) fn pin_key(relay: &str) -> String {
    format!("relay_pin/{relay}")
}

/// The settings key of the login token the relay gave this device for a number (kept
/// beside the relay pin in the daemon's store, readable by the daemon only).
fn token_key(relay: &str, number: &str) -> String {
    format!("login_token/{relay}/{number}")
}

/// Why a link could not be established; the message becomes `LastError`.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("cannot resolve relay {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("relay {0} has no address")]
    NoAddress(String),
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("cannot connect to relay {relay}: {message}")]
    Connect { relay: String, message: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "the relay refused number {number} and its password (reset it with phone-relay admin, or fix {path})"
    )]
    Refused { number: String, path: String },
    #[error("login as {number}: {source}")]
    Login { number: String, source: ClientError },
    #[error("provisioning a number: {0}")]
    Provision(ClientError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("saving the relay pin: {0}")]
    Pin(StoreError),
}

/// A relay or link error as the core sees it: what a caller can act on.
impl From<ClientError> for CoreError {
    fn from(e: ClientError) -> CoreError {
        let kind = match &e {
            ClientError::Relay(w) => match w.code {
                ErrorCode::NumberTaken => ErrorKind::NumberTaken,
                ErrorCode::InvalidNumber => ErrorKind::InvalidNumber,
                ErrorCode::InvalidName | ErrorCode::InvalidPassword | ErrorCode::TooLarge => {
                    ErrorKind::InvalidArgument
                }
                ErrorCode::NotLoggedIn | ErrorCode::SessionRevoked => ErrorKind::Offline,
                ErrorCode::RateLimited | ErrorCode::Unavailable => ErrorKind::Busy,
                ErrorCode::AccountDisabled => ErrorKind::PermissionDenied,
                ErrorCode::UnknownNumber => ErrorKind::NotFound,
                // The relay's disk is a storage limit like the mailbox quota; the
                // message says which (`the relay is out of disk space …`).
                ErrorCode::QuotaExceeded | ErrorCode::OutOfSpace => ErrorKind::QuotaExceeded,
                ErrorCode::NoSuchCall => ErrorKind::NotFound,
                ErrorCode::InvalidCallState => ErrorKind::InvalidState,
                ErrorCode::NotHost => ErrorKind::PermissionDenied,
                ErrorCode::InvalidParty => ErrorKind::InvalidArgument,
                ErrorCode::ConferenceFull => ErrorKind::Busy,
                _ => ErrorKind::Failed,
            },
            ClientError::Timeout => ErrorKind::Timeout,
            ClientError::Lost(_) | ClientError::Connect(_) => ErrorKind::Offline,
            ClientError::Unexpected(_) => ErrorKind::Failed,
        };
        let message = match e {
            ClientError::Relay(w) => w.message,
            ClientError::Timeout => "the relay did not answer".to_owned(),
            ClientError::Lost(m) | ClientError::Connect(m) => m,
            ClientError::Unexpected(r) => format!("unexpected answer from the relay: {r:?}"),
        };
        CoreError::new(kind, message)
    }
}

/// How an established link ended.
enum Ended {
    /// The connection was lost.
    Lost,
    /// A reload changed the relay, its pin or the credentials: connect again at once.
    Reconfigured,
    /// The daemon is stopping; the connection, if there was one, is closed.
    Stopped,
}

/// Returns once `stop` is closed (its sender dropped) or fired: the daemon is stopping.
async fn stopping(stop: &Receiver<()>) {
    let _ = stop.recv().await;
}

/// Keeps the daemon connected until `stop` fires or is closed, then closes the connection
/// (waiting at most [`CLOSE_GRACE`]) and returns. `relink` fires when the core wants a
/// reconnect; media datagrams are delivered through `media` to their calls' media threads.
pub async fn run(handle: Handle, relink: Receiver<()>, media: MediaRoutes, stop: Receiver<()>) {
    let mut backoff = Backoff::new(BACKOFF);
    let mut rotation = Rotation::default();
    let mut timeout = backoff.first_timeout();
    let mut last_logged = String::new();
    loop {
        handle.link(LinkEvent::Connecting);
        let tried = session(
            &handle,
            &relink,
            &media,
            &stop,
            &mut backoff,
            &rotation,
            timeout,
        )
        .await;
        // A failed try or a lost link: the next try goes to the next relay (one that
        // died does not come back at once); a reload starts where the link was.
        if matches!(tried, Ok(Ended::Lost) | Err(_)) {
            rotation.moved_on();
        }
        let why = match tried {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Reconfigured) => {
                tracing::info!("reconnecting with the new config");
                let why = Some("reconnecting with the new config".to_owned());
                handle.link(LinkEvent::Offline { why });
                backoff.reset();
                timeout = backoff.first_timeout();
                continue;
            }
            Ok(Ended::Lost) => "connection to the relay lost".to_owned(),
            Err(e) => e.to_string(),
        };
        if why != last_logged {
            tracing::warn!("offline: {why}");
            last_logged = why.clone();
        }
        handle.link(LinkEvent::Offline { why: Some(why) });
        let retry = backoff.next(random_unit());
        let delay = retry.delay;
        timeout = retry.timeout;
        tracing::debug!(?delay, ?timeout, "reconnecting after");
        // A reload (say, of a mistyped relay address) cuts the wait short.
        let wait = smol::future::or(
            async { Some(relink.recv().await.is_ok()) },
            smol::future::or(
                async {
                    stopping(&stop).await;
                    None
                },
                async {
                    smol::Timer::after(delay).await;
                    Some(false)
                },
            ),
        );
        let Some(reloaded) = wait.await else {
            return;
        };
        if reloaded {
            backoff.reset();
            timeout = backoff.first_timeout();
        }
    }
}

fn random_unit() -> f64 {
    getrandom::u64().map_or(0.5, |r| (r >> 11) as f64 / (1u64 << 53) as f64)
}

/// Every address of every configured relay, in order (see [`failover::targets`]). A
/// name that does not resolve is skipped while another relay does; if none does, the
/// first one's error.
async fn resolve(relays: &[crate::config::RelayAddr]) -> Result<Vec<Target>, LinkError> {
    let wanted: Vec<(String, u16)> = relays.iter().map(|r| (r.host.clone(), r.port)).collect();
    let resolved = blocking::unblock(move || {
        wanted
            .into_iter()
            .map(|(host, port)| {
                let addrs = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>());
                (host, addrs)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut first_error = None;
    let mut found = Vec::new();
    for (host, addrs) in resolved {
        match addrs {
            Ok(a) => found.push((host, a)),
            Err(source) => {
                first_error.get_or_insert(LinkError::Resolve { host, source });
            }
        }
    }
    let targets = failover::targets(found);
    if targets.is_empty() {
        return Err(first_error.unwrap_or_else(|| {
            LinkError::NoAddress(relays.first().map(|r| r.host.clone()).unwrap_or_default())
        }));
    }
    Ok(targets)
}

fn trust(handle: &Handle) -> Trust {
    let config = handle.config();
    if let Some(fp) = &config.relay_fingerprint {
        return Trust::Pinned {
            fingerprint: fp.clone(),
            learnt: false,
        };
    }
    match handle.store.setting(&pin_key(&config.relay)) {
        Ok(Some(fp)) => Trust::Pinned {
            fingerprint: fp,
            learnt: true,
        },
        _ => Trust::FirstUse,
    }
}

/// One connection: returns how an established link ended, or why it could not be
/// established.
async fn session(
    handle: &Handle,
    relink: &Receiver<()>,
    media: &MediaRoutes,
    stop: &Receiver<()>,
    backoff: &mut Backoff,
    rotation: &Rotation,
    timeout: Duration,
) -> Result<Ended, LinkError> {
    let config = handle.config();
    let targets = resolve(&config.relays).await?;
    let Some(target) = rotation.pick(&targets).cloned() else {
        return Err(LinkError::NoAddress(config.relay.clone()));
    };
    let addr = target.addr;
    tracing::debug!(%addr, host = %target.host, "connecting to the relay");
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().unwrap_or(addr)
    } else {
        "0.0.0.0:0".parse().unwrap_or(addr)
    };
    let endpoint = phoned_client::endpoint_on(bind).map_err(LinkError::Socket)?;
    let trust = trust(handle);
    let first_use = trust == Trust::FirstUse;
    let server_name = if target.host.parse::<std::net::IpAddr>().is_ok() {
        "phone-relay"
    } else {
        target.host.as_str()
    };
    let connecting = async {
        let connect = Client::connect_keeping(&endpoint, addr, server_name, trust, KeepAlive::Beat);
        let timeout = async {
            smol::Timer::after(timeout).await;
            Err(ClientError::Connect(format!(
                "no answer in {:.1} s",
                timeout.as_secs_f64()
            )))
        };
        smol::future::or(connect, timeout)
            .await
            .map_err(|e| match e {
                ClientError::Connect(message) => LinkError::Connect {
                    relay: if target.host.parse::<std::net::IpAddr>().is_ok() {
                        addr.to_string()
                    } else {
                        format!("{} ({addr})", target.host)
                    },
                    message,
                },
                other => LinkError::Client(other),
            })
    };
    // A reload while connecting (a relay that does not answer, say) starts over at once;
    // a stop gives up (there is nothing to close yet).
    let connected = smol::future::or(async { Ok(connecting.await) }, async {
        smol::future::or(
            async {
                let _ = relink.recv().await;
                Err(Ended::Reconfigured)
            },
            async {
                stopping(stop).await;
                Err(Ended::Stopped)
            },
        )
        .await
    })
    .await;
    let client = match connected {
        Ok(client) => Arc::new(client?),
        Err(ended) => return Ok(ended),
    };
    let conn = client.conn.clone();
    let live = live(handle, client, addr, relink, media, first_use, backoff);
    let ended = smol::future::or(live, async {
        stopping(stop).await;
        Ok(Ended::Stopped)
    })
    .await?;
    match ended {
        Ended::Reconfigured => conn.close(close::NORMAL.into(), b"reconfigured"),
        Ended::Stopped => {
            // Said at once, the relay logs the session out and tells the others now.
            conn.close(close::NORMAL.into(), b"phoned stopping");
            smol::future::or(endpoint.wait_idle(), async {
                smol::Timer::after(CLOSE_GRACE).await;
            })
            .await;
        }
        Ended::Lost => {}
    }
    Ok(ended)
}

/// A connected session: logs in, reports it online, passes on events and media until the
/// connection is lost or the core asks for a reconnect.
async fn live(
    handle: &Handle,
    client: Arc<Client>,
    relay: SocketAddr,
    relink: &Receiver<()>,
    media: &MediaRoutes,
    first_use: bool,
    backoff: &mut Backoff,
) -> Result<Ended, LinkError> {
    let config = handle.config();
    let account = log_in(handle, &client).await?;
    if let (true, false, Some(fp)) = (first_use, client.public_cert, &client.fingerprint) {
        handle
            .store
            .set_setting(&pin_key(&config.relay), fp)
            .map_err(LinkError::Pin)?;
        tracing::info!(fingerprint = %fp, "pinned the relay's certificate on first use");
    }
    let online = client.online().await?;
    backoff.reset();
    tracing::info!(number = %account.number, relay = %config.relay, "online");
    let media_link = Arc::new(MediaLink::new(client.conn.clone()));
    handle.online(client.clone(), media_link.clone(), account, online);
    let datagrams = {
        let (conn, media) = (client.conn.clone(), media.clone());
        smol::spawn(async move {
            while let Ok(datagram) = conn.read_datagram().await {
                media.deliver(datagram);
            }
        })
    };
    let events = async {
        while let Some(event) = client.next_event().await {
            match event {
                phoned_proto::Event::MediaPlane { id, port } => match config.relay_media_port {
                    Some(0) => tracing::info!("relay_media_port = 0: media over QUIC datagrams"),
                    other => {
                        let port = other.unwrap_or(port);
                        media_link.start_udp(relay.ip(), id, port, media.clone());
                    }
                },
                event => handle.event(event),
            }
        }
        Ended::Lost
    };
    let silent = async {
        liveness::watch(&client, &media_link).await;
        tracing::warn!(
            "nothing from the relay for {} s: taking the link as lost",
            phoned_proto::liveness::SILENT_AFTER.as_secs()
        );
        client.conn.close(close::SILENT.into(), b"relay silent");
        Ended::Lost
    };
    // The core asks for a reconnect only once no call is in progress.
    let ended = smol::future::or(smol::future::or(events, silent), async {
        match relink.recv().await {
            Ok(()) => Ended::Reconfigured,
            Err(_) => std::future::pending().await,
        }
    })
    .await;
    drop(datagrams);
    media_link.close();
    Ok(ended)
}

/// Logs in with the configured or stored credentials, or provisions a new account.
async fn log_in(handle: &Handle, client: &Client) -> Result<AccountInfo, LinkError> {
    let config = handle.config();
    let state_dir = &handle.state_dir;
    let stored = credentials::load(state_dir)?;
    let creds = config
        .credentials
        .clone()
        .map(|(number, password)| Credentials { number, password })
        .or(stored);
    match creds {
        Some(c) => {
            let key = token_key(&config.relay, &c.number);
            let token = handle.store.setting(&key).ok().flatten();
            let (account, new_token) = client
                .login_device(&c.number, &c.password, token.as_deref())
                .await
                .map_err(|e| match e.code() {
                    Some(ErrorCode::InvalidCredentials) => LinkError::Refused {
                        number: c.number.clone(),
                        path: credentials::path(state_dir).display().to_string(),
                    },
                    _ => LinkError::Login {
                        number: c.number.clone(),
                        source: e,
                    },
                })?;
            if config.display_name_given && account.display_name != config.display_name {
                // One name per number, shared by its devices: this device's config does
                // not rename the account at login (which device would win?).
                tracing::warn!(
                    "display_name \"{}\" in the config is not used: number {} is named \"{}\" \
                     for all its devices; `phonectl name set` renames it everywhere",
                    config.display_name,
                    c.number,
                    account.display_name
                );
            }
            if let Some(t) = new_token.filter(|t| Some(t) != token.as_ref()) {
                // Without it the next login is a new device's: still possible, only not
                // past a back-off that others put on the number.
                if let Err(e) = handle.store.set_setting(&key, &t) {
                    tracing::warn!("saving the login token: {e}");
                }
            }
            Ok(account)
        }
        None => {
            let (account, secret) = client
                .provision(&config.display_name)
                .await
                .map_err(LinkError::Provision)?;
            credentials::save(
                state_dir,
                &Credentials {
                    number: account.number.clone(),
                    password: secret,
                },
            )?;
            tracing::info!(number = %account.number, "provisioned a new number");
            // A token now, so that even the first reconnect is a known device's.
            match client.device_token().await {
                Ok(Some(t)) => {
                    let key = token_key(&config.relay, &account.number);
                    if let Err(e) = handle.store.set_setting(&key, &t) {
                        tracing::warn!("saving the login token: {e}");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("asking for a login token: {e}"),
            }
            Ok(account)
        }
    }
}
