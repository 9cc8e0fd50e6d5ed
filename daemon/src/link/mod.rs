//! The link to the relay: connect, verify, log in (or provision on first start), follow
//! events, and reconnect with back-off when the network or the relay goes away.

pub mod backoff;
pub mod client;
pub mod verify;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::AccountInfo;

use crate::credentials::{self, Credentials};
use crate::phone::Phone;
use backoff::Backoff;
use client::{Client, ClientError};
use verify::Trust;

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The settings key of the fingerprint learnt on first use for a relay address.
fn pin_key(relay: &str) -> String {
    format!("relay_pin/{relay}")
}

/// Runs forever: keeps the phone connected.
pub async fn run(phone: Arc<Phone>) {
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut last_logged = String::new();
    loop {
        phone.set_connecting();
        let why = match session(&phone, &mut backoff).await {
            Ok(()) => "connection to the relay lost".to_owned(),
            Err(e) => e,
        };
        if why != last_logged {
            tracing::warn!("offline: {why}");
            last_logged = why.clone();
        }
        phone.set_offline(Some(why));
        let delay = backoff.next(random_unit());
        tracing::debug!(?delay, "reconnecting after");
        smol::Timer::after(delay).await;
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
    if let Some(fp) = &phone.config.relay_fingerprint {
        return Trust::Pinned {
            fingerprint: fp.clone(),
            learnt: false,
        };
    }
    match phone.store.setting(&pin_key(&phone.config.relay)) {
        Ok(Some(fp)) => Trust::Pinned {
            fingerprint: fp,
            learnt: true,
        },
        _ => Trust::FirstUse,
    }
}

/// One connection: returns `Ok` when an established link ends, `Err` with a message if
/// it could not be established.
async fn session(phone: &Arc<Phone>, backoff: &mut Backoff) -> Result<(), String> {
    let config = &phone.config;
    let addr = resolve(&config.relay_host, config.relay_port).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().unwrap_or(addr)
    } else {
        "0.0.0.0:0".parse().unwrap_or(addr)
    };
    let endpoint =
        client::endpoint_on(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let trust = trust(phone);
    let first_use = trust == Trust::FirstUse;
    let server_name = if config.relay_host.parse::<std::net::IpAddr>().is_ok() {
        "phone-relay"
    } else {
        config.relay_host.as_str()
    };
    let client = Client::connect_trusting(&endpoint, addr, server_name, trust)
        .await
        .map_err(|e| match e {
            ClientError::Connect(m) => format!("cannot connect to relay {}: {m}", config.relay),
            other => other.to_string(),
        })?;
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
    while let Some(event) = client.next_event().await {
        phone.apply(event);
    }
    drop(media);
    Ok(())
}

/// Logs in with the configured or stored credentials, or provisions a new account.
async fn log_in(phone: &Phone, client: &Client) -> Result<AccountInfo, String> {
    let config = &phone.config;
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
