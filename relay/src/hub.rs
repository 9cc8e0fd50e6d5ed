//! Who is online, as a sans-IO state machine: sessions log in and leave, accounts change,
//! and the hub answers with the events to push and the sessions to close.
//!
//! An account is online while at least one of its sessions is logged in. Presence events
//! go to every logged-in session of *other* accounts, only on transitions.

use std::collections::{BTreeMap, HashMap};

use phoned_proto::{AccountInfo, Event, OnlineUser};

use crate::store::AccountId;

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
    /// Close the session: its account was disabled, deleted or its password reset.
    Revoke(SessionId),
}

#[derive(Debug)]
struct Online {
    profile: Profile,
    sessions: Vec<SessionId>,
}

#[derive(Debug, Default)]
pub struct Hub {
    /// Logged-in sessions and their account.
    sessions: HashMap<SessionId, AccountId>,
    accounts: HashMap<AccountId, Online>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs a session in. Returns presence events if the account just came online.
    pub fn login(&mut self, sid: SessionId, account: AccountId, profile: Profile) -> Vec<Action> {
        let mut actions = self.leave(sid);
        self.sessions.insert(sid, account);
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
                actions.extend(self.broadcast(account, event));
            }
        }
        actions
    }

    /// A session ended (closed, timed out, logged out). Returns offline events if it
    /// was the account's last.
    pub fn leave(&mut self, sid: SessionId) -> Vec<Action> {
        let Some(account) = self.sessions.remove(&sid) else {
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
        self.broadcast(account, presence(&online.profile, false))
    }

    /// Applies the stored state of an online account: `None` if it was deleted or
    /// disabled. Returns the presence changes, account updates and revocations.
    pub fn sync(&mut self, account: AccountId, stored: Option<Profile>) -> Vec<Action> {
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
                actions.extend(self.leave(s));
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
            actions.extend(self.broadcast(account, e));
        }
        actions
    }

    /// The logged-in sessions of `account` (its online devices).
    pub fn sessions_of(&self, account: AccountId) -> Vec<SessionId> {
        self.accounts
            .get(&account)
            .map(|o| o.sessions.clone())
            .unwrap_or_default()
    }

    pub fn account_of(&self, sid: SessionId) -> Option<AccountId> {
        self.sessions.get(&sid).copied()
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

    /// Everyone online, ordered by number.
    pub fn online(&self) -> Vec<OnlineUser> {
        let sorted: BTreeMap<&str, &str> = self
            .accounts
            .values()
            .map(|o| (o.profile.number.as_str(), o.profile.name.as_str()))
            .collect();
        sorted
            .into_iter()
            .map(|(number, name)| OnlineUser {
                number: number.to_owned(),
                name: name.to_owned(),
            })
            .collect()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Accounts online (with at least one session).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    fn broadcast(&self, from: AccountId, event: Event) -> Vec<Action> {
        self.sessions
            .iter()
            .filter(|&(_, &a)| a != from)
            .map(|(&s, _)| Action::Send(s, event.clone()))
            .collect()
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
    use super::*;
    use proptest::prelude::*;

    fn profile(number: &str, name: &str) -> Profile {
        Profile {
            number: number.into(),
            name: name.into(),
            created_ms: 0,
            epoch: 0,
        }
    }

    fn sent_to(actions: &[Action], sid: SessionId) -> Vec<Event> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(s, e) if *s == sid => Some(e.clone()),
                _ => None,
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
        assert!(hub.login(1, 10, profile("1000", "A")).is_empty());
        let a = hub.login(2, 20, profile("2000", "B"));
        assert_eq!(sent_to(&a, 1), [p("2000", "B", true)]);
        assert!(sent_to(&a, 2).is_empty());
        // A second device of B: no presence change; B's first device learns the count.
        let a = hub.login(3, 20, profile("2000", "B"));
        assert!(sent_to(&a, 1).is_empty());
        assert!(matches!(&sent_to(&a, 2)[..], [Event::AccountChanged(i)] if i.devices_online == 2));
        assert!(sent_to(&a, 3).is_empty());
        assert_eq!(hub.devices(20), 2);
        let a = hub.leave(2);
        assert!(
            matches!(&a[..], [Action::Send(3, Event::AccountChanged(i))] if i.devices_online == 1)
        );
        let a = hub.leave(3);
        assert_eq!(sent_to(&a, 1), [p("2000", "B", false)]);
        assert_eq!(
            hub.online(),
            [OnlineUser {
                number: "1000".into(),
                name: "A".into()
            }]
        );
        // Leaving twice is harmless.
        assert!(hub.leave(3).is_empty());
    }

    #[test]
    fn number_change_is_offline_old_then_online_new() {
        let mut hub = Hub::new();
        hub.login(1, 10, profile("1000", "A"));
        hub.login(2, 20, profile("2000", "B"));
        let a = hub.sync(20, Some(profile("3000", "B")));
        assert_eq!(
            sent_to(&a, 1),
            [p("2000", "B", false), p("3000", "B", true)]
        );
        assert!(matches!(&sent_to(&a, 2)[..], [Event::AccountChanged(i)] if i.number == "3000"));
        assert!(hub.sync(20, Some(profile("3000", "B"))).is_empty());
    }

    #[test]
    fn revoked_accounts_are_closed_and_go_offline() {
        let mut hub = Hub::new();
        hub.login(1, 10, profile("1000", "A"));
        hub.login(2, 20, profile("2000", "B"));
        hub.login(3, 20, profile("2000", "B"));
        let mut revoked_profile = profile("2000", "B");
        revoked_profile.epoch = 1;
        let a = hub.sync(20, Some(revoked_profile));
        assert!(a.contains(&Action::Revoke(2)) && a.contains(&Action::Revoke(3)));
        assert_eq!(sent_to(&a, 1), [p("2000", "B", false)]);
        assert_eq!(hub.session_count(), 1);
        let a = hub.sync(10, None);
        assert_eq!(a, [Action::Revoke(1)]);
        assert!(hub.online().is_empty());
    }

    proptest! {
        /// Under any sequence of logins and leaves, the hub's online list equals the set
        /// of accounts with a live session, and every observer saw a consistent stream.
        #[test]
        fn online_list_matches_sessions(ops in proptest::collection::vec((0u64..6, 0u64..3, any::<bool>()), 0..60)) {
            let mut hub = Hub::new();
            let mut live: HashMap<SessionId, AccountId> = HashMap::new();
            for (sid, account, join) in ops {
                if join {
                    hub.login(sid, account, profile(&format!("{}", 100 + account), "x"));
                    live.insert(sid, account);
                } else {
                    hub.leave(sid);
                    live.remove(&sid);
                }
                let mut expect: Vec<String> = live.values().map(|a| format!("{}", 100 + a)).collect();
                expect.sort();
                expect.dedup();
                let got: Vec<String> = hub.online().into_iter().map(|u| u.number).collect();
                prop_assert_eq!(got, expect);
            }
        }
    }
}
