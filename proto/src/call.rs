//! Call signalling values shared by the relay and devices: call ids, phases and the
//! reasons a call ends. Their string forms are public interface (D-Bus `State`/`Reason`).

use serde::{Deserialize, Serialize};

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
    /// One side has put the call on hold; no media flows.
    Held {
        by_me: bool,
    },
    Ended(EndReason),
}

/// Why a call ended (or never started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndReason {
    /// The callee cannot take another call (or is in do-not-disturb).
    Busy,
    /// The callee declined.
    Rejected,
    /// Nobody answered before the ring timeout.
    NoAnswer,
    /// The number exists but none of its devices is online.
    Offline,
    /// No account has that number.
    UnknownNumber,
    /// A party hung up.
    Hangup,
    /// A party's connection died.
    Network,
    /// Another device of the same account answered (for the devices that stop ringing).
    AnsweredElsewhere,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Busy => "busy",
            EndReason::Rejected => "rejected",
            EndReason::NoAnswer => "no-answer",
            EndReason::Offline => "offline",
            EndReason::UnknownNumber => "unknown-number",
            EndReason::Hangup => "hangup",
            EndReason::Network => "network",
            EndReason::AnsweredElsewhere => "answered-elsewhere",
        }
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
                "network"
            ]
        );
    }
}
