//! What every session of one relay shares, and who owns each part:
//! - the call router is owned by its task ([`crate::router`]): sessions send it commands;
//! - the live connections and their media routes by the [`Registry`];
//! - presence ([`Hub`]), the login and account-creation limits, the connection counts
//!   and the config each sit
//!   behind a private lock that only the methods here take, one at a time, for a single
//!   call into the sans-IO machine; the actions that come out are applied after it is
//!   released;
//! - the store, the group committer and the password hasher are shared handles with
//!   their own synchronisation;
//! - the space bookkeeping ([`crate::space`]: unfinished uploads, acknowledgements to
//!   retry, whether the relay is out of space) sits behind one private lock too; the
//!   upkeep task ([`crate::upkeep`]) acts on it, and a [`Shared::kick`] wakes it early.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use phoned_proto::{AccountInfo, OnlineUser};

use crate::admission::{self, Connections};
use crate::config::Config;
use crate::delivery::Delivery;
use crate::hub::{Action, Hub, Profile, SessionId};
use crate::metrics::{Live, Metrics};
use crate::password::Hasher;
use crate::plane::Plane;
use crate::registry::Registry;
use crate::router::{Clock, Mono, Router};
use crate::server::unix_ms;
use crate::space::acks::AckRetries;
use crate::space::partials::{Limits as PartialLimits, Partials, Refused};
use crate::space::{Health, Shortage};
use crate::store::Committer;
use crate::store::{Account, AccountId, Store};
use crate::throttle::{Buckets, Key, Login, Reservation, Throttle};
use crate::token::Tokens;

/// Locks a mutex, recovering from poisoning (no lock is held across a panic point that
/// would leave the data inconsistent: every critical section is a single map update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Back-off for failed logins and the budget for new accounts, per client.
struct Limits {
    logins: Throttle,
    creations: Buckets,
}

/// Unfinished uploads, acknowledgements waiting for room, and whether the relay is out
/// of space.
#[derive(Default)]
pub(crate) struct Space {
    pub partials: Partials,
    pub acks: AckRetries,
    pub health: Health,
    /// The committer's count of writes that failed for want of space, as last seen.
    pub full_seen: u64,
}

/// State shared by every session of one relay.
pub(crate) struct Shared {
    /// Swapped whole by a reload; read it through [`Shared::config`].
    config: Mutex<Arc<Config>>,
    pub store: Store,
    /// Message writes, group-committed (see [`crate::store::Committer`]).
    pub committer: Committer,
    pub hasher: Hasher,
    /// Device login tokens (see [`crate::token`]).
    pub tokens: Tokens,
    pub sessions: Arc<Registry>,
    pub calls: Router,
    /// Per-session delivery cursors and receipt acks (see [`crate::delivery`]).
    pub delivery: Delivery,
    /// What the metrics endpoint reports ([`crate::metrics`]).
    pub metrics: Arc<Metrics>,
    /// The UDP media plane, when it runs ([`crate::plane`]).
    pub media: Option<Arc<Plane>>,
    hub: Mutex<Hub>,
    limits: Mutex<Limits>,
    /// Connections held, in all and per address ([`crate::admission`]).
    connections: Mutex<Connections>,
    space: Mutex<Space>,
    /// Wakes the upkeep task (a full channel means it is already due to wake).
    kick: smol::channel::Sender<()>,
    /// Wakes the presence flusher ([`crate::flusher`]) when a change waits.
    flush: smol::channel::Sender<()>,
    next_sid: AtomicU64,
    clock: Mono,
    /// Wakes the cluster task ([`crate::cluster`]) when sessions log in or leave; unset
    /// on the embedded store (no cluster).
    cluster: OnceLock<smol::channel::Sender<()>>,
    /// Links to the other relays of the cluster, for calls between them
    /// ([`crate::cluster::link`]); unset on the embedded store.
    links: OnceLock<Arc<crate::cluster::link::Links>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        store: Store,
        committer: Committer,
        hasher: Hasher,
        tokens: Tokens,
        sessions: Arc<Registry>,
        calls: Router,
        clock: Mono,
        kick: smol::channel::Sender<()>,
        flush: smol::channel::Sender<()>,
        metrics: Arc<Metrics>,
        media: Option<Arc<Plane>>,
    ) -> Shared {
        let creations = Buckets::new(config.provision_burst, config.provision_per_hour);
        Shared {
            config: Mutex::new(Arc::new(config)),
            store,
            committer,
            hasher,
            tokens,
            sessions,
            calls,
            delivery: Delivery::default(),
            metrics,
            media,
            hub: Mutex::new(Hub::new()),
            limits: Mutex::new(Limits {
                logins: Throttle::new(),
                creations,
            }),
            connections: Mutex::new(Connections::default()),
            space: Mutex::default(),
            kick,
            flush,
            next_sid: AtomicU64::new(1),
            clock,
            cluster: OnceLock::new(),
            links: OnceLock::new(),
        }
    }

    /// The metrics exposition, with the gauges read now (the mailbox total from the
    /// store, on the blocking pool).
    pub async fn metrics_text(&self) -> String {
        let store = self.store.clone();
        let mailbox_bytes = blocking::unblock(move || store.mailbox_bytes_total())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("metrics: reading mailbox sizes: {e}");
                0
            });
        let (sessions, accounts_online) = {
            let hub = lock(&self.hub);
            (hub.session_count(), hub.account_count())
        };
        self.metrics.render(Live {
            connections: u64::from(self.connections()),
            sessions: sessions as u64,
            accounts_online: accounts_online as u64,
            mailbox_bytes,
        })
    }

    /// Runs `f` on the space bookkeeping (one short critical section).
    pub fn space<T>(&self, f: impl FnOnce(&mut Space) -> T) -> T {
        f(&mut lock(&self.space))
    }

    /// Wakes the upkeep task: something about space changed (a refusal, a failed ack).
    pub fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    /// Whether `want` more bytes fit on the state dir's disk above the reserve, counting
    /// what running uploads still have to write. A disk that cannot be measured does not
    /// block writes (the store's own errors still would).
    pub fn check_disk(&self, want: u64) -> Result<(), Shortage> {
        let config = self.config();
        let Ok(space) = crate::upkeep::fs_space(&config.state_dir) else {
            return Ok(());
        };
        let promised = self.space(|s| s.partials.promised());
        let checked = crate::space::check_disk(space, config.min_free_space, promised, want);
        if checked.is_err() {
            self.kick();
        }
        checked
    }

    /// Upload `name` of `sender` starts, announced at `size` bytes with `have` already in
    /// its file: counted against the sender's quota and the relay-wide cap.
    pub fn partial_begin(
        &self,
        name: &str,
        sender: AccountId,
        size: u64,
        have: u64,
    ) -> Result<crate::space::partials::Owner, Refused> {
        let config = self.config();
        let limits = PartialLimits {
            per_sender: config.mailbox_quota_bytes,
            total: config.max_partial_bytes,
        };
        self.space(|s| {
            s.partials
                .begin(name, sender, size, have, unix_ms(), limits)
        })
    }

    /// The delete for `account`'s acknowledgement of message `id` failed: the upkeep task
    /// tries it again.
    pub fn ack_failed(&self, account: AccountId, id: u64) {
        let now = self.mono_ms();
        if !self.space(|s| s.acks.failed(account, id, now)) {
            tracing::debug!(
                account,
                id,
                "too many acknowledgements waiting; one dropped"
            );
        }
        self.kick();
    }

    /// The config in effect now (a reload may replace it at any time).
    pub fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    /// Puts a reloaded config in effect: its account-creation rates at once.
    pub fn set_config(&self, config: Config) {
        let now = self.mono_ms();
        lock(&self.limits).creations.set_rates(
            config.provision_burst,
            config.provision_per_hour,
            now,
        );
        *lock(&self.config) = Arc::new(config);
    }

    pub fn next_sid(&self) -> SessionId {
        self.next_sid.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds since the relay started (monotonic), for back-off decisions.
    pub fn mono_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Pushes events and closes revoked sessions, as the hub asked.
    pub fn dispatch(&self, actions: Vec<Action>) {
        for a in &actions {
            if let Action::Presence(batch) = a {
                self.metrics.presence_writes.inc_by(batch.writes() as u64);
                self.metrics
                    .presence_events
                    .inc_by(batch.deliveries() as u64);
            }
        }
        self.sessions.dispatch(actions);
    }

    /// Runs `f` on the hub at the current time, then pushes what it asked for and, if
    /// presence changes wait for a later flush, wakes the flusher.
    fn with_hub(&self, f: impl FnOnce(&mut Hub, u64) -> Vec<Action>) {
        let now = self.mono_ms();
        let (actions, waiting) = {
            let mut hub = lock(&self.hub);
            let actions = f(&mut hub, now);
            (actions, hub.next_deadline().is_some())
        };
        self.dispatch(actions);
        if waiting {
            let _ = self.flush.try_send(());
        }
        if let Some(cluster) = self.cluster.get() {
            let _ = cluster.try_send(());
        }
    }

    /// Makes the cluster task hear of session changes through `wake`.
    pub fn set_cluster(&self, wake: smol::channel::Sender<()>) {
        let _ = self.cluster.set(wake);
    }

    /// Gives the relay its links to the other relays of its cluster.
    pub fn set_links(&self, links: Arc<crate::cluster::link::Links>) {
        let _ = self.links.set(links);
    }

    /// The links to the other relays of the cluster, if the relay is in one.
    pub fn links(&self) -> Option<&Arc<crate::cluster::link::Links>> {
        self.links.get()
    }

    /// The logged-in sessions and their accounts, sorted (this relay's leases).
    pub fn leases(&self) -> Vec<(SessionId, AccountId)> {
        lock(&self.hub).leases()
    }

    /// The accounts online on other relays are now `remote`: tells the sessions here.
    pub fn set_remote(&self, remote: HashMap<AccountId, Profile>) {
        let now = self.mono_ms();
        let (actions, waiting) = {
            let mut hub = lock(&self.hub);
            let actions = hub.set_remote(now, remote);
            (actions, hub.next_deadline().is_some())
        };
        self.dispatch(actions);
        if waiting {
            let _ = self.flush.try_send(());
        }
    }

    /// Flushes the presence changes that are due; returns when the next ones are.
    pub fn flush_presence(&self) -> Option<u64> {
        let now = self.mono_ms();
        let (action, next) = {
            let mut hub = lock(&self.hub);
            (hub.tick(now), hub.next_deadline())
        };
        self.dispatch(action.into_iter().collect());
        next
    }

    /// Logs session `sid` in as `account` and tells the others.
    pub fn login(&self, sid: SessionId, account: &Account) {
        self.with_hub(|hub, now| hub.login(now, sid, account.id, profile(account)));
    }

    /// Session `sid` is gone; tells the others if its account went offline.
    pub fn leave(&self, sid: SessionId) {
        self.with_hub(|hub, now| hub.leave(now, sid));
    }

    /// Re-reads an online account from the store and applies any change.
    pub async fn sync_account(&self, id: AccountId) {
        let store = self.store.clone();
        let stored = blocking::unblock(move || store.account(id)).await;
        let profile = match stored {
            Ok(a) => a.filter(|a| !a.disabled).map(|a| profile(&a)),
            Err(e) => {
                tracing::error!(account = id, "reading account: {e}");
                return;
            }
        };
        self.with_hub(|hub, now| hub.sync(now, id, profile));
    }

    /// The logged-in sessions of `account` (its online devices).
    pub fn sessions_of(&self, account: AccountId) -> Vec<SessionId> {
        lock(&self.hub).sessions_of(account)
    }

    pub fn account_of(&self, sid: SessionId) -> Option<AccountId> {
        lock(&self.hub).account_of(sid)
    }

    /// The number and display name of an online account, as others see them.
    pub fn identity(&self, account: AccountId) -> (String, String) {
        lock(&self.hub)
            .info(account)
            .map(|i| (i.number, i.display_name))
            .unwrap_or_default()
    }

    /// The account's info with its current number of online devices.
    pub fn info(&self, account: &Account) -> AccountInfo {
        let devices = lock(&self.hub).devices(account.id);
        crate::hub::info(&profile(account), devices)
    }

    pub fn online(&self) -> Vec<OnlineUser> {
        lock(&self.hub).online()
    }

    pub fn online_accounts(&self) -> Vec<AccountId> {
        lock(&self.hub).online_accounts()
    }

    pub fn logged_in(&self) -> usize {
        lock(&self.hub).session_count()
    }

    /// Reserves a login attempt before its password is checked, or says how many ms it
    /// must wait. Settle it with [`Shared::login_finished`].
    pub fn login_begin(&self, login: Login) -> Result<Reservation, u64> {
        let now = self.mono_ms();
        lock(&self.limits).logins.begin(login, now)
    }

    /// Gives back a reserved attempt whose password was never checked.
    pub fn login_released(&self, reservation: Reservation) {
        lock(&self.limits).logins.release(reservation);
    }

    pub fn login_finished(&self, reservation: Reservation, success: bool) {
        let now = self.mono_ms();
        lock(&self.limits).logins.finish(reservation, success, now);
    }

    /// Takes a connection slot for a client at `addr` within the configured limits; the
    /// slot is given back when the returned guard is dropped.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Slot, admission::Refused> {
        let config = self.config();
        lock(&self.connections).admit(
            addr,
            config.max_connections,
            config.max_connections_per_address,
        )?;
        Ok(Slot {
            shared: self.clone(),
            addr,
        })
    }

    /// Connections held now (logged in or not).
    pub fn connections(&self) -> u32 {
        lock(&self.connections).total()
    }

    /// Charges `ip` for creating an account, or says how many ms until it may.
    pub fn charge_creation(&self, ip: IpAddr) -> Result<(), u64> {
        let now = self.mono_ms();
        lock(&self.limits).creations.take(Key::ip(ip), now)
    }
}

/// A connection's place within the connection limits, held for the connection's life.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    addr: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shared.connections).release(self.addr);
    }
}

pub(crate) fn profile(a: &Account) -> Profile {
    Profile {
        number: a.number.clone(),
        name: a.display_name.clone(),
        created_ms: a.created_ms,
        epoch: a.epoch,
    }
}
