//! The call router's conference requests: creating a room, adding to it (which turns an
//! answered two-party call into a room), removing from it and merging two calls into one.
//! The rooms themselves are [`crate::conference`]'s; this is where calls and rooms meet
//! (ids from one space, one load per device, calls moved into rooms).

use phoned_proto::Event;
use phoned_proto::call::CallId;
use phoned_proto::conference::MAX_INVITES;

use super::{Call, CallAction, CallError, Caller, Calls, MAX_CALLS_PER_DEVICE, Phase};
use crate::conference::{Invitee, Reach};
use crate::hub::SessionId;

impl Calls {
    /// Devices of an invitee that can take one more call ring; none left is busy.
    fn reachable(&self, mut invitee: Invitee) -> Invitee {
        if let Reach::Ring(sessions) = invitee.reach {
            let free: Vec<SessionId> = sessions
                .into_iter()
                .filter(|&s| self.load(s) < MAX_CALLS_PER_DEVICE)
                .collect();
            invitee.reach = if free.is_empty() {
                Reach::Busy
            } else {
                Reach::Ring(free)
            };
        }
        invitee
    }

    /// `host` opens a room and invites `invitees` (1..=15 distinct numbers, not its own).
    pub fn conference_create(
        &mut self,
        now_ms: u64,
        host: Caller,
        invitees: Vec<Invitee>,
    ) -> Result<(CallId, Vec<CallAction>), CallError> {
        if invitees.is_empty() || invitees.len() > MAX_INVITES {
            return Err(if invitees.is_empty() {
                CallError::InvalidParty
            } else {
                CallError::Full
            });
        }
        let distinct = invitees.iter().enumerate().all(|(i, a)| {
            a.number != host.number && invitees[..i].iter().all(|b| b.number != a.number)
        });
        if !distinct {
            return Err(CallError::InvalidParty);
        }
        if self.load(host.session) >= MAX_CALLS_PER_DEVICE {
            return Err(CallError::InvalidState);
        }
        let invitees: Vec<Invitee> = invitees.into_iter().map(|i| self.reachable(i)).collect();
        let id = self.new_id();
        let actions = self.rooms.create(now_ms, id, host, invitees);
        Ok((id, actions))
    }

    /// Invites `invitee` into room `id` (host only), or turns the answered call `id` of
    /// `sid` into a room hosted by `sid` and invites `invitee` into it.
    pub fn conference_add(
        &mut self,
        now_ms: u64,
        sid: SessionId,
        id: CallId,
        invitee: Invitee,
    ) -> Result<(CallId, Vec<CallAction>), CallError> {
        if self.rooms.contains(id) {
            let invitee = self.reachable(invitee);
            return Ok((id, self.rooms.add(now_ms, sid, id, invitee)?));
        }
        let call = self.calls.get(&id).ok_or(CallError::NoSuchCall)?;
        let peer = call.peer_of(sid).ok_or(if call.parties().contains(&sid) {
            CallError::InvalidState
        } else {
            CallError::NoSuchCall
        })?;
        if call.who.iter().any(|(number, _)| *number == invitee.number) {
            return Err(CallError::InvalidParty);
        }
        let (room, mut actions) = self.make_room(sid, &[(id, peer)])?;
        let invitee = self.reachable(invitee);
        actions.extend(self.rooms.add(now_ms, sid, room, invitee)?);
        Ok((room, actions))
    }

    /// The host takes `number` out of room `id`.
    pub fn conference_remove(
        &mut self,
        sid: SessionId,
        id: CallId,
        number: &str,
    ) -> Result<Vec<CallAction>, CallError> {
        Ok(self.rooms.remove(sid, id, number)?)
    }

    /// `sid` merges its two answered calls into one room it hosts.
    pub fn conference_merge(
        &mut self,
        sid: SessionId,
        first: CallId,
        second: CallId,
    ) -> Result<(CallId, Vec<CallAction>), CallError> {
        if first == second {
            return Err(CallError::InvalidState);
        }
        let mut pairs = Vec::new();
        for id in [first, second] {
            let call = self.calls.get(&id).ok_or(CallError::NoSuchCall)?;
            let peer = call.peer_of(sid).ok_or(if call.parties().contains(&sid) {
                CallError::InvalidState
            } else {
                CallError::NoSuchCall
            })?;
            pairs.push((id, peer));
        }
        // One number is one party: two calls with the same number do not merge.
        let numbers: Vec<&String> = pairs
            .iter()
            .filter_map(|(id, peer)| self.calls.get(id).map(|c| &c.who[side(c, *peer)].0))
            .collect();
        if numbers[0] == numbers[1] {
            return Err(CallError::InvalidParty);
        }
        self.make_room(sid, &pairs)
    }

    /// Moves the answered calls `pairs` (call, peer) of `sid` into a new room hosted by
    /// `sid`: their routes go, each party hears `ConferenceMoved`, then the room's first
    /// roster.
    fn make_room(
        &mut self,
        sid: SessionId,
        pairs: &[(CallId, SessionId)],
    ) -> Result<(CallId, Vec<CallAction>), CallError> {
        let room = self.new_id();
        let mut host = None;
        let mut others = Vec::new();
        let mut actions = Vec::new();
        for &(id, peer) in pairs {
            let call = self.calls.remove(&id).ok_or(CallError::NoSuchCall)?;
            debug_assert!(matches!(call.phase, Phase::Active));
            let me = side(&call, sid);
            let accounts = [call.caller_account, call.callee_account];
            let party = |s: SessionId, i: usize| Caller {
                session: s,
                account: accounts[i],
                number: call.who[i].0.clone(),
                name: call.who[i].1.clone(),
            };
            host.get_or_insert_with(|| party(sid, me));
            others.push(party(peer, 1 - me));
            for (s, from) in [(sid, sid), (peer, peer)] {
                actions.push(CallAction::Send(
                    s,
                    Event::ConferenceMoved {
                        call: id,
                        conference: room,
                    },
                ));
                actions.push(CallAction::Unroute { call: id, from });
            }
        }
        let host = host.ok_or(CallError::NoSuchCall)?;
        actions.extend(self.rooms.adopt(room, host, others));
        Ok((room, actions))
    }

    /// The rooms (for tests and the router's logs).
    pub fn rooms(&self) -> &crate::conference::Conferences {
        &self.rooms
    }
}

/// Which side of `call` session `sid` is: 0 the caller, 1 the callee.
fn side(call: &Call, sid: SessionId) -> usize {
    usize::from(sid != call.caller)
}
