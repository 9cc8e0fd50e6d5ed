//! Conference rooms as a sans-IO state machine, beside the call router ([`crate::calls`],
//! which owns one and hands it the requests on room ids). A room holds up to
//! [`MAX_PARTIES`] parties; every online device of an invited number rings and the first
//! to answer wins; declining, not answering, being busy or unknown leaves the others in.
//! The host (who may add and remove) is the party that created the room until it
//! leaves; then the party present longest. Parties hold from their own side (they then
//! send and receive nothing). The room ends when fewer than two parties remain (counting
//! those still ringing) or nobody is in it. A party whose connection dies leaves when
//! its session does (after the same idle timeout that ends a call).
//!
//! Inputs are requests and session departures with the time passed in; outputs are
//! [`CallAction`]s: events to push and, per room, the members its media goes between
//! ([`CallAction::Room`]; which of them speak is the forwarder's business,
//! [`speakers`]).

use std::collections::HashMap;

use phoned_proto::Event;
use phoned_proto::call::{CallId, CallPhase, EndReason};
use phoned_proto::conference::{MAX_LEFT, MAX_PARTIES, Party, PartyState, Roster};

use crate::calls::{CallAction, Caller, RoomMember};
use crate::hub::SessionId;
use crate::store::AccountId;

pub mod speakers;

/// Why a conference request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfError {
    /// No such room, or the session takes no part in it.
    NoSuchConference,
    /// The party's state does not allow this (answering twice, holding while ringing).
    InvalidState,
    /// Only the host adds and removes.
    NotHost,
    /// The room has [`MAX_PARTIES`] parties already.
    Full,
    /// The requester's own number, a number already in the room, or one not in it.
    InvalidParty,
}

/// How an invited number can be reached, as the directory, the presence hub and the
/// devices' loads say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Unknown,
    Offline,
    /// Every online device is in as many calls as it takes (or too old for rooms).
    Busy,
    /// These devices ring.
    Ring(Vec<SessionId>),
}

/// A number to invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitee {
    pub number: String,
    pub name: String,
    /// 0 for a number without an account.
    pub account: AccountId,
    pub reach: Reach,
}

#[derive(Debug, Clone)]
struct Member {
    account: AccountId,
    number: String,
    name: String,
    state: PartyState,
    /// Devices ringing (while `Ringing`).
    ringing: Vec<SessionId>,
    deadline_ms: u64,
    /// The device in the room (while `Joined` or `Held`).
    session: Option<SessionId>,
    source: Option<u32>,
    /// When it joined, in the room's own count (the host passes to the lowest).
    order: u64,
    reason: Option<EndReason>,
}

impl Member {
    fn present(&self) -> bool {
        matches!(self.state, PartyState::Joined | PartyState::Held)
    }

    fn active(&self) -> bool {
        self.state != PartyState::Left
    }

    fn phase(&self) -> CallPhase {
        match (self.state, self.source) {
            (PartyState::Held, _) => CallPhase::Held { by_me: true },
            (_, Some(source)) => CallPhase::Active { source },
            _ => CallPhase::Ringing,
        }
    }
}

#[derive(Debug)]
struct Room {
    host: String,
    members: Vec<Member>,
    next_source: u32,
    next_order: u64,
}

impl Room {
    fn by_session(&self, sid: SessionId) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.session == Some(sid) && m.present())
    }

    fn ringing_at(&self, sid: SessionId) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.state == PartyState::Ringing && m.ringing.contains(&sid))
    }

    fn involves(&self, sid: SessionId) -> bool {
        self.by_session(sid).is_some() || self.ringing_at(sid).is_some()
    }

    fn active_count(&self) -> usize {
        self.members.iter().filter(|m| m.active()).count()
    }

    fn present_count(&self) -> usize {
        self.members.iter().filter(|m| m.present()).count()
    }

    fn join(&mut self, i: usize, sid: SessionId) {
        let m = &mut self.members[i];
        m.state = PartyState::Joined;
        m.ringing.clear();
        m.session = Some(sid);
        m.source = Some(self.next_source);
        m.order = self.next_order;
        m.reason = None;
        self.next_source += 1;
        self.next_order += 1;
    }

    fn roster(&self) -> Roster {
        Roster {
            host: self.host.clone(),
            parties: self
                .members
                .iter()
                .map(|m| Party {
                    number: m.number.clone(),
                    name: m.name.clone(),
                    state: m.state,
                    source: m.source.filter(|_| m.present()),
                    reason: m.reason,
                })
                .collect(),
        }
    }

    /// Marks party `i` as gone, and drops the oldest gone parties beyond [`MAX_LEFT`].
    fn leave(&mut self, i: usize, reason: EndReason) {
        let m = &mut self.members[i];
        m.state = PartyState::Left;
        m.ringing.clear();
        m.session = None;
        m.source = None;
        m.reason = Some(reason);
        let left = self.members.iter().filter(|m| !m.active()).count();
        if left > MAX_LEFT {
            // Oldest first: the members list is in invitation order, a re-invited
            // number keeping its place; good enough for a bounded roster.
            if let Some(first) = self.members.iter().position(|m| !m.active()) {
                self.members.remove(first);
            }
        }
        if !self
            .members
            .iter()
            .any(|m| m.present() && m.number == self.host)
            && let Some(next) = self
                .members
                .iter()
                .filter(|m| m.present())
                .min_by_key(|m| m.order)
        {
            self.host = next.number.clone();
        }
    }

    /// The media members: every party in the room, flowing unless held.
    fn media(&self) -> Vec<RoomMember> {
        self.members
            .iter()
            .filter(|m| m.present())
            .filter_map(|m| {
                Some(RoomMember {
                    session: m.session?,
                    source: m.source?,
                    flowing: m.state == PartyState::Joined,
                })
            })
            .collect()
    }
}

fn state(sid: SessionId, call: CallId, phase: CallPhase) -> CallAction {
    CallAction::Send(sid, Event::CallState { call, phase })
}

/// Every conference room of the relay.
#[derive(Debug)]
pub struct Conferences {
    rooms: HashMap<CallId, Room>,
    ring_timeout_ms: u64,
}

impl Conferences {
    pub fn new(ring_timeout_ms: u64) -> Conferences {
        Conferences {
            rooms: HashMap::new(),
            ring_timeout_ms,
        }
    }

    pub fn set_ring_timeout(&mut self, ring_timeout_ms: u64) {
        self.ring_timeout_ms = ring_timeout_ms;
    }

    pub fn contains(&self, id: CallId) -> bool {
        self.rooms.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// How many rooms `sid` is in or rings for (it counts against the device's calls).
    pub fn load(&self, sid: SessionId) -> usize {
        self.rooms.values().filter(|r| r.involves(sid)).count()
    }

    fn member(account: AccountId, number: String, name: String) -> Member {
        Member {
            account,
            number,
            name,
            state: PartyState::Invited,
            ringing: Vec::new(),
            deadline_ms: 0,
            session: None,
            source: None,
            order: 0,
            reason: None,
        }
    }

    /// Opens room `id` with `host` in it and invites `invitees` (already checked:
    /// distinct, not the host, at most [`MAX_PARTIES`] - 1).
    pub fn create(
        &mut self,
        now_ms: u64,
        id: CallId,
        host: Caller,
        invitees: Vec<Invitee>,
    ) -> Vec<CallAction> {
        let mut room = Room {
            host: host.number.clone(),
            members: vec![Self::member(host.account, host.number, host.name)],
            next_source: 0,
            next_order: 0,
        };
        room.join(0, host.session);
        let mut actions = vec![state(host.session, id, room.members[0].phase())];
        let mut last = EndReason::Hangup;
        let view = host_view(&room);
        for invitee in invitees {
            let (inv_actions, reason) = self.invite(now_ms, id, &mut room, &view, invitee);
            actions.extend(inv_actions);
            last = reason.unwrap_or(last);
        }
        self.rooms.insert(id, room);
        actions.extend(self.settle(id, last));
        actions
    }

    /// Opens room `id` with parties that were already talking (a merge, or a two-party
    /// call turned into a room): `host` first, all joined. Returns the actions and
    /// each party's media source.
    pub fn adopt(&mut self, id: CallId, host: Caller, others: Vec<Caller>) -> Vec<CallAction> {
        let mut room = Room {
            host: host.number.clone(),
            members: Vec::new(),
            next_source: 0,
            next_order: 0,
        };
        let mut actions = Vec::new();
        for party in std::iter::once(host).chain(others) {
            room.members
                .push(Self::member(party.account, party.number, party.name));
            let i = room.members.len() - 1;
            room.join(i, party.session);
            actions.push(state(party.session, id, room.members[i].phase()));
        }
        self.rooms.insert(id, room);
        actions.extend(self.announce(id));
        actions
    }

    /// Rings `invitee` for `room`; returns the actions and, if it could not ring, why.
    fn invite(
        &self,
        now_ms: u64,
        id: CallId,
        room: &mut Room,
        host: &(String, String),
        invitee: Invitee,
    ) -> (Vec<CallAction>, Option<EndReason>) {
        let mut m = Self::member(invitee.account, invitee.number, invitee.name);
        let mut actions = Vec::new();
        let refused = match invitee.reach {
            Reach::Unknown => Some(EndReason::UnknownNumber),
            Reach::Offline => Some(EndReason::Offline),
            Reach::Busy => Some(EndReason::Busy),
            Reach::Ring(sessions) if sessions.is_empty() => Some(EndReason::Busy),
            Reach::Ring(sessions) => {
                for &s in &sessions {
                    actions.push(CallAction::Send(
                        s,
                        Event::ConferenceIncoming {
                            conference: id,
                            from_number: host.0.clone(),
                            from_name: host.1.clone(),
                        },
                    ));
                }
                m.state = PartyState::Ringing;
                m.ringing = sessions;
                m.deadline_ms = now_ms + self.ring_timeout_ms;
                None
            }
        };
        // A number invited again takes its old place.
        let i = match room.members.iter().position(|o| o.number == m.number) {
            Some(i) => {
                room.members[i] = m;
                i
            }
            None => {
                room.members.push(m);
                room.members.len() - 1
            }
        };
        if let Some(reason) = refused {
            room.leave(i, reason);
        }
        (actions, refused)
    }

    /// The host invites one more number.
    pub fn add(
        &mut self,
        now_ms: u64,
        sid: SessionId,
        id: CallId,
        invitee: Invitee,
    ) -> Result<Vec<CallAction>, ConfError> {
        let mut room = self.rooms.remove(&id).ok_or(ConfError::NoSuchConference)?;
        let checked = Self::check_host(&room, sid).and_then(|()| {
            if room
                .members
                .iter()
                .any(|m| m.active() && m.number == invitee.number)
            {
                Err(ConfError::InvalidParty)
            } else if room.active_count() >= MAX_PARTIES {
                Err(ConfError::Full)
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            self.rooms.insert(id, room);
            return Err(e);
        }
        let host = host_view(&room);
        let (mut actions, _) = self.invite(now_ms, id, &mut room, &host, invitee);
        self.rooms.insert(id, room);
        actions.extend(self.announce(id));
        Ok(actions)
    }

    fn check_host(room: &Room, sid: SessionId) -> Result<(), ConfError> {
        match room.by_session(sid) {
            None => Err(ConfError::NoSuchConference),
            Some(i) if room.members[i].number != room.host => Err(ConfError::NotHost),
            Some(_) => Ok(()),
        }
    }

    /// The host takes `number` out (ringing or in the room).
    pub fn remove(
        &mut self,
        sid: SessionId,
        id: CallId,
        number: &str,
    ) -> Result<Vec<CallAction>, ConfError> {
        let room = self.rooms.get(&id).ok_or(ConfError::NoSuchConference)?;
        Self::check_host(room, sid)?;
        let i = room
            .members
            .iter()
            .position(|m| m.active() && m.number == number)
            .ok_or(ConfError::InvalidParty)?;
        if room.members[i].session == Some(sid) {
            // The host removing itself: that is leaving.
            return Err(ConfError::InvalidParty);
        }
        Ok(self.depart(id, i, EndReason::Removed, EndReason::Removed))
    }

    /// A ringing device answers: its number joins; its other devices stop ringing.
    pub fn answer(&mut self, sid: SessionId, id: CallId) -> Result<Vec<CallAction>, ConfError> {
        let room = self.rooms.get_mut(&id).ok_or(ConfError::NoSuchConference)?;
        let Some(i) = room.ringing_at(sid) else {
            return Err(if room.involves(sid) {
                ConfError::InvalidState
            } else {
                ConfError::NoSuchConference
            });
        };
        let others: Vec<SessionId> = room.members[i]
            .ringing
            .iter()
            .copied()
            .filter(|&s| s != sid)
            .collect();
        room.join(i, sid);
        let mut actions = vec![state(sid, id, room.members[i].phase())];
        actions.extend(
            others
                .into_iter()
                .map(|s| state(s, id, CallPhase::Ended(EndReason::AnsweredElsewhere))),
        );
        actions.extend(self.announce(id));
        Ok(actions)
    }

    /// A ringing device declines (`Busy` for do-not-disturb): its number is out, the
    /// room goes on.
    pub fn reject(
        &mut self,
        sid: SessionId,
        id: CallId,
        reason: EndReason,
    ) -> Result<Vec<CallAction>, ConfError> {
        let room = self.rooms.get(&id).ok_or(ConfError::NoSuchConference)?;
        let Some(i) = room.ringing_at(sid) else {
            return Err(if room.involves(sid) {
                ConfError::InvalidState
            } else {
                ConfError::NoSuchConference
            });
        };
        let reason = match reason {
            EndReason::Busy => EndReason::Busy,
            _ => EndReason::Rejected,
        };
        Ok(self.depart(id, i, reason, reason))
    }

    /// A party leaves (a ringing device hanging up declines).
    pub fn hangup(&mut self, sid: SessionId, id: CallId) -> Result<Vec<CallAction>, ConfError> {
        let room = self.rooms.get(&id).ok_or(ConfError::NoSuchConference)?;
        if room.ringing_at(sid).is_some() {
            return self.reject(sid, id, EndReason::Rejected);
        }
        let i = room.by_session(sid).ok_or(ConfError::NoSuchConference)?;
        Ok(self.depart(id, i, EndReason::Hangup, EndReason::Hangup))
    }

    /// A party holds the room from its side (it sends and receives nothing) or resumes.
    pub fn hold(
        &mut self,
        sid: SessionId,
        id: CallId,
        held: bool,
    ) -> Result<Vec<CallAction>, ConfError> {
        let room = self.rooms.get_mut(&id).ok_or(ConfError::NoSuchConference)?;
        let i = match room.by_session(sid) {
            Some(i) => i,
            None if room.involves(sid) => return Err(ConfError::InvalidState),
            None => return Err(ConfError::NoSuchConference),
        };
        let m = &mut room.members[i];
        m.state = if held {
            PartyState::Held
        } else {
            PartyState::Joined
        };
        let mut actions = vec![state(sid, id, m.phase())];
        actions.extend(self.announce(id));
        Ok(actions)
    }

    /// A session is gone: it leaves its rooms (`network`), or stops ringing.
    pub fn session_left(&mut self, sid: SessionId) -> Vec<CallAction> {
        let mut ids: Vec<CallId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.involves(sid))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        let mut actions = Vec::new();
        for id in ids {
            let Some(room) = self.rooms.get_mut(&id) else {
                continue;
            };
            if let Some(i) = room.ringing_at(sid) {
                if room.members[i].ringing.len() > 1 {
                    room.members[i].ringing.retain(|&s| s != sid);
                    continue;
                }
                actions.extend(self.depart(id, i, EndReason::Offline, EndReason::Offline));
            } else if let Some(i) = room.by_session(sid) {
                actions.extend(self.depart(id, i, EndReason::Network, EndReason::Network));
            }
        }
        actions.retain(|a| !matches!(a, CallAction::Send(s, _) if *s == sid));
        actions
    }

    /// Invitations whose ring timeout has passed end with `no-answer`.
    pub fn tick(&mut self, now_ms: u64) -> Vec<CallAction> {
        let mut due: Vec<(CallId, String)> = self
            .rooms
            .iter()
            .flat_map(|(&id, r)| {
                r.members
                    .iter()
                    .filter(|m| m.state == PartyState::Ringing && m.deadline_ms <= now_ms)
                    .map(move |m| (id, m.number.clone()))
            })
            .collect();
        due.sort_unstable();
        let mut actions = Vec::new();
        for (id, number) in due {
            let Some(i) = self
                .rooms
                .get(&id)
                .and_then(|r| r.members.iter().position(|m| m.number == number))
            else {
                continue;
            };
            actions.extend(self.depart(id, i, EndReason::NoAnswer, EndReason::NoAnswer));
        }
        actions
    }

    /// When [`Conferences::tick`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        self.rooms
            .values()
            .flat_map(|r| r.members.iter())
            .filter(|m| m.state == PartyState::Ringing)
            .map(|m| m.deadline_ms)
            .min()
    }

    /// Party `i` goes, with `reason` on its own devices and `why` for the room should it
    /// end with this departure.
    fn depart(
        &mut self,
        id: CallId,
        i: usize,
        reason: EndReason,
        why: EndReason,
    ) -> Vec<CallAction> {
        let Some(room) = self.rooms.get_mut(&id) else {
            return Vec::new();
        };
        let m = &room.members[i];
        let mut actions: Vec<CallAction> = m
            .ringing
            .iter()
            .chain(m.session.iter().filter(|_| m.present()))
            .map(|&s| state(s, id, CallPhase::Ended(reason)))
            .collect();
        room.leave(i, reason);
        actions.extend(self.settle(id, why));
        actions
    }

    /// Ends the room if it has too few parties (with `why` for those still in it), else
    /// tells its parties who is in it.
    fn settle(&mut self, id: CallId, why: EndReason) -> Vec<CallAction> {
        let Some(room) = self.rooms.get(&id) else {
            return Vec::new();
        };
        if room.present_count() >= 1 && room.active_count() >= 2 {
            return self.announce(id);
        }
        let Some(room) = self.rooms.remove(&id) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        for m in room.members.iter().filter(|m| m.active()) {
            if let Some(s) = m.session.filter(|_| m.present()) {
                // The last party hears the roster as it ended, then the end.
                let mut roster = room.roster();
                for p in roster.parties.iter_mut().filter(|p| p.number != m.number) {
                    if p.state != PartyState::Left {
                        p.state = PartyState::Left;
                        p.source = None;
                        p.reason = Some(EndReason::Hangup);
                    }
                }
                actions.push(CallAction::Send(
                    s,
                    Event::ConferenceRoster {
                        conference: id,
                        roster,
                    },
                ));
                actions.push(state(s, id, CallPhase::Ended(why)));
            }
            for &s in &m.ringing {
                actions.push(state(s, id, CallPhase::Ended(EndReason::Hangup)));
            }
        }
        actions.push(CallAction::Room {
            room: id,
            members: Vec::new(),
        });
        actions
    }

    /// The roster to every party in the room, and the room's media members.
    fn announce(&self, id: CallId) -> Vec<CallAction> {
        let Some(room) = self.rooms.get(&id) else {
            return Vec::new();
        };
        let roster = room.roster();
        let mut actions: Vec<CallAction> = room
            .members
            .iter()
            .filter(|m| m.present())
            .filter_map(|m| m.session)
            .map(|s| {
                CallAction::Send(
                    s,
                    Event::ConferenceRoster {
                        conference: id,
                        roster: roster.clone(),
                    },
                )
            })
            .collect();
        actions.push(CallAction::Room {
            room: id,
            members: room.media(),
        });
        actions
    }

    /// The roster of room `id` (for tests and logs).
    pub fn roster(&self, id: CallId) -> Option<Roster> {
        self.rooms.get(&id).map(Room::roster)
    }

    /// Whether `sid` is in room `id` (joined or held) and hosts it.
    pub fn is_host(&self, sid: SessionId, id: CallId) -> bool {
        self.rooms.get(&id).is_some_and(|r| {
            r.by_session(sid)
                .is_some_and(|i| r.members[i].number == r.host)
        })
    }

    /// The accounts in room `id` now (joined, held or ringing).
    pub fn accounts(&self, id: CallId) -> Vec<AccountId> {
        self.rooms.get(&id).map_or_else(Vec::new, |r| {
            r.members
                .iter()
                .filter(|m| m.active())
                .map(|m| m.account)
                .collect()
        })
    }
}

/// The host's number and name, as invitations show them.
fn host_view(room: &Room) -> (String, String) {
    room.members
        .iter()
        .find(|m| m.number == room.host)
        .map(|m| (m.number.clone(), m.name.clone()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
