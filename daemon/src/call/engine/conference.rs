//! Conferences in the call engine. This device's place in a conference is a call whose
//! relay id is the room's: it rings, is answered, held, muted and hung up (left) like any
//! call, and its media carries the room's up to three speakers. What is particular to
//! rooms is kept beside it ([`ConferenceInfo`]): who invited, and the roster the relay
//! sends. A call moved into a room (a merge, an add) keeps its local number; on the
//! device that merged, the second call ends with `merged`.

use phoned_proto::Request;
use phoned_proto::call::{CallDirection, CallId, CallState, EndReason};
use phoned_proto::conference::Roster;

use super::{Call, Engine, EngineError, Local, Output, Policy};

/// What a call that is a conference knows of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// Who invited this device (number, name), for an invitation.
    pub invited_by: Option<(String, String)>,
    /// The relay's latest roster (none before the first).
    pub roster: Option<Roster>,
}

impl Engine {
    /// The user opens a conference with `numbers`: the call it will be, and the request.
    pub fn create_conference(&mut self, numbers: Vec<String>, now_ms: u64) -> (Local, Request) {
        let local = self.insert(Call {
            local: 0,
            relay: None,
            direction: CallDirection::Outgoing,
            state: CallState::Dialing,
            reason: None,
            remote_number: String::new(),
            remote_name: String::new(),
            muted: false,
            created_ms: now_ms,
            answered_ms: None,
            held_by_me: false,
            remote_held: false,
            conference: Some(ConferenceInfo::default()),
        });
        (local, Request::ConferenceCreate { numbers })
    }

    /// The relay invites this device into `conference` (by `number`, `name`): it rings
    /// like a call.
    pub fn invited(
        &mut self,
        conference: CallId,
        number: String,
        name: String,
        policy: Policy,
        now_ms: u64,
    ) -> Vec<Output> {
        let info = ConferenceInfo {
            invited_by: Some((number.clone(), name.clone())),
            roster: None,
        };
        let mut out = self.incoming(conference, number, name, policy, now_ms);
        if let Some(local) = self.by_relay(conference)
            && let Some(c) = self.calls.get_mut(&local)
        {
            c.conference = Some(info);
            out.insert(1, Output::Conference(local));
        }
        out
    }

    /// The relay moved call `call` into `conference`. If another call here is already in
    /// that room (the second call of a merge), this one ends with `merged`.
    pub fn moved(&mut self, call: CallId, conference: CallId, now_ms: u64) -> Vec<Output> {
        let Some(local) = self.by_relay(call) else {
            return Vec::new();
        };
        if self.by_relay(conference).is_some() {
            return self.end(local, EndReason::Merged, now_ms);
        }
        let Some(c) = self.calls.get_mut(&local) else {
            return Vec::new();
        };
        c.relay = Some(conference);
        c.conference.get_or_insert_with(ConferenceInfo::default);
        vec![Output::Conference(local), Output::Changed(local)]
    }

    /// The relay answered a merge, or an add to a plain call, with the room that call
    /// `local` is now in: it is a conference from now on (the relay's `ConferenceMoved`
    /// for it, which follows its answer, then finds nothing left to do). Nothing for a
    /// call that was that room already.
    pub fn room_placed(&mut self, local: Local, conference: CallId) -> Vec<Output> {
        let Some(c) = self.calls.get_mut(&local) else {
            return Vec::new();
        };
        if c.relay == Some(conference) && c.conference.is_some() {
            return Vec::new();
        }
        c.relay = Some(conference);
        c.conference.get_or_insert_with(ConferenceInfo::default);
        vec![Output::Conference(local), Output::Changed(local)]
    }

    /// The relay's roster of `conference` (checked by the caller).
    pub fn roster(&mut self, conference: CallId, roster: Roster) -> Vec<Output> {
        let Some(local) = self.by_relay(conference) else {
            return Vec::new();
        };
        let Some(c) = self.calls.get_mut(&local) else {
            return Vec::new();
        };
        let info = c.conference.get_or_insert_with(ConferenceInfo::default);
        if info.roster.as_ref() == Some(&roster) {
            return Vec::new();
        }
        info.roster = Some(roster);
        vec![Output::Conference(local)]
    }

    /// The request that adds `number` to the conference `local` is (or that turns the
    /// answered call `local` into one).
    pub fn conference_add(&self, local: Local, number: String) -> Result<Request, EngineError> {
        let (call, state) = self.relay_id(local)?;
        if !matches!(state, CallState::Active | CallState::Held) {
            return Err(EngineError::InvalidState(state));
        }
        Ok(Request::ConferenceAdd { call, number })
    }

    /// The request that takes `number` out of conference `local`.
    pub fn conference_remove(&self, local: Local, number: String) -> Result<Request, EngineError> {
        let (call, state) = self.relay_id(local)?;
        let is_room = self
            .calls
            .get(&local)
            .is_some_and(|c| c.conference.is_some());
        if !is_room || !matches!(state, CallState::Active | CallState::Held) {
            return Err(EngineError::InvalidState(state));
        }
        Ok(Request::ConferenceRemove { call, number })
    }

    /// The request that merges the active call with the call held here, and the local
    /// number the conference will have (the active call's).
    pub fn merge(&self) -> Result<(Local, Request), EngineError> {
        let answered = |state: CallState, by_me: bool| {
            self.calls
                .values()
                .filter(move |c| {
                    c.state == state && (state != CallState::Held || c.held_by_me == by_me)
                })
                .filter_map(|c| c.relay.map(|id| (c.local, id)))
        };
        let active: Vec<_> = answered(CallState::Active, false).collect();
        let held: Vec<_> = answered(CallState::Held, true).collect();
        match (active.as_slice(), held.as_slice()) {
            ([(local, first)], [(_, second)]) => Ok((
                *local,
                Request::ConferenceMerge {
                    first: *first,
                    second: *second,
                },
            )),
            _ => Err(EngineError::InvalidState(
                active
                    .first()
                    .map_or(CallState::Held, |_| CallState::Active),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use phoned_proto::call::CallPhase;
    use phoned_proto::conference::{Party, PartyState};
    use phoned_proto::state::AutoAnswer;

    use super::*;

    fn policy() -> Policy {
        Policy {
            do_not_disturb: false,
            auto_answer: AutoAnswer::Off,
            known_caller: false,
        }
    }

    fn roster(host: &str, numbers: &[&str]) -> Roster {
        Roster {
            host: host.into(),
            parties: numbers
                .iter()
                .enumerate()
                .map(|(i, n)| Party {
                    number: (*n).into(),
                    name: String::new(),
                    state: PartyState::Joined,
                    source: Some(i as u32),
                    reason: None,
                })
                .collect(),
        }
    }

    #[test]
    fn an_invitation_rings_as_a_call_that_knows_who_invited() {
        let mut e = Engine::new();
        let out = e.invited(77, "1001".into(), "Ann".into(), policy(), 0);
        let local = e.by_relay(77).unwrap();
        assert!(out.contains(&Output::Ring(local)));
        assert!(out.contains(&Output::Conference(local)));
        let c = e.get(local).unwrap();
        assert_eq!(
            c.conference.as_ref().unwrap().invited_by,
            Some(("1001".into(), "Ann".into()))
        );
        let out = e.answer(local).unwrap();
        assert!(out.contains(&Output::Send(local, Request::Answer { call: 77 })));
        let out = e.phase(77, CallPhase::Active { source: 3 }, 10);
        assert!(out.contains(&Output::StartMedia {
            local,
            call: 77,
            source: 3
        }));
        assert_eq!(
            e.roster(77, roster("1001", &["1001", "me"])),
            [Output::Conference(local)]
        );
        // The same roster again changes nothing.
        assert!(e.roster(77, roster("1001", &["1001", "me"])).is_empty());
    }

    #[test]
    fn creating_a_conference_is_a_call_placed_by_the_relay() {
        let mut e = Engine::new();
        let (local, req) = e.create_conference(vec!["1".into(), "2".into()], 0);
        assert_eq!(
            req,
            Request::ConferenceCreate {
                numbers: vec!["1".into(), "2".into()]
            }
        );
        e.placed(local, 500);
        e.phase(500, CallPhase::Active { source: 0 }, 1);
        assert_eq!(e.get(local).unwrap().state, CallState::Active);
        assert!(e.conference_remove(local, "1".into()).is_ok());
    }

    /// Dials `number`, placed as `call`, answered.
    fn talking(e: &mut Engine, number: &str, call: CallId) -> Local {
        let (local, _) = e.dial(number.into(), String::new(), 0);
        e.placed(local, call);
        e.phase(call, CallPhase::Active { source: 0 }, 0);
        local
    }

    #[test]
    fn merging_keeps_the_active_call_and_ends_the_held_one_as_merged() {
        let mut e = Engine::new();
        let b = talking(&mut e, "2", 10);
        assert!(e.merge().is_err(), "one call cannot merge");
        e.phase(10, CallPhase::Held { by_me: true }, 0);
        let c = talking(&mut e, "3", 11);
        let (local, req) = e.merge().unwrap();
        assert_eq!(local, c);
        assert_eq!(
            req,
            Request::ConferenceMerge {
                first: 11,
                second: 10
            }
        );
        // The relay answers with room 99, then moves both calls into it, the active one
        // first: the answer made the active call the room already.
        let out = e.room_placed(c, 99);
        assert_eq!(out, [Output::Conference(c), Output::Changed(c)]);
        assert!(e.moved(11, 99, 5).is_empty());
        assert!(e.room_placed(c, 99).is_empty(), "once");
        let out = e.moved(10, 99, 5);
        assert!(out.contains(&Output::Removed(b, EndReason::Merged)));
        assert!(e.get(b).is_none());
        assert_eq!(e.get(c).unwrap().relay, Some(99));
        // Adding to a plain call asks the relay to turn it into a room.
        let d = talking(&mut e, "4", 12);
        assert_eq!(
            e.conference_add(d, "5".into()),
            Ok(Request::ConferenceAdd {
                call: 12,
                number: "5".into()
            })
        );
        assert!(e.conference_remove(d, "4".into()).is_err());
    }
}
