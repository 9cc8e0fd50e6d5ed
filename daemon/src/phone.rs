//! What the daemon knows right now, shared by the relay link and the D-Bus service:
//! connection state, the account, who is online, and the live relay connection.
//! Every change is announced on a channel that the D-Bus side turns into signals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use phoned_proto::dbus::PhoneError;
use phoned_proto::state::ConnectionState;
use phoned_proto::{AccountInfo, ErrorCode, Event, Request, Response};
use smol::channel::{Receiver, Sender};

use crate::config::Config;
use crate::credentials;
use crate::link::client::{Client, ClientError};
use crate::store::Store;

/// How long a D-Bus caller waits for the relay before getting `Timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A change the D-Bus side should announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ConnectionState` / `LastError`.
    Connection,
    /// Account properties.
    Account,
    Presence {
        number: String,
        name: String,
        online: bool,
    },
    Contacts,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub connection: ConnectionState,
    /// Why the last connection attempt failed or the link dropped ("" if none).
    pub last_error: String,
    pub account: Option<AccountInfo>,
    /// number → name, this account excluded.
    pub online: BTreeMap<String, String>,
}

pub struct Phone {
    pub config: Config,
    pub state_dir: PathBuf,
    pub store: Store,
    status: Mutex<Status>,
    client: Mutex<Option<Arc<Client>>>,
    changes: Sender<Change>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Phone {
    pub fn new(config: Config, state_dir: PathBuf, store: Store) -> (Arc<Phone>, Receiver<Change>) {
        let (changes, rx) = smol::channel::unbounded();
        let phone = Phone {
            config,
            state_dir,
            store,
            status: Mutex::new(Status {
                connection: ConnectionState::Offline,
                last_error: String::new(),
                account: None,
                online: BTreeMap::new(),
            }),
            client: Mutex::new(None),
            changes,
        };
        (Arc::new(phone), rx)
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    pub fn notify(&self, change: Change) {
        let _ = self.changes.try_send(change);
    }

    pub fn set_connecting(&self) {
        lock(&self.status).connection = ConnectionState::Connecting;
        self.notify(Change::Connection);
    }

    /// The link is down; `why` says why (kept for `LastError`).
    pub fn set_offline(&self, why: Option<String>) {
        *lock(&self.client) = None;
        let gone: Vec<(String, String)> = {
            let mut s = lock(&self.status);
            s.connection = ConnectionState::Offline;
            if let Some(w) = why {
                s.last_error = w;
            }
            std::mem::take(&mut s.online).into_iter().collect()
        };
        // Nobody is known to be online while we cannot see the relay.
        for (number, name) in gone {
            self.notify(Change::Presence {
                number,
                name,
                online: false,
            });
        }
        self.notify(Change::Connection);
    }

    pub fn set_online(
        &self,
        client: Arc<Client>,
        account: AccountInfo,
        online: Vec<(String, String)>,
    ) {
        *lock(&self.client) = Some(client);
        let own = account.number.clone();
        let fresh: BTreeMap<String, String> =
            online.into_iter().filter(|(n, _)| *n != own).collect();
        {
            let mut s = lock(&self.status);
            s.connection = ConnectionState::Online;
            s.last_error.clear();
            s.account = Some(account);
            s.online = fresh.clone();
        }
        for (number, name) in fresh {
            self.notify(Change::Presence {
                number,
                name,
                online: true,
            });
        }
        self.notify(Change::Connection);
        self.notify(Change::Account);
    }

    /// Applies an event pushed by the relay.
    pub fn apply(&self, event: Event) {
        match event {
            Event::Presence {
                number,
                name,
                online,
            } => {
                {
                    let mut s = lock(&self.status);
                    if s.account.as_ref().is_some_and(|a| a.number == number) {
                        return;
                    }
                    if online {
                        s.online.insert(number.clone(), name.clone());
                    } else {
                        s.online.remove(&number);
                    }
                }
                self.notify(Change::Presence {
                    number,
                    name,
                    online,
                });
            }
            Event::AccountChanged(info) => self.set_account(info),
            // The daemon's call engine is not wired yet: calls to this device are not
            // answered, and the relay ends them with `no-answer` after its ring timeout.
            event @ (Event::CallIncoming { .. }
            | Event::CallState { .. }
            | Event::CallDtmf { .. }) => {
                tracing::debug!(
                    ?event,
                    "call event ignored: calls are not implemented in phoned yet"
                );
            }
        }
    }

    /// Records new account information (from the relay), keeping stored credentials in step.
    pub fn set_account(&self, info: AccountInfo) {
        let number = info.number.clone();
        lock(&self.status).account = Some(info);
        self.remember(|c| c.number = number);
        self.notify(Change::Account);
    }

    /// Updates the stored credentials, when the daemon uses stored ones (not the config's).
    pub fn remember(&self, change: impl FnOnce(&mut credentials::Credentials)) {
        if self.config.credentials.is_some() {
            return;
        }
        match credentials::load(&self.state_dir) {
            Ok(Some(mut c)) => {
                let before = c.clone();
                change(&mut c);
                if c != before
                    && let Err(e) = credentials::save(&self.state_dir, &c)
                {
                    tracing::error!("saving credentials: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("reading credentials: {e}"),
        }
    }

    /// Sends a request over the live link.
    pub async fn request(&self, req: Request) -> Result<Response, PhoneError> {
        let client = lock(&self.client)
            .clone()
            .ok_or_else(|| PhoneError::Offline("not connected to the relay".into()))?;
        let answer = smol::future::or(async { Some(client.request(req).await) }, async {
            smol::Timer::after(REQUEST_TIMEOUT).await;
            None
        })
        .await;
        match answer {
            Some(r) => r.map_err(to_dbus),
            None => Err(PhoneError::Timeout(
                "the relay did not answer in 10 s".into(),
            )),
        }
    }
}

/// Maps a relay or link error to the D-Bus error a caller can act on.
pub fn to_dbus(e: ClientError) -> PhoneError {
    match e {
        ClientError::Relay(w) => {
            let m = w.message;
            match w.code {
                ErrorCode::NumberTaken => PhoneError::NumberTaken(m),
                ErrorCode::InvalidNumber => PhoneError::InvalidNumber(m),
                ErrorCode::InvalidName | ErrorCode::InvalidPassword => {
                    PhoneError::InvalidArgument(m)
                }
                ErrorCode::NotLoggedIn | ErrorCode::SessionRevoked => PhoneError::Offline(m),
                ErrorCode::RateLimited | ErrorCode::Unavailable => PhoneError::Busy(m),
                ErrorCode::AccountDisabled => PhoneError::PermissionDenied(m),
                _ => PhoneError::Failed(m),
            }
        }
        ClientError::Timeout => PhoneError::Timeout("the relay did not answer".into()),
        ClientError::Lost(m) | ClientError::Connect(m) => PhoneError::Offline(m),
        ClientError::Unexpected(r) => {
            PhoneError::Failed(format!("unexpected answer from the relay: {r:?}"))
        }
    }
}
