//! The daemon's call engine, sans-IO: requests from the user (D-Bus), events from the
//! relay and the time go in; requests to the relay, D-Bus object changes, ringing, media
//! start/stop and history records come out. The async driver around it only moves them.

use std::collections::{BTreeMap, BTreeSet};

use phoned_proto::Request;
use phoned_proto::call::{CallDirection, CallId, CallPhase, CallResult, CallState, EndReason};
use phoned_proto::state::AutoAnswer;

pub use conference::ConferenceInfo;

mod conference;

/// The number of a call's D-Bus object, `/org/phoned/Phone1/Call/<n>`.
pub type Local = u32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub local: Local,
    pub relay: Option<CallId>,
    pub direction: CallDirection,
    pub state: CallState,
    /// Why the call ended (`None` while it goes on); `Network` also when this side lost
    /// the link.
    pub reason: Option<EndReason>,
    pub remote_number: String,
    pub remote_name: String,
    pub muted: bool,
    /// When the call was created (Unix ms).
    pub created_ms: u64,
    /// When it was answered (Unix ms), if it was.
    pub answered_ms: Option<u64>,
    /// Held by this side: the state is `held` (whatever the other side does).
    pub held_by_me: bool,
    /// Held by the other side (D-Bus `RemoteHeld`): the state stays `active` unless this
    /// side holds it too. No media flows while either side holds.
    pub remote_held: bool,
    /// The conference this call is this device's place in, if it is one.
    pub conference: Option<ConferenceInfo>,
}

/// A finished call, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub number: String,
    pub name: String,
    pub direction: CallDirection,
    /// Answered, or the end reason of a call that never became active.
    pub result: CallResult,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// An incoming call nobody here answered.
    pub missed: bool,
}

/// How this device treats incoming calls right now.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub do_not_disturb: bool,
    pub auto_answer: AutoAnswer,
    /// The caller is in the contacts.
    pub known_caller: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this request to the relay. `Dial` answers come back as [`Engine::placed`].
    Send(Local, Request),
    /// A call object appeared.
    Added(Local),
    /// Properties of a call changed.
    Changed(Local),
    /// The call object goes away, with the end reason.
    Removed(Local, EndReason),
    /// Ring: signal `IncomingCall` and show a notification.
    Ring(Local),
    /// Stop ringing: close the notification.
    StopRinging(Local),
    /// Start sending and receiving media for the call as `source`.
    StartMedia {
        local: Local,
        call: CallId,
        source: u32,
    },
    StopMedia(Local),
    /// The call is on hold: stop sending, play silence, keep the devices open.
    PauseMedia(Local),
    /// The far side sent DTMF digits.
    DtmfReceived(Local, String),
    /// A missed incoming call: notify.
    Missed(Local),
    Record(Record),
    /// The call's conference (its roster, or that it is one) changed.
    Conference(Local),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    NoSuchCall,
    /// The call's state does not allow this.
    InvalidState(CallState),
    /// `Resume` of a call only the other side holds: only they can resume it.
    HeldByOtherSide,
}

/// Relay events for calls not known yet are kept this long (a `Dial`'s first events can
/// overtake its `CallPlaced` answer on their way through the daemon).
const MAX_ORPHANS: usize = 32;

#[derive(Debug, Clone)]
enum Orphan {
    Phase(CallPhase, u64),
    Dtmf(String),
    Hold(bool, bool),
}

/// An incoming call that rings here (loud, or as the call-waiting tone).
fn rings(state: CallState) -> bool {
    matches!(state, CallState::Incoming | CallState::Waiting)
}

/// The state of an answered call: `held` when this side holds it, else `active`.
fn held_state(by_me: bool) -> CallState {
    if by_me {
        CallState::Held
    } else {
        CallState::Active
    }
}

#[derive(Debug, Default)]
pub struct Engine {
    calls: BTreeMap<Local, Call>,
    next: Local,
    orphans: Vec<(CallId, Orphan)>,
    /// Dials hung up before the relay placed them: when it does, they are hung up there
    /// too (else the callee could answer a call nobody is on).
    abandoned: BTreeSet<Local>,
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            calls: BTreeMap::new(),
            next: 1,
            orphans: Vec::new(),
            abandoned: BTreeSet::new(),
        }
    }

    pub fn get(&self, local: Local) -> Option<&Call> {
        self.calls.get(&local)
    }

    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    fn by_relay(&self, call: CallId) -> Option<Local> {
        self.calls
            .values()
            .find(|c| c.relay == Some(call))
            .map(|c| c.local)
    }

    fn insert(&mut self, call: Call) -> Local {
        let local = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.calls.insert(local, Call { local, ..call });
        local
    }

    /// The user dials `number` (already resolved from a contact name if need be).
    pub fn dial(&mut self, number: String, name: String, now_ms: u64) -> (Local, Vec<Output>) {
        let local = self.insert(Call {
            local: 0,
            relay: None,
            direction: CallDirection::Outgoing,
            state: CallState::Dialing,
            reason: None,
            remote_number: number.clone(),
            remote_name: name,
            muted: false,
            created_ms: now_ms,
            answered_ms: None,
            held_by_me: false,
            remote_held: false,
            conference: None,
        });
        (
            local,
            vec![
                Output::Added(local),
                Output::Send(local, Request::Dial { to: number }),
            ],
        )
    }

    /// The relay placed our dial as `call`.
    pub fn placed(&mut self, local: Local, call: CallId) -> Vec<Output> {
        let Some(c) = self.calls.get_mut(&local) else {
            self.orphans.retain(|(id, _)| *id != call);
            if self.abandoned.remove(&local) {
                return vec![Output::Send(local, Request::Hangup { call })];
            }
            return Vec::new();
        };
        c.relay = Some(call);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.orphans)
            .into_iter()
            .partition(|(id, _)| *id == call);
        self.orphans = rest;
        let mut out = Vec::new();
        for (_, orphan) in mine {
            out.extend(match orphan {
                Orphan::Phase(phase, at) => self.phase(call, phase, at),
                Orphan::Dtmf(digits) => self.dtmf_received(call, digits),
                Orphan::Hold(by_me, by_peer) => self.hold_state(call, by_me, by_peer),
            });
        }
        out
    }

    fn keep_orphan(&mut self, call: CallId, orphan: Orphan) {
        if self.orphans.len() >= MAX_ORPHANS {
            self.orphans.remove(0);
        }
        self.orphans.push((call, orphan));
    }

    /// A request for `local` failed (the link dropped, or the relay refused).
    pub fn request_failed(&mut self, local: Local, now_ms: u64) -> Vec<Output> {
        self.end(local, EndReason::Network, now_ms)
    }

    /// The relay says someone calls.
    pub fn incoming(
        &mut self,
        call: CallId,
        number: String,
        name: String,
        policy: Policy,
        now_ms: u64,
    ) -> Vec<Output> {
        // A call while another is answered (talking or held) waits: it is offered with
        // the call-waiting tone, never auto-answered.
        let waiting = self.in_call(None);
        let local = self.insert(Call {
            local: 0,
            relay: Some(call),
            direction: CallDirection::Incoming,
            state: if waiting {
                CallState::Waiting
            } else {
                CallState::Incoming
            },
            reason: None,
            remote_number: number,
            remote_name: name,
            muted: false,
            created_ms: now_ms,
            answered_ms: None,
            held_by_me: false,
            remote_held: false,
            conference: None,
        });
        let mut out = vec![Output::Added(local)];
        if policy.do_not_disturb {
            out.push(Output::Send(
                local,
                Request::Reject {
                    call,
                    reason: EndReason::Busy,
                },
            ));
            return out;
        }
        let auto = match policy.auto_answer {
            AutoAnswer::Off => false,
            AutoAnswer::All => true,
            AutoAnswer::Contacts => policy.known_caller,
        };
        if auto && !waiting {
            out.push(Output::Send(local, Request::Answer { call }));
        } else {
            out.push(Output::Ring(local));
        }
        out
    }

    /// The relay reports a new phase of `call`.
    pub fn phase(&mut self, call: CallId, phase: CallPhase, now_ms: u64) -> Vec<Output> {
        let Some(local) = self.by_relay(call) else {
            // Our own dial whose `CallPlaced` has not been seen yet (an ended call's late
            // events are harmless here: nobody claims them).
            self.keep_orphan(call, Orphan::Phase(phase, now_ms));
            return Vec::new();
        };
        let Some(c) = self.calls.get_mut(&local) else {
            return Vec::new();
        };
        let was = c.state;
        let mut out = Vec::new();
        // Whatever the relay says next, a call that is no longer incoming no longer rings
        // here (first: the ring's device closes before the call's media opens).
        if rings(was) && !matches!(phase, CallPhase::Ended(_)) {
            out.push(Output::StopRinging(local));
        }
        match phase {
            CallPhase::Ringing => {
                c.state = CallState::Ringing;
                c.held_by_me = false;
                c.remote_held = false;
            }
            CallPhase::Active { source } => {
                c.state = CallState::Active;
                c.held_by_me = false;
                c.remote_held = false;
                if c.answered_ms.is_none() {
                    c.answered_ms = Some(now_ms);
                }
                out.push(Output::StartMedia {
                    local,
                    call,
                    source,
                });
            }
            // "Held by me" says nothing of the other side (protocol 3's `CallHold` does):
            // what was known of it stands. "Held by the other side" means this side does
            // not hold it: the call stays active, held remotely.
            CallPhase::Held { by_me } => {
                c.held_by_me = by_me;
                if !by_me {
                    c.remote_held = true;
                }
                c.state = held_state(by_me);
                out.push(Output::PauseMedia(local));
            }
            CallPhase::Ended(reason) => return self.end(local, reason, now_ms),
        }
        out.push(Output::Changed(local));
        out.extend(self.settle_waiting());
        out
    }

    /// The relay says who holds `call` (protocol 3, right after the `CallState` that
    /// paused or resumed its media): this side, the other, both or neither.
    pub fn hold_state(&mut self, call: CallId, by_me: bool, by_peer: bool) -> Vec<Output> {
        let Some(local) = self.by_relay(call) else {
            self.keep_orphan(call, Orphan::Hold(by_me, by_peer));
            return Vec::new();
        };
        let Some(c) = self.calls.get_mut(&local) else {
            return Vec::new();
        };
        // Only an answered call is held; anything else is a stale or confused event.
        if !matches!(c.state, CallState::Active | CallState::Held) {
            return Vec::new();
        }
        let state = held_state(by_me);
        if (c.held_by_me, c.remote_held, c.state) == (by_me, by_peer, state) {
            return Vec::new();
        }
        c.held_by_me = by_me;
        c.remote_held = by_peer;
        c.state = state;
        vec![Output::Changed(local)]
    }

    /// Whether a call other than `except` is answered (talking or held, by either side).
    fn in_call(&self, except: Option<Local>) -> bool {
        self.calls.values().any(|c| {
            Some(c.local) != except && matches!(c.state, CallState::Active | CallState::Held)
        })
    }

    /// An unanswered incoming call is `waiting` while another call is answered and
    /// `incoming` otherwise: it changes when that other call is answered or ends.
    fn settle_waiting(&mut self) -> Vec<Output> {
        let ringing: Vec<Local> = self
            .calls
            .values()
            .filter(|c| rings(c.state))
            .map(|c| c.local)
            .collect();
        let mut out = Vec::new();
        for local in ringing {
            let state = if self.in_call(Some(local)) {
                CallState::Waiting
            } else {
                CallState::Incoming
            };
            if let Some(c) = self.calls.get_mut(&local)
                && c.state != state
            {
                c.state = state;
                out.push(Output::Changed(local));
            }
        }
        out
    }

    pub fn dtmf_received(&mut self, call: CallId, digits: String) -> Vec<Output> {
        match self.by_relay(call) {
            Some(local) => vec![Output::DtmfReceived(local, digits)],
            None => {
                self.keep_orphan(call, Orphan::Dtmf(digits));
                Vec::new()
            }
        }
    }

    fn relay_id(&self, local: Local) -> Result<(CallId, CallState), EngineError> {
        let c = self.calls.get(&local).ok_or(EngineError::NoSuchCall)?;
        let id = c.relay.ok_or(EngineError::InvalidState(c.state))?;
        Ok((id, c.state))
    }

    /// The user answers an incoming or waiting call. Another active call is put on hold
    /// first (by this side).
    pub fn answer(&mut self, local: Local) -> Result<Vec<Output>, EngineError> {
        let (call, state) = self.relay_id(local)?;
        if !rings(state) {
            return Err(EngineError::InvalidState(state));
        }
        let mut out = self.hold_others(local);
        out.push(Output::Send(local, Request::Answer { call }));
        Ok(out)
    }

    /// Puts every active call but `local` on hold: one call talks at a time. A call the
    /// other side holds is held here too, or it would talk again when they resume.
    fn hold_others(&self, local: Local) -> Vec<Output> {
        self.calls
            .values()
            .filter(|c| c.local != local && c.state == CallState::Active)
            .filter_map(|c| {
                c.relay.map(|id| {
                    Output::Send(
                        c.local,
                        Request::Hold {
                            call: id,
                            held: true,
                        },
                    )
                })
            })
            .collect()
    }

    pub fn reject(&mut self, local: Local, busy: bool) -> Result<Vec<Output>, EngineError> {
        let (call, state) = self.relay_id(local)?;
        if !rings(state) {
            return Err(EngineError::InvalidState(state));
        }
        let reason = if busy {
            EndReason::Busy
        } else {
            EndReason::Rejected
        };
        Ok(vec![Output::Send(local, Request::Reject { call, reason })])
    }

    pub fn hangup(&mut self, local: Local, now_ms: u64) -> Result<Vec<Output>, EngineError> {
        let c = self.calls.get(&local).ok_or(EngineError::NoSuchCall)?;
        match c.relay {
            Some(call) => Ok(vec![Output::Send(local, Request::Hangup { call })]),
            // Not placed yet: end it here, and at the relay once it is placed.
            None => {
                self.abandoned.insert(local);
                Ok(self.end(local, EndReason::Hangup, now_ms))
            }
        }
    }

    /// Holds (`held`) or resumes the call from this side. Either works whatever the other
    /// side does; resuming a call only the other side holds is theirs to do.
    pub fn hold(&mut self, local: Local, held: bool) -> Result<Vec<Output>, EngineError> {
        let (call, state) = self.relay_id(local)?;
        let remote_held = self.calls.get(&local).is_some_and(|c| c.remote_held);
        match (held, state) {
            (true, CallState::Active) | (false, CallState::Held) => {}
            (false, CallState::Active) if remote_held => {
                return Err(EngineError::HeldByOtherSide);
            }
            _ => return Err(EngineError::InvalidState(state)),
        }
        // Resuming one call holds the one that talks now, as answering does.
        let mut out = if held {
            Vec::new()
        } else {
            self.hold_others(local)
        };
        out.push(Output::Send(local, Request::Hold { call, held }));
        Ok(out)
    }

    pub fn send_dtmf(&mut self, local: Local, digits: String) -> Result<Vec<Output>, EngineError> {
        let (call, state) = self.relay_id(local)?;
        if !matches!(state, CallState::Active | CallState::Held) {
            return Err(EngineError::InvalidState(state));
        }
        Ok(vec![Output::Send(local, Request::Dtmf { call, digits })])
    }

    pub fn set_muted(&mut self, local: Local, muted: bool) -> Result<Vec<Output>, EngineError> {
        let c = self.calls.get_mut(&local).ok_or(EngineError::NoSuchCall)?;
        if c.state == CallState::Ended {
            return Err(EngineError::InvalidState(c.state));
        }
        if c.muted == muted {
            return Ok(Vec::new());
        }
        c.muted = muted;
        Ok(vec![Output::Changed(local)])
    }

    /// The link to the relay dropped: every call is over.
    pub fn link_lost(&mut self, now_ms: u64) -> Vec<Output> {
        // The relay ends their calls with the session.
        self.abandoned.clear();
        let locals: Vec<Local> = self.calls.keys().copied().collect();
        locals
            .into_iter()
            .flat_map(|l| self.end(l, EndReason::Network, now_ms))
            .collect()
    }

    fn end(&mut self, local: Local, reason: EndReason, now_ms: u64) -> Vec<Output> {
        let Some(mut c) = self.calls.remove(&local) else {
            return Vec::new();
        };
        let was = c.state;
        c.state = CallState::Ended;
        c.reason = Some(reason);
        let mut out = Vec::new();
        if rings(was) {
            out.push(Output::StopRinging(local));
        }
        if matches!(was, CallState::Active | CallState::Held) {
            out.push(Output::StopMedia(local));
        }
        let missed = c.direction == CallDirection::Incoming
            && c.answered_ms.is_none()
            && !matches!(
                reason,
                EndReason::AnsweredElsewhere | EndReason::Busy | EndReason::Rejected
            );
        if missed {
            out.push(Output::Missed(local));
        }
        out.push(Output::Record(Record {
            number: c.remote_number.clone(),
            name: c.remote_name.clone(),
            direction: c.direction,
            result: match c.answered_ms {
                Some(_) => CallResult::Answered,
                None => CallResult::NotAnswered(reason),
            },
            start_ms: c.created_ms,
            duration_ms: c.answered_ms.map_or(0, |a| now_ms.saturating_sub(a)),
            missed,
        }));
        out.push(Output::Removed(local, reason));
        // A call waiting behind this one now rings as any incoming call.
        out.extend(self.settle_waiting());
        out
    }
}

#[cfg(test)]
mod tests;
