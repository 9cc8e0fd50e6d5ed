//! Call values shared by the relay, devices and clients: call ids, phases, the reasons a
//! call ends, and the states, directions and results the daemon shows. Their string forms
//! are public interface (D-Bus `Call.State`/`Reason`/`Direction`, the history, JSON).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::names::{UnknownName, string_enum};

/// A call, numbered by the relay.
pub type CallId = u64;

/// Where a call is, as seen by one party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallPhase {
    /// The callee's devices are ringing.
    Ringing,
    /// Both sides talk. `source` is this party's media source id in the call.
    Active {
        source: u32,
    },
    /// One side has put the call on hold; no media flows. `by_me` when this party holds
    /// it (the other may too: protocol 3 says so in [`crate::Event::CallHold`]).
    Held {
        by_me: bool,
    },
    Ended(EndReason),
}

string_enum! {
    /// Why a call ended (or never started).
    #[derive(Serialize, Deserialize)]
    pub enum EndReason as "end reason" {
        /// The callee cannot take another call (or is in do-not-disturb).
        Busy = "busy",
        /// The callee declined.
        Rejected = "rejected",
        /// Nobody answered before the ring timeout.
        NoAnswer = "no-answer",
        /// The number exists but none of its devices is online.
        Offline = "offline",
        /// No account has that number.
        UnknownNumber = "unknown-number",
        /// A party hung up.
        Hangup = "hangup",
        /// A party's connection died.
        Network = "network",
        /// Another device of the same account answered (for the devices that stop ringing).
        AnsweredElsewhere = "answered-elsewhere",
        /// (Protocol 3.) The conference's host removed this party.
        Removed = "removed",
        /// (Protocol 3.) The call became part of a conference (a merge on this device:
        /// the conference goes on as the other call).
        Merged = "merged",
    }
}

string_enum! {
    /// A call's state as the daemon shows it (D-Bus `Call.State`).
    pub enum CallState as "call state" {
        /// Outgoing, before the relay has placed it.
        Dialing = "dialing",
        /// Outgoing, the other side rings.
        Ringing = "ringing",
        /// Incoming, ringing here.
        Incoming = "incoming",
        /// Incoming while this device has another call (active or held): call waiting.
        /// Answering it puts the active call on hold.
        Waiting = "waiting",
        /// Answered and not on hold by this side (the other side may hold it:
        /// `Call.RemoteHeld`).
        Active = "active",
        /// Put on hold by this side (the other side may hold it too).
        Held = "held",
        Ended = "ended",
    }
}

string_enum! {
    /// Who placed a call (D-Bus `Call.Direction`, the history's direction).
    pub enum CallDirection as "call direction" {
        Incoming = "incoming",
        Outgoing = "outgoing",
    }
}

/// What a finished call came to, as the history shows it: `answered`, or the reason a
/// call that never became active ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallResult {
    Answered,
    NotAnswered(EndReason),
}

impl CallResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Answered => "answered",
            CallResult::NotAnswered(reason) => reason.as_str(),
        }
    }
}

impl FromStr for CallResult {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "answered" => Ok(CallResult::Answered),
            other => other
                .parse()
                .map(CallResult::NotAnswered)
                .map_err(|_| UnknownName::new("call result", s)),
        }
    }
}

impl fmt::Display for CallResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DTMF digits accepted in one request: 0-9, *, #, A-D.
pub fn check_dtmf(digits: &str) -> bool {
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_round_trips;

    #[test]
    fn dtmf_digits() {
        assert!(check_dtmf("123*#ABCD"));
        assert!(!check_dtmf(""));
        assert!(!check_dtmf("12e"));
        assert!(!check_dtmf(&"1".repeat(33)));
    }

    #[test]
    fn reasons_have_design_names() {
        let names: Vec<_> = [
            EndReason::Busy,
            EndReason::Rejected,
            EndReason::NoAnswer,
            EndReason::Offline,
            EndReason::UnknownNumber,
            EndReason::Hangup,
            EndReason::Network,
            EndReason::AnsweredElsewhere,
            EndReason::Removed,
            EndReason::Merged,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "busy",
                "rejected",
                "no-answer",
                "offline",
                "unknown-number",
                "hangup",
                "network",
                "answered-elsewhere",
                "removed",
                "merged"
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        assert_round_trips!(EndReason);
        assert_round_trips!(CallState);
        assert_round_trips!(CallDirection);
    }

    #[test]
    fn states_and_directions_have_design_names() {
        let states: Vec<_> = CallState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            states,
            [
                "dialing", "ringing", "incoming", "waiting", "active", "held", "ended"
            ]
        );
        assert_eq!(CallDirection::Incoming.as_str(), "incoming");
        assert_eq!(CallDirection::Outgoing.as_str(), "outgoing");
    }

    #[test]
    fn results_are_answered_or_the_end_reason() {
        assert_eq!(CallResult::Answered.as_str(), "answered");
        for r in EndReason::ALL {
            let result = CallResult::NotAnswered(*r);
            assert_eq!(result.as_str(), r.as_str());
            assert_eq!(result.to_string().parse::<CallResult>(), Ok(result));
        }
        assert_eq!("answered".parse::<CallResult>(), Ok(CallResult::Answered));
        assert!("ringing".parse::<CallResult>().is_err());
    }
}
