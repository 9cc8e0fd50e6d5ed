//! Calls between relays, sans-IO: what one relay link leg says to the other relay, and
//! what the other relay's messages ask of the call router here.
//!
//! A call between a device on relay A and one on relay B is one call on each relay, with
//! the same id, and on each a *leg*: a pseudo-session that stands for the party on the
//! other relay. On A (the caller's, the *origin*) the leg is the callee: it rings, answers,
//! holds, hangs up as the callee's devices on B do. On B (the *target*) the leg is the
//! caller. Each relay's call router ([`crate::calls::Calls`]) treats its leg like a device
//! session, so the call logic is the same as for a call on one relay; a [`Leg`] turns the
//! events the router sends the leg into [`PeerMsg`]s for the other relay, and the other
//! relay's messages into requests ([`Op`]) of the leg.
//!
//! One bidirectional QUIC stream of the relay link carries one call's messages, framed as
//! the devices' control stream is (a length prefix, a postcard body); the call's media
//! goes as QUIC datagrams on the same link, unchanged (a media datagram names its call).

use phoned_proto::Event;
use phoned_proto::call::{CallId, CallPhase, EndReason};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::router::Op;
use crate::store::AccountId;

/// Longest number, name or DTMF string a relay link message carries (bytes).
pub const MAX_TEXT: usize = 256;

/// One message on a relay link's call stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Origin → target, the stream's first message: ring `callee`'s devices there for
    /// call `call` from `caller`.
    Ring {
        call: CallId,
        caller: AccountId,
        from_number: String,
        from_name: String,
        callee: AccountId,
        callee_number: String,
        callee_name: String,
    },
    /// Target → origin: one of the callee's devices answered.
    Answered,
    /// Either way: the call ended on the sender's side, for this reason.
    Ended(EndReason),
    /// Either way: the sender's party put the call on hold (`true`) or resumed it.
    Hold(bool),
    /// Either way: DTMF digits from the sender's party.
    Dtmf(String),
}

/// A relay link message that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegError {
    #[error("relay link: undecodable message: {0}")]
    Decode(String),
    #[error("relay link: {0} longer than {MAX_TEXT} bytes")]
    TooLong(&'static str),
    #[error("relay link: unexpected {0} on this side of a call")]
    Unexpected(&'static str),
}

impl PeerMsg {
    /// Decodes one frame body strictly, and checks its sizes.
    pub fn decode(body: &[u8]) -> Result<PeerMsg, LegError> {
        let msg: PeerMsg =
            phoned_proto::codec::decode(body).map_err(|e| LegError::Decode(e.to_string()))?;
        let texts: Vec<(&'static str, &str)> = match &msg {
            PeerMsg::Ring {
                from_number,
                from_name,
                callee_number,
                callee_name,
                ..
            } => vec![
                ("a number", from_number),
                ("a name", from_name),
                ("a number", callee_number),
                ("a name", callee_name),
            ],
            PeerMsg::Dtmf(d) => vec![("DTMF", d)],
            _ => Vec::new(),
        };
        match texts.into_iter().find(|(_, t)| t.len() > MAX_TEXT) {
            Some((what, _)) => Err(LegError::TooLong(what)),
            None => Ok(msg),
        }
    }

    /// Appends the message, framed.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Every field is bounded far below a frame.
        let _ = phoned_proto::codec::encode_framed(out, self);
    }
}

/// Which party of the call the leg stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// On the caller's relay, standing for the callee on the other relay.
    Origin {
        caller: AccountId,
        callee: AccountId,
        callee_number: String,
        callee_name: String,
    },
    /// On the callee's relay, standing for the caller.
    Target,
}

/// One leg of a call between relays.
#[derive(Debug)]
pub struct Leg {
    role: Role,
    /// The call, once known (the origin learns it from the router's ring).
    call: Option<CallId>,
    answered: bool,
    /// Hold of the party on this relay, as last told to the other relay.
    local_held: bool,
    /// The call ended (here or there): the leg is done.
    ended: bool,
}

impl Leg {
    /// The leg standing for `callee` (on another relay) of a call `caller` places here.
    pub fn origin(caller: AccountId, callee: AccountId, number: String, name: String) -> Leg {
        Leg::new(
            Role::Origin {
                caller,
                callee,
                callee_number: number,
                callee_name: name,
            },
            None,
        )
    }

    /// The leg standing for the caller of `call`, rung by another relay.
    pub fn target(call: CallId) -> Leg {
        Leg::new(Role::Target, Some(call))
    }

    fn new(role: Role, call: Option<CallId>) -> Leg {
        Leg {
            role,
            call,
            answered: false,
            local_held: false,
            ended: false,
        }
    }

    pub fn call(&self) -> Option<CallId> {
        self.call
    }

    /// The call has ended: nothing more goes either way.
    pub fn done(&self) -> bool {
        self.ended
    }

    /// The router sent the leg `event`: what to tell the other relay, if anything.
    pub fn event(&mut self, event: &Event) -> Option<PeerMsg> {
        if self.ended {
            return None;
        }
        if let (
            Event::CallIncoming {
                call,
                from_number,
                from_name,
            },
            Role::Origin {
                caller,
                callee,
                callee_number,
                callee_name,
            },
            None,
        ) = (event, &self.role, self.call)
        {
            self.call = Some(*call);
            return Some(PeerMsg::Ring {
                call: *call,
                caller: *caller,
                from_number: from_number.clone(),
                from_name: from_name.clone(),
                callee: *callee,
                callee_number: callee_number.clone(),
                callee_name: callee_name.clone(),
            });
        }
        let mine = |c: &CallId| Some(*c) == self.call;
        match event {
            Event::CallState { call, phase } if mine(call) => match phase {
                CallPhase::Ended(reason) => {
                    self.ended = true;
                    Some(PeerMsg::Ended(*reason))
                }
                CallPhase::Active { .. } | CallPhase::Held { .. } if !self.answered => {
                    self.answered = true;
                    (self.role == Role::Target).then_some(PeerMsg::Answered)
                }
                _ => None,
            },
            // `by_peer` is the hold of the party on this relay, as the leg sees it.
            Event::CallHold { call, by_peer, .. } if mine(call) => (self.local_held != *by_peer)
                .then(|| {
                    self.local_held = *by_peer;
                    PeerMsg::Hold(*by_peer)
                }),
            Event::CallDtmf { call, digits } if mine(call) => Some(PeerMsg::Dtmf(digits.clone())),
            _ => None,
        }
    }

    /// The other relay sent `msg`: the request the leg makes of the router here.
    pub(crate) fn message(&mut self, msg: PeerMsg) -> Result<Option<Op>, LegError> {
        let Some(call) = self.call else {
            return Err(LegError::Unexpected("message before the ring"));
        };
        if self.ended {
            return Ok(None);
        }
        Ok(Some(match msg {
            PeerMsg::Ring { .. } => return Err(LegError::Unexpected("second ring")),
            PeerMsg::Answered if self.role == Role::Target => {
                return Err(LegError::Unexpected("answer"));
            }
            PeerMsg::Answered if self.answered => return Ok(None),
            PeerMsg::Answered => Op::Answer(call),
            PeerMsg::Ended(reason) => {
                self.ended = true;
                Op::Ended(call, reason)
            }
            PeerMsg::Hold(held) => Op::Hold(call, held),
            PeerMsg::Dtmf(digits) => Op::Dtmf(call, digits),
        }))
    }
}

#[cfg(test)]
mod tests;
