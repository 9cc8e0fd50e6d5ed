//! Who is online, as a sans-IO state machine: sessions log in and leave, accounts change,
//! and the hub answers with the events to push and the sessions to close. Time is passed
//! in (milliseconds on a monotonic clock).
//!
//! An account is online while at least one of its sessions is logged in. Presence events
//! go to every logged-in session of *other* accounts, only on transitions, in batches
//! ([`batch`]): a change waits for the next flush, which [`Hub::next_deadline`] says when
//! to ask for with [`Hub::tick`] (a change after a quiet spell goes out at once).

pub mod batch;

use std::collections::{BTreeMap, HashMap};

use phoned_proto::{AccountInfo, Event, OnlineUser};

use crate::store::AccountId;
use batch::{Batch, Pending};

pub type SessionId = u64;

/// The parts of an account that live sessions care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub number: String,
    pub name: String,
    pub created_ms: u64,
    pub epoch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Push this event to the session.
    Send(SessionId, Event),
    /// Push presence events to many sessions, each its share in one write.
    Presence(Batch),
    /// Close the session: its account was disabled, deleted or its password reset.
    Revoke(SessionId),
}

#[derive(Debug)]
struct Online {
    profile: Profile,
    sessions: Vec<SessionId>,
}

/// A logged-in session.
#[derive(Debug, Clone, Copy)]
struct Logged {
    account: AccountId,
    /// The presence change it logged in after (see [`Pending::seq`]).
    since: u64,
}

#[derive(Debug, Default)]
pub struct Hub {
    sessions: HashMap<SessionId, Logged>,
    accounts: HashMap<AccountId, Online>,
    /// Presence changes waiting for the next flush.
    pending: Pending,
    /// Accounts online on other relays of a cluster (their leases are valid), with their
    /// profiles: online here too, whether or not they have a session here.
    remote: HashMap<AccountId, Profile>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs a session in. Announces the account if it just came online.
    pub fn login(
        &mut self,
        now_ms: u64,
        sid: SessionId,
        account: AccountId,
        profile: Profile,
    ) -> Vec<Action> {
        let mut actions = self.leave(now_ms, sid);
        let since = self.pending.seq();
        self.sessions.insert(sid, Logged { account, since });
        match self.accounts.get_mut(&account) {
            Some(online) => {
                online.sessions.push(sid);
                // A stale profile here would mean the store changed under us; the next
                // sync repairs it, so keep what we have. The other devices learn the
                // new device count.
                actions.extend(own_update(online, Some(sid)));
            }
            None => {
                let event = presence(&profile, true);
                self.accounts.insert(
                    account,
                    Online {
                        profile,
                        sessions: vec![sid],
                    },
                );
                // Online on another relay: the others knew already.
                if !self.remote.contains_key(&account) {
                    self.pending.push(account, event);
                }
            }
        }
        actions.extend(self.tick(now_ms));
        actions
    }

    /// A session ended (closed, timed out, logged out). Announces the account offline
    /// if it was the account's last.
    pub fn leave(&mut self, now_ms: u64, sid: SessionId) -> Vec<Action> {
        let Some(Logged { account, .. }) = self.sessions.remove(&sid) else {
            return Vec::new();
        };
        let Some(online) = self.accounts.get_mut(&account) else {
            return Vec::new();
        };
        online.sessions.retain(|&s| s != sid);
        if !online.sessions.is_empty() {
            return own_update(online, None);
        }
        let online = self.accounts.remove(&account).expect("present above");
        // Still online on another relay: nothing changed for the others.
        if self.remote.contains_key(&account) {
            return Vec::new();
        }
        self.pending.push(account, presence(&online.profile, false));
        self.tick(now_ms).into_iter().collect()
    }

    /// The accounts online on other relays are now `remote` (from their leases): queues
    /// the presence changes that makes for the accounts without a session here.
    pub fn set_remote(&mut self, now_ms: u64, remote: HashMap<AccountId, Profile>) -> Vec<Action> {
        let old = std::mem::replace(&mut self.remote, remote);
        let mut changed: Vec<AccountId> = old
            .keys()
            .chain(self.remote.keys())
            .copied()
            .filter(|a| !self.accounts.contains_key(a))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for account in changed {
            for event in remote_change(old.get(&account), self.remote.get(&account)) {
                self.pending.push(account, event);
            }
        }
        self.tick(now_ms).into_iter().collect()
    }

    /// Applies the stored state of an online account: `None` if it was deleted or
    /// disabled. Returns the presence changes, account updates and revocations.
    pub fn sync(
        &mut self,
        now_ms: u64,
        account: AccountId,
        stored: Option<Profile>,
    ) -> Vec<Action> {
        let Some(online) = self.accounts.get(&account) else {
            return Vec::new();
        };
        let revoke = match &stored {
            None => true,
            Some(p) => p.epoch != online.profile.epoch,
        };
        if revoke {
            let sessions = online.sessions.clone();
            let mut actions: Vec<Action> = sessions.iter().map(|&s| Action::Revoke(s)).collect();
            for s in sessions {
                actions.extend(self.leave(now_ms, s));
            }
            return actions;
        }
        let new = stored.expect("revoked above when None");
        let old = &online.profile;
        if *old == new {
            return Vec::new();
        }
        let mut events = Vec::new();
        if old.number != new.number {
            events.push(presence(old, false));
        }
        if old.number != new.number || old.name != new.name {
            events.push(presence(&new, true));
        }
        let own: Vec<SessionId> = online.sessions.clone();
        let info = info(&new, own.len());
        self.accounts
            .get_mut(&account)
            .expect("present above")
            .profile = new;
        let mut actions: Vec<Action> = own
            .iter()
            .map(|&s| Action::Send(s, Event::AccountChanged(info.clone())))
            .collect();
        for e in events {
            self.pending.push(account, e);
        }
        actions.extend(self.tick(now_ms));
        actions
    }

    /// Flushes the waiting presence changes if they are due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Option<Action> {
        let changes = self.pending.take_due(now_ms, self.sessions.len())?;
        let sessions = self
            .sessions
            .iter()
            .map(|(&sid, l)| (sid, l.account, l.since));
        let batch = Batch::address(changes, sessions);
        (batch.writes() > 0).then_some(Action::Presence(batch))
    }

    /// When [`Hub::tick`] has presence changes to flush, if any wait.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.deadline(self.sessions.len())
    }

    /// The logged-in sessions of `account` (its online devices).
    pub fn sessions_of(&self, account: AccountId) -> Vec<SessionId> {
        self.accounts
            .get(&account)
            .map(|o| o.sessions.clone())
            .unwrap_or_default()
    }

    pub fn account_of(&self, sid: SessionId) -> Option<AccountId> {
        self.sessions.get(&sid).map(|l| l.account)
    }

    /// The number of logged-in sessions of `account`.
    pub fn devices(&self, account: AccountId) -> usize {
        self.accounts.get(&account).map_or(0, |o| o.sessions.len())
    }

    /// The account's info as the hub knows it, if it is online.
    pub fn info(&self, account: AccountId) -> Option<AccountInfo> {
        self.accounts
            .get(&account)
            .map(|o| info(&o.profile, o.sessions.len()))
    }

    pub fn online_accounts(&self) -> Vec<AccountId> {
        self.accounts.keys().copied().collect()
    }

    /// Everyone online, here or on another relay, ordered by number.
    pub fn online(&self) -> Vec<OnlineUser> {
        let remote = self
            .remote
            .iter()
            .filter(|(a, _)| !self.accounts.contains_key(a))
            .map(|(_, p)| p);
        let sorted: BTreeMap<&str, &str> = self
            .accounts
            .values()
            .map(|o| &o.profile)
            .chain(remote)
            .map(|p| (p.number.as_str(), p.name.as_str()))
            .collect();
        sorted
            .into_iter()
            .map(|(number, name)| OnlineUser {
                number: number.to_owned(),
                name: name.to_owned(),
            })
            .collect()
    }

    /// The logged-in sessions and their accounts (what this relay holds leases for).
    pub fn leases(&self) -> Vec<(SessionId, AccountId)> {
        let mut all: Vec<_> = self.sessions.iter().map(|(&s, l)| (s, l.account)).collect();
        all.sort_unstable();
        all
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Accounts online (with at least one session).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
}

/// `AccountChanged` with the current device count, to the account's sessions but `skip`.
fn own_update(online: &Online, skip: Option<SessionId>) -> Vec<Action> {
    let info = info(&online.profile, online.sessions.len());
    online
        .sessions
        .iter()
        .filter(|&&s| Some(s) != skip)
        .map(|&s| Action::Send(s, Event::AccountChanged(info.clone())))
        .collect()
}

/// The presence events for an account with no session here whose profile on other relays
/// went from `old` to `new` (`None`: offline there).
fn remote_change(old: Option<&Profile>, new: Option<&Profile>) -> Vec<Event> {
    match (old, new) {
        (None, Some(n)) => vec![presence(n, true)],
        (Some(o), None) => vec![presence(o, false)],
        (Some(o), Some(n)) if o.number != n.number => {
            vec![presence(o, false), presence(n, true)]
        }
        (Some(o), Some(n)) if o.name != n.name => vec![presence(n, true)],
        _ => Vec::new(),
    }
}

fn presence(p: &Profile, online: bool) -> Event {
    Event::Presence {
        number: p.number.clone(),
        name: p.name.clone(),
        online,
    }
}

/// Account info from a profile and a device count.
pub fn info(p: &Profile, devices: usize) -> AccountInfo {
    AccountInfo {
        number: p.number.clone(),
        display_name: p.name.clone(),
        created_ms: p.created_ms,
        devices_online: devices as u32,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use proptest::prelude::*;

    /// Far enough apart that every step's presence goes out at once.
    const STEP: u64 = batch::MAX_INTERVAL_MS;

    fn profile(number: &str, name: &str) -> Profile {
        Profile {
            number: number.into(),
            name: name.into(),
            created_ms: 0,
            epoch: 0,
        }
    }

    /// What `sid` is sent by `actions`, presence batches included, in order.
    fn sent_to(actions: &[Action], sid: SessionId) -> Vec<Event> {
        actions
            .iter()
            .flat_map(|a| match a {
                Action::Send(s, e) if *s == sid => vec![e.clone()],
                Action::Presence(b) => b.events_for(sid),
                _ => Vec::new(),
            })
            .collect()
    }

    fn p(number: &str, name: &str, online: bool) -> Event {
        Event::Presence {
            number: number.into(),
            name: name.into(),
            online,
        }
    }

    #[test]
    fn presence_goes_to_others_on_transitions_only() {
        let mut hub = Hub::new();
        assert!(hub.login(0, 1, 10, profile("1000", "A")).is_empty());
        let a = hub.login(STEP, 2, 20, profile("2000", "B"));
        assert_eq!(sent_to(&a, 1), [p("2000", "B", true)]);
        assert!(sent_to(&a, 2).is_empty());
        // A second device of B: no presence change; B's first device learns the count.
        let a = hub.login(2 * STEP, 3, 20, profile("2000", "B"));
        assert!(sent_to(&a, 1).is_empty());
        assert!(matches!(&sent_to(&a, 2)[..], [Event::AccountChanged(i)] if i.devices_online == 2));
        assert!(sent_to(&a, 3).is_empty());
        assert_eq!(hub.devices(20), 2);
        let a = hub.leave(3 * STEP, 2);
        assert!(
            matches!(&a[..], [Action::Send(3, Event::AccountChanged(i))] if i.devices_online == 1)
        );
        let a = hub.leave(4 * STEP, 3);
        assert_eq!(sent_to(&a, 1), [p("2000", "B", false)]);
        assert_eq!(
            hub.online(),
            [OnlineUser {
                number: "1000".into(),
                name: "A".into()
            }]
        );
        // Leaving twice is harmless.
        assert!(hub.leave(5 * STEP, 3).is_empty());
        assert_eq!(hub.next_deadline(), None);
    }

    #[test]
    fn changes_close_together_wait_for_one_flush() {
        let mut hub = Hub::new();
        hub.login(0, 1, 10, profile("1000", "A"));
        // B comes online at once (the first change after a quiet spell)...
        let a = hub.login(100, 2, 20, profile("2000", "B"));
        assert_eq!(sent_to(&a, 1), [p("2000", "B", true)]);
        // ...C and D within the interval wait, and go out together, in order.
        assert!(hub.login(110, 3, 30, profile("3000", "C")).is_empty());
        assert!(hub.login(120, 4, 40, profile("4000", "D")).is_empty());
        let due = hub.next_deadline().unwrap();
        assert_eq!(due, 100 + batch::MIN_INTERVAL_MS);
        assert!(hub.tick(due - 1).is_none());
        let a: Vec<Action> = hub.tick(due).into_iter().collect();
        assert_eq!(a.len(), 1, "one batch");
        assert_eq!(sent_to(&a, 1), [p("3000", "C", true), p("4000", "D", true)]);
        assert_eq!(sent_to(&a, 2), [p("3000", "C", true), p("4000", "D", true)]);
        // C logged in before D: it hears of D, not of itself; D of nobody (its own
        // ListOnline told it about C).
        assert_eq!(sent_to(&a, 3), [p("4000", "D", true)]);
        assert!(sent_to(&a, 4).is_empty());
        assert_eq!(hub.next_deadline(), None);
    }

    /// A storm of n logins within a minute: every session hears of everyone who came after
    /// it, and the writes that costs stay within the budget (O(n)), where sending each
    /// event on its own took n²/2 writes (here 184 000 against 50 million).
    #[test]
    fn a_login_storm_costs_writes_within_the_budget() {
        let (n, window_ms) = (10_000u64, 60_000u64);
        let mut hub = Hub::new();
        let (mut writes, mut deliveries) = (0u64, 0u64);
        let mut count = |actions: Vec<Action>| {
            for a in actions {
                if let Action::Presence(b) = a {
                    writes += b.writes() as u64;
                    deliveries += b.deliveries() as u64;
                }
            }
        };
        for i in 0..n {
            let now = i * window_ms / n;
            let mut actions = match hub.next_deadline() {
                Some(due) if due <= now => hub.tick(now).into_iter().collect(),
                _ => Vec::new(),
            };
            actions.extend(hub.login(now, i, i, profile(&(10_000 + i).to_string(), "x")));
            count(actions);
        }
        let end = hub.next_deadline().unwrap();
        count(hub.tick(end).into_iter().collect());
        assert_eq!(deliveries, n * (n - 1) / 2, "every event reached everyone");
        // The budget, or one write per session every MAX_INTERVAL_MS when there are more
        // sessions than the budget covers.
        let per_second = batch::WRITES_PER_SECOND.max(n * 1000 / batch::MAX_INTERVAL_MS);
        let seconds = end.div_ceil(1000) + 1;
        assert!(
            writes <= per_second * seconds,
            "{writes} writes for {n} logins"
        );
        // One by one it was n(n-1)/2 = 50 million writes.
        assert!(writes * 100 < n * (n - 1) / 2, "{writes}");
    }

    #[test]
    fn number_change_is_offline_old_then_online_new() {
        let mut hub = Hub::new();
        hub.login(0, 1, 10, profile("1000", "A"));
        hub.login(STEP, 2, 20, profile("2000", "B"));
        let a = hub.sync(2 * STEP, 20, Some(profile("3000", "B")));
        assert_eq!(
            sent_to(&a, 1),
            [p("2000", "B", false), p("3000", "B", true)]
        );
        assert!(matches!(&sent_to(&a, 2)[..], [Event::AccountChanged(i)] if i.number == "3000"));
        assert!(
            hub.sync(3 * STEP, 20, Some(profile("3000", "B")))
                .is_empty()
        );
    }

    #[test]
    fn revoked_accounts_are_closed_and_go_offline() {
        let mut hub = Hub::new();
        hub.login(0, 1, 10, profile("1000", "A"));
        hub.login(STEP, 2, 20, profile("2000", "B"));
        hub.login(2 * STEP, 3, 20, profile("2000", "B"));
        let mut revoked_profile = profile("2000", "B");
        revoked_profile.epoch = 1;
        let a = hub.sync(3 * STEP, 20, Some(revoked_profile));
        assert!(a.contains(&Action::Revoke(2)) && a.contains(&Action::Revoke(3)));
        assert_eq!(sent_to(&a, 1), [p("2000", "B", false)]);
        assert_eq!(hub.session_count(), 1);
        let a = hub.sync(4 * STEP, 10, None);
        assert_eq!(a, [Action::Revoke(1)]);
        assert!(hub.online().is_empty());
    }

    #[test]
    fn accounts_online_elsewhere_are_online_here_without_double_events() {
        let mut hub = Hub::new();
        hub.login(0, 1, 10, profile("1000", "A"));
        // B comes online on another relay: A hears of it, and it is in the list.
        let remote = |list: &[(AccountId, &str)]| -> HashMap<AccountId, Profile> {
            list.iter().map(|&(a, n)| (a, profile(n, "x"))).collect()
        };
        let a = hub.set_remote(STEP, remote(&[(20, "2000")]));
        assert_eq!(sent_to(&a, 1), [p("2000", "x", true)]);
        assert_eq!(hub.online().len(), 2);
        // B logs in here too: no event, it was online already; A on the other relay
        // too: no event for B's session.
        let a = hub.login(2 * STEP, 2, 20, profile("2000", "x"));
        assert!(sent_to(&a, 1).is_empty());
        let a = hub.set_remote(3 * STEP, remote(&[(20, "2000"), (10, "1000")]));
        assert!(sent_to(&a, 1).is_empty() && sent_to(&a, 2).is_empty());
        // B leaves here: still online elsewhere, no event.
        assert!(sent_to(&hub.leave(4 * STEP, 2), 1).is_empty());
        // B's lease expires: offline now; a number change elsewhere is old off, new on.
        let a = hub.set_remote(5 * STEP, remote(&[(10, "1000"), (30, "3000")]));
        assert_eq!(
            sent_to(&a, 1),
            [p("2000", "x", false), p("3000", "x", true)]
        );
        let a = hub.set_remote(6 * STEP, remote(&[(10, "1000"), (30, "3001")]));
        assert_eq!(
            sent_to(&a, 1),
            [p("3000", "x", false), p("3001", "x", true)]
        );
        let numbers: Vec<String> = hub.online().into_iter().map(|u| u.number).collect();
        assert_eq!(numbers, ["1000", "3001"]);
        assert_eq!(hub.leases(), [(1, 10)]);
    }

    proptest! {
        /// Under any sequence of logins and leaves, the hub's online list equals the set
        /// of accounts with a live session, and every observer saw a consistent stream.
        #[test]
        fn online_list_matches_sessions(ops in proptest::collection::vec((0u64..6, 0u64..3, any::<bool>()), 0..60)) {
            let mut hub = Hub::new();
            let mut live: HashMap<SessionId, AccountId> = HashMap::new();
            for (i, (sid, account, join)) in ops.into_iter().enumerate() {
                let now = i as u64 * STEP;
                if join {
                    hub.login(now, sid, account, profile(&format!("{}", 100 + account), "x"));
                    live.insert(sid, account);
                } else {
                    hub.leave(now, sid);
                    live.remove(&sid);
                }
                let mut expect: Vec<String> = live.values().map(|a| format!("{}", 100 + a)).collect();
                expect.sort();
                expect.dedup();
                let got: Vec<String> = hub.online().into_iter().map(|u| u.number).collect();
                prop_assert_eq!(got, expect);
            }
        }

        /// With other relays' accounts coming and going too (any set at any time), every
        /// device that applies its events in order ends with the hub's list, which holds
        /// the accounts online here or elsewhere.
        #[test]
        fn remote_presence_keeps_every_device_exact(
            ops in proptest::collection::vec((0u8..3, 0u64..6, 0u64..4, 0u64..16, 0u64..80), 0..80)
        ) {
            let mut hub = Hub::new();
            let mut now = 0;
            let mut views: HashMap<SessionId, (AccountId, BTreeSet<String>)> = HashMap::new();
            fn number(account: AccountId) -> String {
                format!("{}", 100 + account)
            }
            let apply = |views: &mut HashMap<SessionId, (AccountId, BTreeSet<String>)>, actions: Vec<Action>| {
                for (sid, (_, view)) in views.iter_mut() {
                    for e in sent_to(&actions, *sid) {
                        if let Event::Presence { number, online, .. } = e {
                            if online { view.insert(number); } else { view.remove(&number); }
                        }
                    }
                }
            };
            for (kind, sid, account, remote, wait) in ops {
                now += wait;
                let due: Vec<Action> = match hub.next_deadline() {
                    Some(d) if d <= now => hub.tick(now).into_iter().collect(),
                    _ => Vec::new(),
                };
                apply(&mut views, due);
                match kind {
                    0 => {
                        let actions = hub.login(now, sid, account, profile(&number(account), "x"));
                        let own = number(account);
                        let list = hub.online().into_iter().map(|u| u.number).filter(|n| *n != own).collect();
                        views.insert(sid, (account, list));
                        apply(&mut views, actions);
                    }
                    1 => {
                        views.remove(&sid);
                        let actions = hub.leave(now, sid);
                        apply(&mut views, actions);
                    }
                    _ => {
                        // Accounts 0-3 online elsewhere as the bits of `remote` say.
                        let set = (0..4)
                            .filter(|a| remote & (1 << a) != 0)
                            .map(|a| (a, profile(&number(a), "x")))
                            .collect();
                        let actions = hub.set_remote(now, set);
                        apply(&mut views, actions);
                    }
                }
            }
            if let Some(d) = hub.next_deadline() {
                let actions = hub.tick(d.max(now)).into_iter().collect();
                apply(&mut views, actions);
            }
            let all: BTreeSet<String> = hub.online().into_iter().map(|u| u.number).collect();
            for (sid, (account, view)) in &views {
                let mut expect = all.clone();
                expect.remove(&number(*account));
                prop_assert_eq!(view, &expect, "session {}", sid);
            }
        }

        /// A device that asks for the online list when it logs in and then applies the
        /// presence events it is sent, in order, ends with the hub's list (less its own
        /// account), however the changes fell into batches.
        #[test]
        fn batched_events_keep_every_device_exact(
            ops in proptest::collection::vec((0u64..8, 0u64..4, any::<bool>(), 0u64..80), 0..80)
        ) {
            let mut hub = Hub::new();
            let mut now = 0;
            // Each live session's view: the numbers it believes online.
            let mut views: HashMap<SessionId, (AccountId, BTreeSet<String>)> = HashMap::new();
            fn number(account: AccountId) -> String {
                format!("{}", 100 + account)
            }
            let apply = |views: &mut HashMap<SessionId, (AccountId, BTreeSet<String>)>, actions: Vec<Action>| {
                for (sid, (_, view)) in views.iter_mut() {
                    for e in sent_to(&actions, *sid) {
                        if let Event::Presence { number, online, .. } = e {
                            if online { view.insert(number); } else { view.remove(&number); }
                        }
                    }
                }
            };
            for (sid, account, join, wait) in ops {
                now += wait;
                let due: Vec<Action> = match hub.next_deadline() {
                    Some(d) if d <= now => hub.tick(now).into_iter().collect(),
                    _ => Vec::new(),
                };
                apply(&mut views, due);
                if join {
                    let actions = hub.login(now, sid, account, profile(&number(account), "x"));
                    // Its ListOnline, right after its login.
                    let own = number(account);
                    let list = hub.online().into_iter().map(|u| u.number).filter(|n| *n != own).collect();
                    views.insert(sid, (account, list));
                    apply(&mut views, actions);
                } else {
                    views.remove(&sid);
                    let actions = hub.leave(now, sid);
                    apply(&mut views, actions);
                }
            }
            if let Some(d) = hub.next_deadline() {
                let actions = hub.tick(d.max(now)).into_iter().collect();
                apply(&mut views, actions);
            }
            prop_assert_eq!(hub.next_deadline(), None);
            let all: BTreeSet<String> = hub.online().into_iter().map(|u| u.number).collect();
            for (sid, (account, view)) in &views {
                let mut expect = all.clone();
                expect.remove(&number(*account));
                prop_assert_eq!(view, &expect, "session {}", sid);
            }
        }
    }
}
