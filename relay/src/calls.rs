//! Call routing as a sans-IO state machine: who calls whom, which devices ring, who
//! answered, and so which connection a call's media goes to. Inputs are requests and
//! session departures with the time passed in; outputs are events to push and media
//! routes to install or remove.

use std::collections::HashMap;

use phoned_proto::Event;
use phoned_proto::call::{CallId, CallPhase, EndReason};

use crate::conference::{ConfError, Conferences};
use crate::hub::SessionId;
use crate::store::AccountId;

mod ids;
mod rooms;
pub use ids::CallIds;

/// A device may take part in at most this many calls at once (one active, one waiting):
/// a device in a call is offered a second one (call waiting), and only do-not-disturb on
/// the device declines it (as busy).
const MAX_CALLS_PER_DEVICE: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAction {
    Send(SessionId, Event),
    /// Media of `call` from `from` now goes to `to`.
    Route {
        call: CallId,
        from: SessionId,
        to: SessionId,
    },
    /// Media of `call` from `from` is no longer forwarded.
    Unroute {
        call: CallId,
        from: SessionId,
    },
    /// The media of conference `room` goes between these members now (none: the room
    /// has ended). Replaces what the room had.
    Room {
        room: CallId,
        members: Vec<RoomMember>,
    },
}

/// A party of a conference room, as its media forwarding sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomMember {
    pub session: SessionId,
    /// Its media source id in the room (its frames' `source`).
    pub source: u32,
    /// Not on hold: it sends and receives.
    pub flowing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    NoSuchCall,
    InvalidState,
    /// Conferences: only the host adds and removes.
    NotHost,
    /// Conferences: the room has 16 parties.
    Full,
    /// Conferences: the requester's own number, one already in, or one not in it.
    InvalidParty,
}

impl From<ConfError> for CallError {
    fn from(e: ConfError) -> CallError {
        match e {
            ConfError::NoSuchConference => CallError::NoSuchCall,
            ConfError::InvalidState => CallError::InvalidState,
            ConfError::NotHost => CallError::NotHost,
            ConfError::Full => CallError::Full,
            ConfError::InvalidParty => CallError::InvalidParty,
        }
    }
}

/// The callee as the directory and presence hub see it.
pub enum Callee {
    Unknown,
    /// The account exists; these are its online sessions (maybe none).
    Account {
        id: AccountId,
        sessions: Vec<SessionId>,
        /// Its number and display name (kept for a conference the call may become).
        number: String,
        name: String,
    },
}

/// The caller's identity, shown to the callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub session: SessionId,
    pub account: AccountId,
    pub number: String,
    pub name: String,
}

/// Who a dial rings: the callee's account, its devices that ring, its number and name.
type Ringing = (AccountId, Vec<SessionId>, (String, String));

#[derive(Debug)]
enum Phase {
    Ringing { deadline_ms: u64 },
    Active,
}

#[derive(Debug)]
struct Call {
    caller: SessionId,
    caller_account: AccountId,
    callee_account: AccountId,
    ringing: Vec<SessionId>,
    answered: Option<SessionId>,
    phase: Phase,
    /// Hold set by the caller (`[0]`) and by the callee (`[1]`).
    held: [bool; 2],
    /// Number and name of the caller (`[0]`) and the callee (`[1]`).
    who: [(String, String); 2],
}

impl Call {
    fn parties(&self) -> Vec<SessionId> {
        let mut p = vec![self.caller];
        p.extend(self.answered);
        p.extend(self.ringing.iter().copied());
        p
    }

    fn peer_of(&self, sid: SessionId) -> Option<SessionId> {
        match self.answered {
            Some(a) if sid == self.caller => Some(a),
            Some(a) if sid == a => Some(self.caller),
            _ => None,
        }
    }

    /// Who holds the call as `sid` sees it (protocol 3's [`Event::CallHold`]).
    fn hold_for(&self, sid: SessionId, call: CallId) -> Event {
        let me = usize::from(sid != self.caller);
        Event::CallHold {
            call,
            by_me: self.held[me],
            by_peer: self.held[1 - me],
        }
    }

    /// The phase as `sid` sees it, for an answered call.
    fn phase_for(&self, sid: SessionId) -> CallPhase {
        let me = usize::from(sid != self.caller);
        if self.held[me] {
            CallPhase::Held { by_me: true }
        } else if self.held[1 - me] {
            CallPhase::Held { by_me: false }
        } else {
            CallPhase::Active { source: me as u32 }
        }
    }
}

#[derive(Debug)]
pub struct Calls {
    calls: HashMap<CallId, Call>,
    /// Conference rooms: their ids come from the same space as calls'.
    rooms: Conferences,
    ids: CallIds,
    ring_timeout_ms: u64,
}

fn state(sid: SessionId, call: CallId, phase: CallPhase) -> CallAction {
    CallAction::Send(sid, Event::CallState { call, phase })
}

impl Calls {
    pub fn new(ring_timeout_ms: u64, ids: CallIds) -> Calls {
        Calls {
            calls: HashMap::new(),
            rooms: Conferences::new(ring_timeout_ms),
            ids,
            ring_timeout_ms,
        }
    }

    /// How long calls placed from now on ring (a config reload); calls already ringing
    /// keep their deadline.
    pub fn set_ring_timeout(&mut self, ring_timeout_ms: u64) {
        self.ring_timeout_ms = ring_timeout_ms;
        self.rooms.set_ring_timeout(ring_timeout_ms);
    }

    fn new_id(&mut self) -> CallId {
        let (calls, rooms) = (&self.calls, &self.rooms);
        self.ids
            .next(|id| calls.contains_key(&id) || rooms.contains(id))
    }

    /// The calls and rooms `sid` takes part in or rings for.
    pub(crate) fn load(&self, sid: SessionId) -> usize {
        self.calls
            .values()
            .filter(|c| c.parties().contains(&sid))
            .count()
            + self.rooms.load(sid)
    }

    /// Places a call. On success every online device of the callee rings.
    pub fn dial(
        &mut self,
        now_ms: u64,
        caller: Caller,
        callee: Callee,
    ) -> Result<(CallId, Vec<CallAction>), EndReason> {
        let (callee_account, ringing, callee_who) = self.check(&caller, callee)?;
        let id = self.new_id();
        let actions = self.place(now_ms, id, caller, callee_account, ringing, callee_who);
        Ok((id, actions))
    }

    /// Places a call with the id another relay gave it (the callee's side of a call
    /// between relays, [`crate::cluster::xcall`]): as [`Calls::dial`], and an id that is
    /// taken here already ends it as `network` (odds 2⁻⁶⁴).
    pub fn dial_as(
        &mut self,
        now_ms: u64,
        id: CallId,
        caller: Caller,
        callee: Callee,
    ) -> Result<Vec<CallAction>, EndReason> {
        if id == 0 || self.calls.contains_key(&id) || self.rooms.contains(id) {
            return Err(EndReason::Network);
        }
        let (callee_account, ringing, callee_who) = self.check(&caller, callee)?;
        Ok(self.place(now_ms, id, caller, callee_account, ringing, callee_who))
    }

    /// Who would ring for a dial from `caller` to `callee`, or why the dial fails.
    fn check(&self, caller: &Caller, callee: Callee) -> Result<Ringing, EndReason> {
        let (callee_account, sessions, callee_who) = match callee {
            Callee::Unknown => return Err(EndReason::UnknownNumber),
            Callee::Account {
                id,
                sessions,
                number,
                name,
            } => (id, sessions, (number, name)),
        };
        if callee_account == caller.account {
            return Err(EndReason::Busy);
        }
        if sessions.is_empty() {
            return Err(EndReason::Offline);
        }
        if self.load(caller.session) >= MAX_CALLS_PER_DEVICE {
            return Err(EndReason::Busy);
        }
        let ringing: Vec<SessionId> = sessions
            .into_iter()
            .filter(|&s| self.load(s) < MAX_CALLS_PER_DEVICE)
            .collect();
        if ringing.is_empty() {
            return Err(EndReason::Busy);
        }
        Ok((callee_account, ringing, callee_who))
    }

    fn place(
        &mut self,
        now_ms: u64,
        id: CallId,
        caller: Caller,
        callee_account: AccountId,
        ringing: Vec<SessionId>,
        callee_who: (String, String),
    ) -> Vec<CallAction> {
        let mut actions = vec![state(caller.session, id, CallPhase::Ringing)];
        for &s in &ringing {
            actions.push(CallAction::Send(
                s,
                Event::CallIncoming {
                    call: id,
                    from_number: caller.number.clone(),
                    from_name: caller.name.clone(),
                },
            ));
        }
        self.calls.insert(
            id,
            Call {
                caller: caller.session,
                caller_account: caller.account,
                callee_account,
                ringing,
                answered: None,
                phase: Phase::Ringing {
                    deadline_ms: now_ms + self.ring_timeout_ms,
                },
                held: [false; 2],
                who: [(caller.number, caller.name), callee_who],
            },
        );
        actions
    }

    /// A dial that ended before ringing: the call gets an id all the same, and the
    /// caller its one `Ended` state.
    pub fn failed(&mut self, caller: SessionId, reason: EndReason) -> (CallId, Vec<CallAction>) {
        let id = self.new_id();
        (id, vec![state(caller, id, CallPhase::Ended(reason))])
    }

    /// `sid` answers a ringing call; the callee's other devices stop ringing.
    pub fn answer(&mut self, sid: SessionId, id: CallId) -> Result<Vec<CallAction>, CallError> {
        if self.rooms.contains(id) {
            return Ok(self.rooms.answer(sid, id)?);
        }
        let call = self.calls.get_mut(&id).ok_or(CallError::NoSuchCall)?;
        if !call.ringing.contains(&sid) {
            return Err(if call.parties().contains(&sid) {
                CallError::InvalidState
            } else {
                CallError::NoSuchCall
            });
        }
        let others: Vec<SessionId> = call.ringing.drain(..).filter(|&s| s != sid).collect();
        call.answered = Some(sid);
        call.phase = Phase::Active;
        let mut actions = vec![
            state(call.caller, id, call.phase_for(call.caller)),
            state(sid, id, call.phase_for(sid)),
            CallAction::Route {
                call: id,
                from: call.caller,
                to: sid,
            },
            CallAction::Route {
                call: id,
                from: sid,
                to: call.caller,
            },
        ];
        actions.extend(
            others
                .into_iter()
                .map(|s| state(s, id, CallPhase::Ended(EndReason::AnsweredElsewhere))),
        );
        Ok(actions)
    }

    /// A ringing device declines: the call ends for everyone with `reason`.
    pub fn reject(
        &mut self,
        sid: SessionId,
        id: CallId,
        reason: EndReason,
    ) -> Result<Vec<CallAction>, CallError> {
        if self.rooms.contains(id) {
            return Ok(self.rooms.reject(sid, id, reason)?);
        }
        let call = self.calls.get(&id).ok_or(CallError::NoSuchCall)?;
        if !call.ringing.contains(&sid) {
            return Err(if call.parties().contains(&sid) {
                CallError::InvalidState
            } else {
                CallError::NoSuchCall
            });
        }
        let reason = match reason {
            EndReason::Busy => EndReason::Busy,
            _ => EndReason::Rejected,
        };
        Ok(self.end(id, reason))
    }

    /// Any party ends the call.
    pub fn hangup(&mut self, sid: SessionId, id: CallId) -> Result<Vec<CallAction>, CallError> {
        if self.rooms.contains(id) {
            return Ok(self.rooms.hangup(sid, id)?);
        }
        let call = self.calls.get(&id).ok_or(CallError::NoSuchCall)?;
        if !call.parties().contains(&sid) {
            return Err(CallError::NoSuchCall);
        }
        if call.ringing.contains(&sid) {
            // A ringing device "hanging up" declines.
            return self.reject(sid, id, EndReason::Rejected);
        }
        Ok(self.end(id, EndReason::Hangup))
    }

    /// The party `sid` stands for ended the call with `reason` (a relay link: the other
    /// relay's side of a call between relays ended, [`crate::cluster::xcall`]). A ringing
    /// link that is not the only one ringing just stops ringing when its devices did not
    /// answer or went away; a refusal (`busy`, `rejected`) ends the call as a device's
    /// would; anything else ends it with `reason` for everyone.
    pub fn ended_by(
        &mut self,
        sid: SessionId,
        id: CallId,
        reason: EndReason,
    ) -> Result<Vec<CallAction>, CallError> {
        let call = self.calls.get_mut(&id).ok_or(CallError::NoSuchCall)?;
        if !call.parties().contains(&sid) {
            return Err(CallError::NoSuchCall);
        }
        if call.ringing.contains(&sid) {
            match reason {
                EndReason::Busy | EndReason::Rejected => return self.reject(sid, id, reason),
                _ if call.ringing.len() > 1 => {
                    call.ringing.retain(|&s| s != sid);
                    return Ok(Vec::new());
                }
                _ => {}
            }
        }
        let mut actions = self.end(id, reason);
        actions.retain(|a| !matches!(a, CallAction::Send(s, _) if *s == sid));
        Ok(actions)
    }

    /// Puts an answered call on hold or resumes it, from `sid`'s side.
    pub fn hold(
        &mut self,
        sid: SessionId,
        id: CallId,
        held: bool,
    ) -> Result<Vec<CallAction>, CallError> {
        if self.rooms.contains(id) {
            return Ok(self.rooms.hold(sid, id, held)?);
        }
        let call = self.calls.get_mut(&id).ok_or(CallError::NoSuchCall)?;
        let peer = call.peer_of(sid).ok_or(if call.parties().contains(&sid) {
            CallError::InvalidState
        } else {
            CallError::NoSuchCall
        })?;
        let me = usize::from(sid != call.caller);
        let was_flowing = !call.held[0] && !call.held[1];
        call.held[me] = held;
        let flowing = !call.held[0] && !call.held[1];
        // The phase first (older sessions know only that), then who holds it.
        let mut actions = vec![
            state(sid, id, call.phase_for(sid)),
            CallAction::Send(sid, call.hold_for(sid, id)),
            state(peer, id, call.phase_for(peer)),
            CallAction::Send(peer, call.hold_for(peer, id)),
        ];
        if was_flowing && !flowing {
            actions.push(CallAction::Unroute {
                call: id,
                from: sid,
            });
            actions.push(CallAction::Unroute {
                call: id,
                from: peer,
            });
        } else if !was_flowing && flowing {
            actions.push(CallAction::Route {
                call: id,
                from: sid,
                to: peer,
            });
            actions.push(CallAction::Route {
                call: id,
                from: peer,
                to: sid,
            });
        }
        Ok(actions)
    }

    /// DTMF from `sid` to the other party of an answered call.
    pub fn dtmf(
        &mut self,
        sid: SessionId,
        id: CallId,
        digits: String,
    ) -> Result<Vec<CallAction>, CallError> {
        if self.rooms.contains(id) {
            // DTMF goes to one other party; a room has several.
            return Err(if self.rooms.accounts(id).is_empty() {
                CallError::NoSuchCall
            } else {
                CallError::InvalidState
            });
        }
        let call = self.calls.get(&id).ok_or(CallError::NoSuchCall)?;
        // As for the other requests: a stranger learns nothing, not even that the call
        // exists; a party of a call not answered yet is told it is too early.
        let peer = call.peer_of(sid).ok_or(if call.parties().contains(&sid) {
            CallError::InvalidState
        } else {
            CallError::NoSuchCall
        })?;
        Ok(vec![CallAction::Send(
            peer,
            Event::CallDtmf { call: id, digits },
        )])
    }

    /// A session is gone (closed, timed out, revoked): its calls end with `network`,
    /// or it simply stops ringing if other devices still ring.
    pub fn session_left(&mut self, sid: SessionId) -> Vec<CallAction> {
        let mut ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.parties().contains(&sid))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        let mut actions = Vec::new();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.ringing.contains(&sid) && call.ringing.len() > 1 {
                call.ringing.retain(|&s| s != sid);
                continue;
            }
            let reason = match call.phase {
                Phase::Ringing { .. } if sid != call.caller => EndReason::Offline,
                Phase::Ringing { .. } => EndReason::Hangup,
                Phase::Active => EndReason::Network,
            };
            actions.extend(self.end(id, reason));
        }
        actions.retain(|a| !matches!(a, CallAction::Send(s, _) if *s == sid));
        actions.extend(self.rooms.session_left(sid));
        actions
    }

    /// Ends calls whose ring timeout has passed.
    pub fn tick(&mut self, now_ms: u64) -> Vec<CallAction> {
        let mut due: Vec<CallId> = self
            .calls
            .iter()
            .filter(
                |(_, c)| matches!(c.phase, Phase::Ringing { deadline_ms } if deadline_ms <= now_ms),
            )
            .map(|(&id, _)| id)
            .collect();
        due.sort_unstable();
        let mut actions: Vec<CallAction> = due
            .into_iter()
            .flat_map(|id| self.end(id, EndReason::NoAnswer))
            .collect();
        actions.extend(self.rooms.tick(now_ms));
        actions
    }

    /// When [`Calls::tick`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        self.calls
            .values()
            .filter_map(|c| match c.phase {
                Phase::Ringing { deadline_ms } => Some(deadline_ms),
                Phase::Active => None,
            })
            .chain(self.rooms.next_deadline())
            .min()
    }

    /// The accounts of a call's two parties (caller, callee).
    pub fn accounts(&self, id: CallId) -> Option<(AccountId, AccountId)> {
        self.calls
            .get(&id)
            .map(|c| (c.caller_account, c.callee_account))
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Conference rooms open.
    pub fn rooms_len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn end(&mut self, id: CallId, reason: EndReason) -> Vec<CallAction> {
        let Some(call) = self.calls.remove(&id) else {
            return Vec::new();
        };
        let mut actions: Vec<CallAction> = call
            .parties()
            .into_iter()
            .map(|s| state(s, id, CallPhase::Ended(reason)))
            .collect();
        if let Some(a) = call.answered {
            actions.push(CallAction::Unroute {
                call: id,
                from: call.caller,
            });
            actions.push(CallAction::Unroute { call: id, from: a });
        }
        actions
    }
}

#[cfg(test)]
mod tests;
