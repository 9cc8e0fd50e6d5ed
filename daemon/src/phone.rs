//! What the daemon knows right now, shared by the relay link and the D-Bus service:
//! connection state, the account, who is online, and the live relay connection.
//! Every change is announced on a channel that the D-Bus side turns into signals.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use phoned_proto::call::CallId;
use phoned_proto::dbus::PhoneError;
use phoned_proto::state::ConnectionState;
use phoned_proto::{AccountInfo, ErrorCode, Event, Request, Response};
use smol::channel::{Receiver, Sender};

use crate::call::engine::{Engine, Local, Output, Policy};
use crate::call::media::MediaSession;
use crate::config::{Config, ConfigError};
use crate::credentials;
use crate::reload;
use crate::store::Store;
use phoned_client::{Client, ClientError};

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
    /// A call object appeared.
    CallAdded(Local),
    /// A call's properties changed.
    CallChanged(Local),
    /// A call ended and its object goes away.
    CallRemoved(Local, String),
    /// An incoming call rings (local, number, name): signal and notify.
    Ring(Local, String, String),
    StopRinging(Local),
    /// A missed call (number, name).
    Missed(String, String),
    /// DTMF from the far side.
    Dtmf(Local, String),
    /// History and `MissedCount` changed.
    History,
    /// A text message arrived (and is stored).
    MessageReceived(crate::store::messages::LocalMessage),
    /// A sent message's status changed: (id, status).
    MessageStatus(String, String),
    /// A file transfer's status changed: (id, status).
    FileStatus(String, String),
    /// Transfer progress: (id, bytes done, size).
    FileProgress(String, u64, u64),
    /// A file arrived and is saved.
    FileReceived(crate::store::files::LocalFile),
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
    /// The config in effect; replaced whole by [`Phone::reload`].
    config: Mutex<Arc<Config>>,
    /// Where the config was read from, to read it again.
    config_path: PathBuf,
    pub state_dir: PathBuf,
    pub store: Store,
    pub engine: Mutex<Engine>,
    /// Media of the calls that are active now.
    media: Mutex<HashMap<Local, (CallId, MediaSession)>>,
    status: Mutex<Status>,
    client: Mutex<Option<Arc<Client>>>,
    changes: Sender<Change>,
    /// A reload changed what the link uses: it reconnects once no call is in progress.
    relink: (Sender<()>, Receiver<()>),
    /// A display name from a reload not yet told to the relay (we were offline).
    name_pending: Mutex<Option<String>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Phone {
    pub fn new(
        config: Config,
        config_path: PathBuf,
        state_dir: PathBuf,
        store: Store,
    ) -> (Arc<Phone>, Receiver<Change>) {
        let (changes, rx) = smol::channel::unbounded();
        let phone = Phone {
            config: Mutex::new(Arc::new(config)),
            config_path,
            state_dir,
            store,
            engine: Mutex::new(Engine::new()),
            media: Mutex::new(HashMap::new()),
            status: Mutex::new(Status {
                connection: ConnectionState::Offline,
                last_error: String::new(),
                account: None,
                online: BTreeMap::new(),
            }),
            client: Mutex::new(None),
            changes,
            relink: smol::channel::bounded(1),
            name_pending: Mutex::new(None),
        };
        (Arc::new(phone), rx)
    }

    /// The config in effect now.
    pub fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Re-reads the config file and applies what changed (see [`crate::reload`]). A config
    /// that does not load changes nothing.
    pub fn reload(self: &Arc<Self>) -> Result<Vec<reload::Change>, ConfigError> {
        let new = Config::load(&self.config_path)?;
        let name = new.display_name.clone();
        let changes = {
            let mut current = lock(&self.config);
            let changes = reload::diff(&current, &new);
            *current = Arc::new(new);
            changes
        };
        if changes.iter().any(|(k, _)| *k == "display_name") {
            *lock(&self.name_pending) = Some(name);
            self.push_pending_name();
        }
        if reload::needs_reconnect(&changes) {
            let _ = self.relink.0.try_send(());
        }
        Ok(changes)
    }

    /// [`Phone::reload`], logging what changed or why nothing did (SIGHUP and D-Bus).
    pub fn reload_logged(self: &Arc<Self>) -> Result<Vec<reload::Change>, ConfigError> {
        let result = self.reload();
        match &result {
            Ok(changes) => tracing::info!(
                config = %self.config_path.display(),
                "config reloaded: {}",
                reload::describe(changes)
            ),
            Err(e) => tracing::error!("config not reloaded, keeping the old one: {e}"),
        }
        result
    }

    /// Fires when a reload asked the link to reconnect.
    pub fn relink_requested(&self) -> Receiver<()> {
        self.relink.1.clone()
    }

    /// Whether any call is in progress (ringing, active or held).
    pub fn in_call(&self) -> bool {
        lock(&self.engine).calls().next().is_some()
    }

    /// Tells the relay the display name a reload set, if online; else it waits for the
    /// next login.
    pub fn push_pending_name(self: &Arc<Self>) {
        if lock(&self.client).is_none() {
            return;
        }
        let Some(name) = lock(&self.name_pending).clone() else {
            return;
        };
        let phone = self.clone();
        smol::spawn(async move {
            match phone
                .request(Request::SetDisplayName { name: name.clone() })
                .await
            {
                Ok(Response::Account(info)) => {
                    let mut pending = lock(&phone.name_pending);
                    if pending.as_deref() == Some(name.as_str()) {
                        *pending = None;
                    }
                    drop(pending);
                    phone.set_account(info);
                }
                Ok(other) => tracing::warn!("setting the display name: unexpected {other:?}"),
                Err(e) => tracing::warn!("setting the display name: {}", e.message()),
            }
        })
        .detach();
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

    /// The link is down; `why` says why (kept for `LastError`). Calls end.
    pub fn set_offline(self: &Arc<Self>, why: Option<String>) {
        let outputs = lock(&self.engine).link_lost(unix_ms());
        self.run_calls(outputs);
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

    /// Sends what waited in the outbox while the link was down.
    pub fn flush_outbox(self: &Arc<Self>) {
        smol::spawn(crate::messages::flush(self.clone())).detach();
        smol::spawn(crate::files::flush(self.clone())).detach();
    }

    /// Applies an event pushed by the relay.
    pub fn apply(self: &Arc<Self>, event: Event) {
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
            Event::CallIncoming {
                call,
                from_number,
                from_name,
            } => {
                let policy = self.policy(&from_number);
                let out =
                    lock(&self.engine).incoming(call, from_number, from_name, policy, unix_ms());
                self.run_calls(out);
            }
            Event::CallState { call, phase } => {
                let out = lock(&self.engine).phase(call, phase, unix_ms());
                self.run_calls(out);
            }
            Event::Message(m) => crate::messages::received(self, m),
            Event::MessageDelivered { client_id, id } => {
                // A receipt for a text or a file: whichever has that id.
                crate::messages::delivered(self, &client_id, id);
                crate::files::delivered(self, &client_id, id);
            }
            Event::File(f) => crate::files::offered(self, f),
            Event::CallDtmf { call, digits } => {
                let out = lock(&self.engine).dtmf_received(call, digits);
                self.run_calls(out);
            }
        }
    }

    /// Do-not-disturb, auto-answer, and whether `number` is a contact.
    fn policy(&self, number: &str) -> Policy {
        let setting = |k: &str| self.store.setting(k).ok().flatten();
        Policy {
            do_not_disturb: setting(crate::dbus::DND).as_deref() == Some("true"),
            auto_answer: setting(crate::dbus::AUTO_ANSWER)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            known_caller: self
                .store
                .lookup_contact(number)
                .is_ok_and(|c| c.number == number),
        }
    }

    /// Carries out what the call engine decided.
    pub fn run_calls(self: &Arc<Self>, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(local, req) => {
                    let phone = self.clone();
                    smol::spawn(async move { phone.send_call_request(local, req).await }).detach();
                }
                Output::Added(l) => self.notify(Change::CallAdded(l)),
                Output::Changed(l) => self.notify(Change::CallChanged(l)),
                Output::Removed(l, reason) => self.notify(Change::CallRemoved(l, reason)),
                Output::Ring(l) => {
                    if let Some(c) = lock(&self.engine).get(l) {
                        self.notify(Change::Ring(
                            l,
                            c.remote_number.clone(),
                            c.remote_name.clone(),
                        ));
                    }
                }
                Output::StopRinging(l) => self.notify(Change::StopRinging(l)),
                Output::Missed(_) => {}
                Output::DtmfReceived(l, digits) => self.notify(Change::Dtmf(l, digits)),
                Output::StartMedia {
                    local,
                    call,
                    source,
                } => self.start_media(local, call, source),
                Output::PauseMedia(local) => {
                    if let Some((_, session)) = lock(&self.media).get(&local) {
                        session.set_paused(true);
                    }
                }
                Output::StopMedia(local) => {
                    let session = lock(&self.media).remove(&local);
                    // Joining the media thread takes at most one of its 5 ms ticks.
                    drop(session);
                }
                Output::Record(r) => {
                    let entry = crate::store::history::HistoryEntry {
                        number: r.number.clone(),
                        name: r.name.clone(),
                        direction: r.direction.as_str().to_owned(),
                        result: r.result,
                        start_ms: r.start_ms,
                        duration_ms: r.duration_ms,
                        missed: r.missed,
                    };
                    if let Err(e) = self.store.add_history(&entry) {
                        tracing::error!("recording call history: {e}");
                    }
                    if r.missed {
                        self.notify(Change::Missed(r.number, r.name));
                    }
                    self.notify(Change::History);
                }
            }
        }
    }

    fn start_media(&self, local: Local, call: CallId, source: u32) {
        // Resuming from hold: the session is there, paused.
        if let Some((_, session)) = lock(&self.media).get(&local) {
            session.set_paused(false);
            return;
        }
        let Some(client) = lock(&self.client).clone() else {
            return;
        };
        let muted = lock(&self.engine).get(local).is_some_and(|c| c.muted);
        match MediaSession::start(
            &self.config().audio,
            client.conn.clone(),
            call,
            source,
            muted,
        ) {
            Ok(session) => {
                tracing::info!(local, call, source, "call media started");
                lock(&self.media).insert(local, (call, session));
            }
            Err(e) => tracing::error!(local, call, "no audio for the call: {e}"),
        }
    }

    /// Mutes or unmutes the microphone of a call's media.
    pub fn set_media_muted(&self, local: Local, muted: bool) {
        if let Some((_, session)) = lock(&self.media).get(&local) {
            session.set_muted(muted);
        }
    }

    /// A media datagram from the relay: to the session of its call.
    pub fn deliver_media(&self, datagram: bytes::Bytes) {
        let Some(call) = phoned_proto::media::peek_call(&datagram) else {
            return;
        };
        if let Some((_, session)) = lock(&self.media).values().find(|(c, _)| *c == call) {
            session.deliver(datagram);
        }
    }

    async fn send_call_request(self: Arc<Self>, local: Local, req: Request) {
        let dial = matches!(req, Request::Dial { .. });
        match self.request(req).await {
            Ok(Response::CallPlaced { call }) if dial => {
                let out = lock(&self.engine).placed(local, call);
                self.run_calls(out);
            }
            Ok(_) => {}
            Err(e @ (PhoneError::Offline(_) | PhoneError::Timeout(_))) => {
                tracing::warn!(local, "call request failed: {}", e.message());
                let out = lock(&self.engine).request_failed(local, unix_ms());
                self.run_calls(out);
            }
            // The relay ends the call itself if it must; a refused request changes nothing.
            Err(e) => tracing::info!(local, "call request refused: {}", e.message()),
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
        if self.config().credentials.is_some() {
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
                ErrorCode::UnknownNumber => PhoneError::NotFound(m),
                ErrorCode::QuotaExceeded => PhoneError::QuotaExceeded(m),
                ErrorCode::TooLarge => PhoneError::InvalidArgument(m),
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

/// The live relay connection, if any.
pub fn lock_client(phone: &Phone) -> Option<Arc<Client>> {
    lock(&phone.client).clone()
}

/// Wall-clock Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
