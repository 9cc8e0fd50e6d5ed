//! Conference values shared by the relay, devices and clients (protocol 3): a party's
//! state, the roster the relay sends every party, and the limits. Their string forms are
//! public interface (D-Bus `Conference.Parties`, `phonectl conference --json`).
//!
//! A conference is a room on the relay. Each party takes part in it as in a call whose
//! id is the conference's: it answers, rejects, holds and hangs up (leaves) with the
//! call requests, and its own phase comes as `CallState`. What is particular to rooms
//! (who is in it, who hosts it) comes as [`Roster`]s.

use serde::{Deserialize, Serialize};

use crate::call::EndReason;
use crate::names::string_enum;

/// The most parties a conference holds at once (those ringing, joined or held).
pub const MAX_PARTIES: usize = 16;

/// The most parties that have left a roster keeps (the oldest are dropped first), so a
/// roster never lists more than `MAX_PARTIES + MAX_LEFT` entries.
pub const MAX_LEFT: usize = 16;

/// The most numbers one `ConferenceCreate` invites (the host takes one place).
pub const MAX_INVITES: usize = MAX_PARTIES - 1;

/// The protocol version that has conferences: devices of older sessions are not invited.
pub const ROOMS_SINCE_VERSION: u16 = 3;

string_enum! {
    /// Where a party of a conference is.
    #[derive(Serialize, Deserialize)]
    pub enum PartyState as "party state" {
        /// Asked for, not ringing yet (shown by a device for numbers it has just asked
        /// the relay to add; the relay itself goes straight to `ringing` or `left`).
        Invited = "invited",
        /// Its devices ring.
        Ringing = "ringing",
        /// In the room, talking and listening.
        Joined = "joined",
        /// In the room, on hold from its own side: it sends and receives nothing.
        Held = "held",
        /// Gone: declined, not answered, busy, unknown, hung up, removed or dropped.
        Left = "left",
    }
}

/// One party as the roster shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub number: String,
    /// The display name, empty for a number without an account.
    pub name: String,
    pub state: PartyState,
    /// Its media source id in the room, once it has joined.
    pub source: Option<u32>,
    /// Why it left (with [`PartyState::Left`]).
    pub reason: Option<EndReason>,
}

/// Who is in a conference, sent to every party in the room on each change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// The host's number (the party that may add and remove).
    pub host: String,
    /// In the order they were invited.
    pub parties: Vec<Party>,
}

/// Why a roster from the relay is not one a device can trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("the roster lists more parties than a conference holds")]
    TooManyParties,
    #[error("the roster lists a number twice")]
    DuplicateNumber,
    #[error("the roster's host is not a party in the room")]
    HostNotPresent,
    #[error("two parties of the roster share a media source")]
    DuplicateSource,
}

impl Roster {
    /// The parties in the room now (joined or held).
    pub fn present(&self) -> impl Iterator<Item = &Party> {
        self.parties
            .iter()
            .filter(|p| matches!(p.state, PartyState::Joined | PartyState::Held))
    }

    /// The party sending as `source`.
    pub fn by_source(&self, source: u32) -> Option<&Party> {
        self.present().find(|p| p.source == Some(source))
    }

    /// Checks what a device relies on: bounded size, one entry per number, a host in the
    /// room, distinct media sources.
    pub fn check(&self) -> Result<(), RosterError> {
        let active = self
            .parties
            .iter()
            .filter(|p| p.state != PartyState::Left)
            .count();
        if active > MAX_PARTIES || self.parties.len() > MAX_PARTIES + MAX_LEFT {
            return Err(RosterError::TooManyParties);
        }
        for (i, p) in self.parties.iter().enumerate() {
            if self.parties[..i].iter().any(|o| o.number == p.number) {
                return Err(RosterError::DuplicateNumber);
            }
            if p.source.is_some()
                && matches!(p.state, PartyState::Joined | PartyState::Held)
                && self.parties[..i]
                    .iter()
                    .filter(|o| matches!(o.state, PartyState::Joined | PartyState::Held))
                    .any(|o| o.source == p.source)
            {
                return Err(RosterError::DuplicateSource);
            }
        }
        if !self.present().any(|p| p.number == self.host) {
            return Err(RosterError::HostNotPresent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_round_trips;

    fn party(number: &str, state: PartyState, source: Option<u32>) -> Party {
        Party {
            number: number.into(),
            name: String::new(),
            state,
            source,
            reason: None,
        }
    }

    #[test]
    fn states_have_design_names() {
        assert_round_trips!(PartyState);
        let names: Vec<_> = PartyState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["invited", "ringing", "joined", "held", "left"]);
    }

    #[test]
    fn roster_checks() {
        let ok = Roster {
            host: "1001".into(),
            parties: vec![
                party("1001", PartyState::Joined, Some(0)),
                party("1002", PartyState::Held, Some(1)),
                party("1003", PartyState::Ringing, None),
            ],
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(ok.by_source(1).map(|p| p.number.as_str()), Some("1002"));
        let mut r = ok.clone();
        r.host = "1003".into();
        assert_eq!(r.check(), Err(RosterError::HostNotPresent));
        let mut r = ok.clone();
        r.parties[1].number = "1001".into();
        assert_eq!(r.check(), Err(RosterError::DuplicateNumber));
        let mut r = ok.clone();
        r.parties[1].source = Some(0);
        assert_eq!(r.check(), Err(RosterError::DuplicateSource));
        let mut r = ok;
        for n in 0..MAX_PARTIES {
            r.parties
                .push(party(&format!("2{n:03}"), PartyState::Ringing, None));
        }
        assert_eq!(r.check(), Err(RosterError::TooManyParties));
    }
}
