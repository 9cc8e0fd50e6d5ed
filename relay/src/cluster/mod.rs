//! Several relays on one PostgreSQL database: presence across relays, and pushes of what
//! another relay stored. Only with the PostgreSQL store; a relay on the embedded store is
//! alone and runs none of this.
//!
//! - Presence is leases ([`leases`]): this relay writes one per logged-in session and
//!   renews them; it reads the other relays' to know who is online there, and the hub
//!   ([`crate::hub::Hub::set_remote`]) turns changes into presence events.
//! - PostgreSQL `LISTEN/NOTIFY` says when to look: a relay whose sessions changed
//!   notifies [`PRESENCE`]; a committed message or file notifies [`INBOX`] with its
//!   recipient, a delivery [`RECEIPTS`] with the sender ([`crate::store::pg::commit`]).
//!   A thread of its own holds the listening connection and reconnects when it breaks;
//!   after a reconnect everything is read again (notifications sent meanwhile are lost),
//!   and the leases are read every [`leases::RENEW_MS`] anyway.
//! - Calls between relays go over relay links ([`link`], [`peer_tls`]): the leases say
//!   where each device is and the address its relay advertises; each relay's call router
//!   sees the other relay's party as a pseudo-session ([`xcall`]).

pub mod leases;
pub(crate) mod link;
pub mod notice;
pub mod peer_tls;
pub(crate) mod xcall;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use smol::channel::{Receiver, Sender};

use crate::push;
use crate::shared::Shared;
use crate::store::pg::PgStore;
use crate::store::pg::leases::{INBOX, PRESENCE, RECEIPTS};
use notice::Notice;

/// How long the listening thread waits before connecting again after a failure.
const RECONNECT: Duration = Duration::from_secs(1);

/// Starts the listening thread and returns its notices (the channel closes when the
/// thread gives up: never, while the receiver lives).
pub(crate) fn listen(store: PgStore, me: String) -> Receiver<Notice> {
    let (tx, rx) = smol::channel::bounded(4096);
    let spawned = std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || listen_thread(&store, &me, &tx));
    if let Err(e) = spawned {
        tracing::error!("cannot start the cluster listener thread: {e}");
    }
    rx
}

fn listen_thread(store: &PgStore, me: &str, tx: &Sender<Notice>) {
    let mut failing = false;
    while !tx.is_closed() {
        let mut client = match store.listen() {
            Ok(c) => c,
            Err(e) => {
                if !failing {
                    tracing::error!("cluster: listening for other relays' changes: {e}");
                    failing = true;
                }
                std::thread::sleep(RECONNECT);
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("cluster: listening again");
        }
        // What was sent while nobody listened is read again.
        if tx.send_blocking(Notice::Reconnected).is_err() {
            return;
        }
        loop {
            if tx.is_closed() {
                return;
            }
            let next = client
                .notifications()
                .timeout_iter(Duration::from_secs(1))
                .next();
            match next {
                Ok(Some(n)) => {
                    let Some(notice) = Notice::parse(n.channel(), n.payload()) else {
                        tracing::debug!(channel = n.channel(), "cluster: unreadable notice");
                        continue;
                    };
                    if notice.from(me) {
                        continue;
                    }
                    if tx.send_blocking(notice).is_err() {
                        return;
                    }
                }
                Ok(None) if !client.is_closed() => {}
                Ok(None) => {
                    tracing::error!("cluster: the listening connection closed");
                    failing = true;
                    break;
                }
                Err(e) => {
                    tracing::error!("cluster: the listening connection broke: {e}");
                    failing = true;
                    break;
                }
            }
        }
        std::thread::sleep(RECONNECT);
    }
}

/// What one round of the cluster task has to do, from the notices that arrived.
#[derive(Default)]
struct Round {
    reread: bool,
    resync: bool,
    /// Account → the highest new item id for it.
    inbox: BTreeMap<u64, u64>,
    receipts: Vec<(u64, u64, String)>,
}

impl Round {
    fn add(&mut self, notice: Notice) {
        match notice {
            Notice::Presence { .. } => self.reread = true,
            Notice::Reconnected => {
                self.reread = true;
                self.resync = true;
            }
            Notice::Inbox { account, id, .. } => {
                let at = self.inbox.entry(account).or_default();
                *at = (*at).max(id);
            }
            Notice::Receipt {
                sender,
                id,
                client_id,
                ..
            } => self.receipts.push((sender, id, client_id)),
        }
    }
}

/// Keeps this relay's leases written, applies the other relays' presence and pushes
/// what they stored for devices here. Runs until `notices` closes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    store: PgStore,
    me: String,
    notices: Receiver<Notice>,
    wake: Receiver<()>,
) {
    {
        let (store, me) = (store.clone(), me.clone());
        if let Err(e) = blocking::unblock(move || store.clear_leases(&me)).await {
            tracing::warn!("cluster: clearing this relay's old leases: {e}");
        }
    }
    let mut renewal = leases::Renewal::default();
    let mut failing = false;
    loop {
        let dirty = renewal.differs(&shared.leases());
        let due = if dirty {
            renewal.next_change_ms()
        } else {
            renewal.next_ms()
        };
        let wait = due.saturating_sub(shared.mono_ms());
        let mut round = Round::default();
        let woke = smol::future::or(
            async {
                match notices.recv().await {
                    Ok(n) => Some(Some(n)),
                    Err(_) => None,
                }
            },
            smol::future::or(
                async {
                    let _ = wake.recv().await;
                    Some(None)
                },
                async {
                    smol::Timer::after(Duration::from_millis(wait)).await;
                    Some(None)
                },
            ),
        )
        .await;
        let Some(first) = woke else { return };
        round.extend(first);
        while let Ok(n) = notices.try_recv() {
            round.add(n);
        }
        let now = shared.mono_ms();
        let local = shared.leases();
        if let Some(write) = renewal.due(now, &local) {
            let periodic = !write.changed;
            let (s, id, sessions, changed) = (
                store.clone(),
                me.clone(),
                write.sessions.clone(),
                write.changed,
            );
            let peer = shared
                .links()
                .and_then(|l| l.advertise)
                .map(|a| a.to_string());
            let result = blocking::unblock(move || {
                s.sync_leases(&id, &sessions, leases::TTL, changed, peer.as_deref())
            })
            .await;
            match result {
                Ok(()) => {
                    renewal.written(now, write);
                    if std::mem::take(&mut failing) {
                        tracing::info!("cluster: leases written again");
                    }
                }
                Err(e) => {
                    renewal.failed(now);
                    if !failing {
                        tracing::error!("cluster: writing this relay's leases: {e}");
                        failing = true;
                    }
                }
            }
            // The safety net: the others' leases are read at every renewal too.
            round.reread |= periodic;
        }
        if round.reread {
            let (s, id) = (store.clone(), me.clone());
            match blocking::unblock(move || s.leases(&id)).await {
                Ok((db_now, rows)) => {
                    if let Some(links) = shared.links() {
                        links.set_remote(leases::peers_elsewhere(&rows, db_now));
                    }
                    shared.set_remote(leases::online_elsewhere(rows, db_now));
                }
                Err(e) => tracing::warn!("cluster: reading the other relays' leases: {e}"),
            }
        }
        deliver(&shared, round).await;
    }
}

impl Round {
    fn extend(&mut self, notice: Option<Notice>) {
        if let Some(n) = notice {
            self.add(n);
        }
    }
}

/// Pushes what other relays stored for, or delivered from, devices here.
async fn deliver(shared: &Arc<Shared>, round: Round) {
    if round.resync {
        for account in shared.online_accounts() {
            push::push_pending(shared, account).await;
            push::push_receipts(shared, account).await;
        }
        return;
    }
    for (account, id) in round.inbox {
        if !shared.sessions_of(account).is_empty() {
            push::push_stored(shared, account, id).await;
        }
    }
    for (sender, id, client_id) in round.receipts {
        push::push_receipt(shared, sender, id, client_id).await;
    }
}

/// This relay's id in the cluster: the configured one, or a new random one.
pub fn relay_id(configured: Option<&str>) -> String {
    match configured {
        Some(id) => id.to_owned(),
        None => format!(
            "relay-{:016x}",
            getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()))
        ),
    }
}

/// Channels this module listens on (for the docs and tests).
pub const CHANNELS: [&str; 3] = [PRESENCE, INBOX, RECEIPTS];
