//! The link to the relay: connect, verify, log in (or provision on first start), follow
//! events, and reconnect with back-off when the network or the relay goes away.

pub mod backoff;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::AccountInfo;

use crate::credentials::{self, Credentials};
use crate::phone::Phone;
use backoff::Backoff;
use phoned_client::{Client, ClientError, Trust};

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a QUIC handshake with the relay may take before the attempt counts as failed
/// (quinn's own limit is its 30 s idle timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings key of the fingerprint learnt on first use for a relay address.
fn pin_key(relay: &str) -> String {
    format!("relay_pin/{relay}")
}

/// How an established link ended.
enum Ended {
    /// The connection was lost.
    Lost,
    /// A reload changed the relay, its pin or the credentials: connect again at once.
    Reconfigured,
}

/// Runs forever: keeps the phone connected.
pub async fn run(phone: Arc<Phone>) {
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut last_logged = String::new();
    let relink = phone.relink_requested();
    loop {
        phone.set_connecting();
        let why = match session(&phone, &mut backoff).await {
            Ok(Ended::Reconfigured) => {
                tracing::info!("reconnecting with the new config");
                phone.set_offline(Some("reconnecting with the new config".into()));
                backoff.reset();
                continue;
            }
            Ok(Ended::Lost) => "connection to the relay lost".to_owned(),
            Err(e) => e,
        };
        if why != last_logged {
            tracing::warn!("offline: {why}");
            last_logged = why.clone();
        }
        phone.set_offline(Some(why));
        let delay = backoff.next(random_unit());
        tracing::debug!(?delay, "reconnecting after");
        // A reload (say, of a mistyped relay address) cuts the wait short.
        let reloaded = smol::future::or(async { relink.recv().await.is_ok() }, async {
            smol::Timer::after(delay).await;
            false
        })
        .await;
        if reloaded {
            backoff.reset();
        }
    }
}

/// How often a link waiting to reconnect for a reload checks whether calls have ended.
const RELINK_POLL: Duration = Duration::from_millis(250);

/// Waits until a reload asks to reconnect and no call is in progress.
async fn reconfigured(phone: &Phone) {
    let relink = phone.relink_requested();
    if relink.recv().await.is_err() {
        return std::future::pending().await;
    }
    if phone.in_call() {
        tracing::info!("the new config applies to the link once the calls in progress end");
        while phone.in_call() {
            smol::Timer::after(RELINK_POLL).await;
        }
    }
}

fn random_unit() -> f64 {
    getrandom::u64().map_or(0.5, |r| (r >> 11) as f64 / (1u64 << 53) as f64)
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let target = (host.to_owned(), port);
    let addrs =
        blocking::unblock(move || target.to_socket_addrs().map(|a| a.collect::<Vec<_>>())).await;
    addrs
        .map_err(|e| format!("cannot resolve relay {host}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("relay {host} has no address"))
}

fn trust(phone: &Phone) -> Trust {
    let config = phone.config();
    if let Some(fp) = &config.relay_fingerprint {
        return Trust::Pinned {
            fingerprint: fp.clone(),
            learnt: false,
        };
    }
    match phone.store.setting(&pin_key(&config.relay)) {
        Ok(Some(fp)) => Trust::Pinned {
            fingerprint: fp,
            learnt: true,
        },
        _ => Trust::FirstUse,
    }
}

/// One connection: returns how an established link ended, or `Err` with a message if it
/// could not be established.
async fn session(phone: &Arc<Phone>, backoff: &mut Backoff) -> Result<Ended, String> {
    let config = phone.config();
    let addr = resolve(&config.relay_host, config.relay_port).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().unwrap_or(addr)
    } else {
        "0.0.0.0:0".parse().unwrap_or(addr)
    };
    let endpoint =
        phoned_client::endpoint_on(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let trust = trust(phone);
    let first_use = trust == Trust::FirstUse;
    let server_name = if config.relay_host.parse::<std::net::IpAddr>().is_ok() {
        "phone-relay"
    } else {
        config.relay_host.as_str()
    };
    let connecting = async {
        let connect = Client::connect_trusting(&endpoint, addr, server_name, trust);
        let timeout = async {
            smol::Timer::after(CONNECT_TIMEOUT).await;
            Err(ClientError::Connect(format!(
                "no answer in {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        };
        smol::future::or(connect, timeout)
            .await
            .map_err(|e| match e {
                ClientError::Connect(m) => format!("cannot connect to relay {}: {m}", config.relay),
                other => other.to_string(),
            })
    };
    // A reload while connecting (a relay that does not answer, say) starts over at once.
    let relink = phone.relink_requested();
    let connected = smol::future::or(async { Some(connecting.await) }, async {
        let _ = relink.recv().await;
        None
    })
    .await;
    let Some(client) = connected else {
        return Ok(Ended::Reconfigured);
    };
    let client = client?;
    let account = log_in(phone, &client).await?;
    if let (true, false, Some(fp)) = (first_use, client.public_cert, &client.fingerprint) {
        phone
            .store
            .set_setting(&pin_key(&config.relay), fp)
            .map_err(|e| format!("saving the relay pin: {e}"))?;
        tracing::info!(fingerprint = %fp, "pinned the relay's certificate on first use");
    }
    let online = client.online().await.map_err(|e| e.to_string())?;
    backoff.reset();
    tracing::info!(number = %account.number, relay = %config.relay, "online");
    let client = Arc::new(client);
    phone.set_online(client.clone(), account, online);
    phone.flush_outbox();
    let media = {
        let (conn, phone) = (client.conn.clone(), phone.clone());
        smol::spawn(async move {
            while let Ok(datagram) = conn.read_datagram().await {
                phone.deliver_media(datagram);
            }
        })
    };
    phone.push_pending_name();
    let events = async {
        while let Some(event) = client.next_event().await {
            phone.apply(event);
        }
        Ended::Lost
    };
    let ended = smol::future::or(events, async {
        reconfigured(phone).await;
        Ended::Reconfigured
    })
    .await;
    if matches!(ended, Ended::Reconfigured) {
        client.conn.close(0u32.into(), b"reconfigured");
    }
    drop(media);
    Ok(ended)
}

/// Logs in with the configured or stored credentials, or provisions a new account.
async fn log_in(phone: &Phone, client: &Client) -> Result<AccountInfo, String> {
    let config = phone.config();
    let stored = credentials::load(&phone.state_dir)?;
    let creds = config
        .credentials
        .clone()
        .map(|(number, password)| Credentials { number, password })
        .or(stored);
    match creds {
        Some(c) => client.login(&c.number, &c.password).await.map_err(|e| match e.code() {
            Some(phoned_proto::ErrorCode::InvalidCredentials) => format!(
                "the relay refused number {} and its password (reset it with phone-relay admin, or fix {})",
                c.number,
                credentials::path(&phone.state_dir).display()
            ),
            _ => format!("login as {}: {e}", c.number),
        }),
        None => {
            let (account, secret) = client
                .provision(&config.display_name)
                .await
                .map_err(|e| format!("provisioning a number: {e}"))?;
            credentials::save(
                &phone.state_dir,
                &Credentials {
                    number: account.number.clone(),
                    password: secret,
                },
            )?;
            tracing::info!(number = %account.number, "provisioned a new number");
            Ok(account)
        }
    }
}
