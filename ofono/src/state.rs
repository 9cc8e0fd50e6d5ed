//! The mapping between phoned's calls and oFono's, in both directions: phoned's call
//! states as oFono's `VoiceCall.State`, oFono's states back as phoned's, why a call ended
//! as oFono's `DisconnectReason`, and what oFono's call methods ask of phoned.

use std::fmt;
use std::str::FromStr;

use phoned_proto::call::{CallState, EndReason};

/// `org.ofono.VoiceCall.State` (oFono's `doc/voicecall-api.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfonoState {
    Active,
    Held,
    /// Outgoing, not yet ringing at the other end.
    Dialing,
    /// Outgoing, the other end rings.
    Alerting,
    Incoming,
    /// Incoming while another call is in progress (call waiting).
    Waiting,
    Disconnected,
}

impl OfonoState {
    pub const ALL: [OfonoState; 7] = [
        OfonoState::Active,
        OfonoState::Held,
        OfonoState::Dialing,
        OfonoState::Alerting,
        OfonoState::Incoming,
        OfonoState::Waiting,
        OfonoState::Disconnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfonoState::Active => "active",
            OfonoState::Held => "held",
            OfonoState::Dialing => "dialing",
            OfonoState::Alerting => "alerting",
            OfonoState::Incoming => "incoming",
            OfonoState::Waiting => "waiting",
            OfonoState::Disconnected => "disconnected",
        }
    }

    /// An incoming call that can be answered (`Answer`) or turned down (`Hangup`).
    pub fn is_ringing_here(self) -> bool {
        matches!(self, OfonoState::Incoming | OfonoState::Waiting)
    }
}

impl fmt::Display for OfonoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is none of oFono's call states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown oFono call state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for OfonoState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        OfonoState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownState(s.chars().take(32).collect()))
    }
}

/// How an incoming call that comes while another is in progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Waiting {
    /// As oFono shows it: `waiting`.
    #[default]
    Waiting,
    /// As `incoming`, for clients that do not know `waiting` (GNOME Calls since 43 parses
    /// no such state, and would show the call as an outgoing one).
    Incoming,
}

/// phoned → oFono: the oFono state of a call in phoned's `state`. `others_in_progress`:
/// another call of this line is dialing, ringing out, active or held (it makes an incoming
/// call a waiting one).
pub fn to_ofono(state: CallState, others_in_progress: bool, waiting: Waiting) -> OfonoState {
    match state {
        CallState::Dialing => OfonoState::Dialing,
        CallState::Ringing => OfonoState::Alerting,
        CallState::Incoming if others_in_progress && waiting == Waiting::Waiting => {
            OfonoState::Waiting
        }
        CallState::Incoming => OfonoState::Incoming,
        // phoned says `waiting` itself (a daemon of protocol 3); the same choice applies.
        CallState::Waiting if waiting == Waiting::Waiting => OfonoState::Waiting,
        CallState::Waiting => OfonoState::Incoming,
        CallState::Active => OfonoState::Active,
        CallState::Held => OfonoState::Held,
        CallState::Ended => OfonoState::Disconnected,
    }
}

/// oFono → phoned: the phoned state an oFono state stands for.
pub fn to_phoned(state: OfonoState) -> CallState {
    match state {
        OfonoState::Dialing => CallState::Dialing,
        OfonoState::Alerting => CallState::Ringing,
        OfonoState::Incoming => CallState::Incoming,
        OfonoState::Waiting => CallState::Waiting,
        OfonoState::Active => CallState::Active,
        OfonoState::Held => CallState::Held,
        OfonoState::Disconnected => CallState::Ended,
    }
}

/// Whether a call in phoned's `state` makes an incoming call a waiting one.
pub fn in_progress(state: CallState) -> bool {
    matches!(
        state,
        CallState::Dialing | CallState::Ringing | CallState::Active | CallState::Held
    )
}

/// `org.ofono.VoiceCall.DisconnectReason`: who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// This side (the bridge's client asked for it).
    Local,
    /// The other side, or the other side's answer (busy, rejected, no answer).
    Remote,
    /// The network: a link died, the number is unknown or offline.
    Network,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Local => "local",
            DisconnectReason::Remote => "remote",
            DisconnectReason::Network => "network",
        }
    }
}

/// Why a call ended, as oFono says it. `ended_here`: the bridge asked phoned to end it
/// (oFono's `Hangup`, `HangupAll`, `ReleaseAndAnswer`); phoned's reasons do not tell which
/// side hung up, so a hangup nobody asked the bridge for is the other side's.
pub fn disconnect_reason(reason: Option<EndReason>, ended_here: bool) -> DisconnectReason {
    if ended_here {
        return DisconnectReason::Local;
    }
    match reason {
        Some(EndReason::Network | EndReason::Offline | EndReason::UnknownNumber) => {
            DisconnectReason::Network
        }
        Some(
            EndReason::Hangup
            | EndReason::Busy
            | EndReason::Rejected
            | EndReason::NoAnswer
            | EndReason::AnsweredElsewhere
            // A conference's host took this line out.
            | EndReason::Removed,
        )
        | None => DisconnectReason::Remote,
        // This line merged the call into a conference.
        Some(EndReason::Merged) => DisconnectReason::Local,
    }
}

/// What phoned is asked to do for an oFono request (`org.phoned.Phone1.Call` methods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneOp {
    Answer,
    /// Declines an incoming call (`Reject("rejected")`).
    Reject,
    Hangup,
    Hold,
    Resume,
    SendDtmf(String),
}

/// oFono's `VoiceCall.Answer` on a call the client sees in `state`: oFono answers only an
/// incoming (or waiting) call and fails otherwise.
pub fn answer(state: OfonoState) -> Option<PhoneOp> {
    state.is_ringing_here().then_some(PhoneOp::Answer)
}

/// oFono's `VoiceCall.Hangup`: an incoming or waiting call is turned down, any other call
/// ended; a call already disconnected has nothing to hang up.
pub fn hangup(state: OfonoState) -> Option<PhoneOp> {
    match state {
        OfonoState::Incoming | OfonoState::Waiting => Some(PhoneOp::Reject),
        OfonoState::Disconnected => None,
        OfonoState::Active | OfonoState::Held | OfonoState::Dialing | OfonoState::Alerting => {
            Some(PhoneOp::Hangup)
        }
    }
}

/// oFono's `SendTones` string as phoned's DTMF digits, in pieces phoned takes (at most 32
/// digits each): 0-9, `*`, `#`, A-D (a-d too, as oFono accepts them). oFono's pause
/// characters (`p`, `w`) have no equivalent: `None`, as for any other character or an
/// empty string.
pub fn dtmf_pieces(tones: &str) -> Option<Vec<String>> {
    if tones.is_empty() {
        return None;
    }
    let upper: String = tones
        .chars()
        .map(|c| match c {
            'a'..='d' => c.to_ascii_uppercase(),
            _ => c,
        })
        .collect();
    let digits: Vec<char> = upper.chars().collect();
    let pieces: Vec<String> = digits
        .chunks(32)
        .map(|c| c.iter().collect::<String>())
        .collect();
    pieces
        .iter()
        .all(|p| phoned_proto::call::check_dtmf(p))
        .then_some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONED: [CallState; 7] = [
        CallState::Dialing,
        CallState::Ringing,
        CallState::Incoming,
        CallState::Waiting,
        CallState::Active,
        CallState::Held,
        CallState::Ended,
    ];

    #[test]
    fn phoned_states_as_ofono_states() {
        use CallState as P;
        use OfonoState as O;
        let w = Waiting::Waiting;
        let table = [
            (P::Dialing, false, O::Dialing),
            (P::Ringing, false, O::Alerting),
            (P::Incoming, false, O::Incoming),
            (P::Incoming, true, O::Waiting),
            (P::Active, false, O::Active),
            (P::Active, true, O::Active),
            (P::Held, false, O::Held),
            (P::Held, true, O::Held),
            (P::Ended, true, O::Disconnected),
        ];
        for (phoned, others, ofono) in table {
            assert_eq!(
                to_ofono(phoned, others, w),
                ofono,
                "{phoned} others={others}"
            );
        }
    }

    #[test]
    fn waiting_can_be_shown_as_incoming() {
        assert_eq!(
            to_ofono(CallState::Incoming, true, Waiting::Incoming),
            OfonoState::Incoming
        );
        assert_eq!(
            to_ofono(CallState::Held, true, Waiting::Incoming),
            OfonoState::Held
        );
    }

    #[test]
    fn ofono_states_read_back_as_the_phoned_state_they_came_from() {
        for state in PHONED {
            for others in [false, true] {
                for waiting in [Waiting::Waiting, Waiting::Incoming] {
                    // Ringing here reads back as ringing here: `waiting` and `incoming`
                    // are one call shown two ways (the client's choice and its others).
                    let ringing_here = |s| match s {
                        CallState::Waiting => CallState::Incoming,
                        s => s,
                    };
                    assert_eq!(
                        ringing_here(to_phoned(to_ofono(state, others, waiting))),
                        ringing_here(state)
                    );
                }
            }
        }
        // Every oFono state names a phoned one.
        assert_eq!(to_phoned(OfonoState::Waiting), CallState::Waiting);
        assert_eq!(to_phoned(OfonoState::Alerting), CallState::Ringing);
    }

    #[test]
    fn ofono_state_strings_round_trip() {
        for s in OfonoState::ALL {
            assert_eq!(s.as_str().parse::<OfonoState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("ringing".parse::<OfonoState>().is_err());
        assert!("Active".parse::<OfonoState>().is_err());
    }

    #[test]
    fn what_makes_a_call_waiting() {
        let busy: Vec<_> = PHONED.into_iter().filter(|s| in_progress(*s)).collect();
        assert_eq!(
            busy,
            [
                CallState::Dialing,
                CallState::Ringing,
                CallState::Active,
                CallState::Held
            ]
        );
    }

    #[test]
    fn ofono_requests_as_phoned_operations() {
        use OfonoState as O;
        assert_eq!(answer(O::Incoming), Some(PhoneOp::Answer));
        assert_eq!(answer(O::Waiting), Some(PhoneOp::Answer));
        for s in [O::Active, O::Held, O::Dialing, O::Alerting, O::Disconnected] {
            assert_eq!(answer(s), None, "{s}");
        }
        assert_eq!(hangup(O::Incoming), Some(PhoneOp::Reject));
        assert_eq!(hangup(O::Waiting), Some(PhoneOp::Reject));
        for s in [O::Active, O::Held, O::Dialing, O::Alerting] {
            assert_eq!(hangup(s), Some(PhoneOp::Hangup), "{s}");
        }
        assert_eq!(hangup(O::Disconnected), None);
    }

    #[test]
    fn disconnect_reasons() {
        use DisconnectReason as D;
        assert_eq!(disconnect_reason(Some(EndReason::Hangup), true), D::Local);
        assert_eq!(disconnect_reason(Some(EndReason::Rejected), true), D::Local);
        assert_eq!(disconnect_reason(Some(EndReason::Hangup), false), D::Remote);
        assert_eq!(disconnect_reason(Some(EndReason::Busy), false), D::Remote);
        assert_eq!(
            disconnect_reason(Some(EndReason::NoAnswer), false),
            D::Remote
        );
        assert_eq!(
            disconnect_reason(Some(EndReason::Network), false),
            D::Network
        );
        assert_eq!(
            disconnect_reason(Some(EndReason::Offline), false),
            D::Network
        );
        assert_eq!(
            disconnect_reason(Some(EndReason::UnknownNumber), false),
            D::Network
        );
        assert_eq!(disconnect_reason(None, false), D::Remote);
        assert_eq!(D::Local.as_str(), "local");
    }

    #[test]
    fn tones_become_dtmf_pieces() {
        assert_eq!(dtmf_pieces("1"), Some(vec!["1".to_owned()]));
        assert_eq!(dtmf_pieces("12#*abcd"), Some(vec!["12#*ABCD".to_owned()]));
        let long = "1".repeat(70);
        assert_eq!(
            dtmf_pieces(&long).map(|p| p.iter().map(String::len).collect::<Vec<_>>()),
            Some(vec![32, 32, 6])
        );
        assert_eq!(dtmf_pieces(""), None);
        assert_eq!(dtmf_pieces("1p2"), None);
        assert_eq!(dtmf_pieces("1e"), None);
        assert_eq!(dtmf_pieces("ü"), None);
    }
}
