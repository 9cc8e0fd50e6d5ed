use proptest::prelude::*;

use phoned_proto::conference::{MAX_PARTIES, PartyState};

use super::*;
use crate::calls::{CallError, CallIds, Callee, Calls};

// Session s belongs to account s, number "n{s}"; accounts 20 has two devices, 21 and 22.
const H: SessionId = 1;
const B: SessionId = 2;
const C: SessionId = 3;
const D1: SessionId = 21;
const D2: SessionId = 22;

fn who(session: SessionId) -> Caller {
    let account = if session == D1 || session == D2 {
        20
    } else {
        session
    };
    Caller {
        session,
        account,
        number: format!("n{account}"),
        name: format!("name {account}"),
    }
}

fn invitee(account: AccountId) -> Invitee {
    let reach = match account {
        20 => Reach::Ring(vec![D1, D2]),
        99 => Reach::Unknown,
        98 => Reach::Offline,
        a => Reach::Ring(vec![a]),
    };
    Invitee {
        number: format!("n{account}"),
        name: format!("name {account}"),
        account,
        reach,
    }
}

fn calls() -> Calls {
    Calls::new(30_000, CallIds::new([5; 32]))
}

fn phases(actions: &[CallAction], sid: SessionId) -> Vec<CallPhase> {
    actions
        .iter()
        .filter_map(|a| match a {
            CallAction::Send(s, Event::CallState { phase, .. }) if *s == sid => Some(*phase),
            _ => None,
        })
        .collect()
}

fn rang(actions: &[CallAction]) -> Vec<SessionId> {
    actions
        .iter()
        .filter_map(|a| match a {
            CallAction::Send(s, Event::ConferenceIncoming { .. }) => Some(*s),
            _ => None,
        })
        .collect()
}

fn state_of(calls: &Calls, id: CallId, number: &str) -> Option<PartyState> {
    calls
        .rooms()
        .roster(id)?
        .parties
        .into_iter()
        .find(|p| p.number == number)
        .map(|p| p.state)
}

#[test]
fn create_rings_every_device_and_the_first_answer_wins() {
    let mut c = calls();
    let (id, actions) = c
        .conference_create(0, who(H), vec![invitee(B), invitee(20)])
        .unwrap();
    assert_eq!(phases(&actions, H), [CallPhase::Active { source: 0 }]);
    assert_eq!(rang(&actions), [B, D1, D2]);
    let actions = c.answer(D2, id).unwrap();
    assert_eq!(phases(&actions, D2), [CallPhase::Active { source: 1 }]);
    assert_eq!(
        phases(&actions, D1),
        [CallPhase::Ended(EndReason::AnsweredElsewhere)]
    );
    assert_eq!(state_of(&c, id, "n20"), Some(PartyState::Joined));
    assert_eq!(state_of(&c, id, "n2"), Some(PartyState::Ringing));
    // Both present parties hear the roster; the media goes between them.
    assert!(actions.iter().any(|a| matches!(
        a,
        CallAction::Room { members, .. } if members.len() == 2 && members.iter().all(|m| m.flowing)
    )));
    assert_eq!(c.answer(D1, id), Err(CallError::NoSuchCall));
    assert_eq!(c.answer(D2, id), Err(CallError::InvalidState));
}

#[test]
fn declines_and_refusals_leave_the_others_in() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(
            0,
            who(H),
            vec![invitee(B), invitee(C), invitee(99), invitee(98)],
        )
        .unwrap();
    assert_eq!(state_of(&c, id, "n99"), Some(PartyState::Left));
    let roster = c.rooms().roster(id).unwrap();
    let reason = |n: &str| {
        roster
            .parties
            .iter()
            .find(|p| p.number == n)
            .unwrap()
            .reason
    };
    assert_eq!(reason("n99"), Some(EndReason::UnknownNumber));
    assert_eq!(reason("n98"), Some(EndReason::Offline));
    c.answer(B, id).unwrap();
    // C declines as busy (do-not-disturb): the room goes on.
    let actions = c.reject(C, id, EndReason::Busy).unwrap();
    assert_eq!(phases(&actions, C), [CallPhase::Ended(EndReason::Busy)]);
    assert!(phases(&actions, H).is_empty());
    assert_eq!(state_of(&c, id, "n3"), Some(PartyState::Left));
    assert!(c.rooms().contains(id));
}

#[test]
fn a_room_where_nobody_answers_ends() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(1_000, who(H), vec![invitee(B)])
        .unwrap();
    assert_eq!(c.next_deadline(), Some(31_000));
    let actions = c.tick(31_000);
    assert_eq!(phases(&actions, B), [CallPhase::Ended(EndReason::NoAnswer)]);
    assert_eq!(phases(&actions, H), [CallPhase::Ended(EndReason::NoAnswer)]);
    assert!(!c.rooms().contains(id));
    // Only refusals: the room ends at once, with the refusal.
    let (_, actions) = c.conference_create(0, who(H), vec![invitee(99)]).unwrap();
    assert_eq!(
        phases(&actions, H),
        [
            CallPhase::Active { source: 0 },
            CallPhase::Ended(EndReason::UnknownNumber)
        ]
    );
    assert!(c.rooms().is_empty());
}

#[test]
fn the_host_passes_to_the_longest_present_and_the_room_ends_below_two() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(0, who(H), vec![invitee(B), invitee(C)])
        .unwrap();
    c.answer(C, id).unwrap();
    c.answer(B, id).unwrap();
    assert!(c.rooms().is_host(H, id));
    // Only the host adds or removes.
    assert_eq!(
        c.conference_remove(B, id, "n3").unwrap_err(),
        CallError::NotHost
    );
    c.hangup(H, id).unwrap();
    // C joined before B.
    assert!(c.rooms().is_host(C, id));
    let actions = c.conference_remove(C, id, "n2").unwrap();
    assert_eq!(phases(&actions, B), [CallPhase::Ended(EndReason::Removed)]);
    assert_eq!(phases(&actions, C), [CallPhase::Ended(EndReason::Removed)]);
    assert!(c.rooms().is_empty());
}

#[test]
fn held_parties_neither_send_nor_receive() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(0, who(H), vec![invitee(B), invitee(C)])
        .unwrap();
    c.answer(B, id).unwrap();
    c.answer(C, id).unwrap();
    let actions = c.hold(B, id, true).unwrap();
    assert_eq!(phases(&actions, B), [CallPhase::Held { by_me: true }]);
    let members = actions
        .iter()
        .find_map(|a| match a {
            CallAction::Room { members, .. } => Some(members.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.session, m.flowing))
            .collect::<Vec<_>>(),
        [(H, true), (B, false), (C, true)]
    );
    assert_eq!(state_of(&c, id, "n2"), Some(PartyState::Held));
    let actions = c.hold(B, id, false).unwrap();
    assert_eq!(phases(&actions, B), [CallPhase::Active { source: 1 }]);
}

#[test]
fn bad_requests_change_nothing() {
    let mut c = calls();
    let (id, _) = c.conference_create(0, who(H), vec![invitee(B)]).unwrap();
    c.answer(B, id).unwrap();
    let before = c.rooms().roster(id);
    // A stranger learns nothing; a party cannot add itself or someone already in.
    assert_eq!(
        c.conference_add(0, C, id, invitee(4)).unwrap_err(),
        CallError::NoSuchCall
    );
    assert_eq!(
        c.conference_add(0, H, id, invitee(B)).unwrap_err(),
        CallError::InvalidParty
    );
    assert_eq!(
        c.conference_add(0, B, id, invitee(4)).unwrap_err(),
        CallError::NotHost
    );
    assert_eq!(
        c.conference_remove(H, id, "n77").unwrap_err(),
        CallError::InvalidParty
    );
    assert_eq!(c.hangup(C, id), Err(CallError::NoSuchCall));
    assert_eq!(c.dtmf(H, id, "1".into()), Err(CallError::InvalidState));
    assert_eq!(c.rooms().roster(id), before);
    // Creating with the host's own number, a duplicate, nobody, or too many.
    let own = Invitee {
        number: "n3".into(),
        ..invitee(5)
    };
    assert_eq!(
        c.conference_create(0, who(C), vec![own]).unwrap_err(),
        CallError::InvalidParty
    );
    assert_eq!(
        c.conference_create(0, who(C), vec![invitee(5), invitee(5)])
            .unwrap_err(),
        CallError::InvalidParty
    );
    assert_eq!(
        c.conference_create(0, who(C), vec![]).unwrap_err(),
        CallError::InvalidParty
    );
    let many: Vec<Invitee> = (100..116).map(invitee).collect();
    assert_eq!(
        c.conference_create(0, who(C), many).unwrap_err(),
        CallError::Full
    );
}

#[test]
fn adds_beyond_sixteen_are_refused() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(0, who(H), (100..115).map(invitee).collect())
        .unwrap();
    assert_eq!(c.rooms().roster(id).unwrap().parties.len(), MAX_PARTIES);
    assert_eq!(
        c.conference_add(0, H, id, invitee(200)).unwrap_err(),
        CallError::Full
    );
    // One declines: there is room again.
    c.reject(100, id, EndReason::Rejected).unwrap();
    assert!(c.conference_add(0, H, id, invitee(200)).is_ok());
}

#[test]
fn busy_devices_give_busy() {
    let mut c = calls();
    // B is in two calls already.
    for x in [40, 41] {
        let (call, _) = c
            .dial(
                0,
                who(x),
                Callee::Account {
                    id: B,
                    sessions: vec![B],
                    number: "n2".into(),
                    name: String::new(),
                },
            )
            .unwrap();
        c.answer(B, call).unwrap();
    }
    let (id, actions) = c
        .conference_create(0, who(H), vec![invitee(B), invitee(C)])
        .unwrap();
    assert_eq!(rang(&actions), [C]);
    let roster = c.rooms().roster(id).unwrap();
    let b = roster.parties.iter().find(|p| p.number == "n2").unwrap();
    assert_eq!(
        (b.state, b.reason),
        (PartyState::Left, Some(EndReason::Busy))
    );
}

fn two_party(c: &mut Calls, from: SessionId, to: SessionId) -> CallId {
    let (call, _) = c
        .dial(
            0,
            who(from),
            Callee::Account {
                id: to,
                sessions: vec![to],
                number: format!("n{to}"),
                name: format!("name {to}"),
            },
        )
        .unwrap();
    c.answer(to, call).unwrap();
    call
}

#[test]
fn merging_two_calls_moves_everyone_into_one_room() {
    let mut c = calls();
    let ab = two_party(&mut c, H, B);
    let ac = two_party(&mut c, H, C);
    c.hold(H, ab, true).unwrap();
    let (room, actions) = c.conference_merge(H, ab, ac).unwrap();
    for (s, call) in [(H, ab), (H, ac), (B, ab), (C, ac)] {
        assert!(actions.contains(&CallAction::Send(
            s,
            Event::ConferenceMoved {
                call,
                conference: room
            }
        )));
    }
    assert!(actions.contains(&CallAction::Unroute { call: ab, from: B }));
    assert_eq!(phases(&actions, B), [CallPhase::Active { source: 1 }]);
    assert_eq!(phases(&actions, C), [CallPhase::Active { source: 2 }]);
    assert_eq!(c.len(), 0);
    assert!(c.rooms().is_host(H, room));
    assert_eq!(c.rooms().roster(room).unwrap().present().count(), 3);
    // The old calls are gone.
    assert_eq!(c.hangup(B, ab), Err(CallError::NoSuchCall));
    // A stranger cannot merge others' calls.
    let x = two_party(&mut c, 7, 8);
    let y = two_party(&mut c, 7, 9);
    assert_eq!(c.conference_merge(5, x, y), Err(CallError::NoSuchCall));
}

#[test]
fn adding_to_a_call_turns_it_into_a_room() {
    let mut c = calls();
    let ab = two_party(&mut c, H, B);
    // The callee adds: it hosts.
    let (room, actions) = c.conference_add(0, B, ab, invitee(C)).unwrap();
    assert_eq!(rang(&actions), [C]);
    assert!(c.rooms().is_host(B, room));
    assert_eq!(phases(&actions, H), [CallPhase::Active { source: 1 }]);
    c.answer(C, room).unwrap();
    assert_eq!(c.rooms().roster(room).unwrap().present().count(), 3);
    // Adding one of the call's own parties is refused.
    let hb = two_party(&mut c, 4, 5);
    assert_eq!(
        c.conference_add(0, 4, hb, invitee(5)).unwrap_err(),
        CallError::InvalidParty
    );
}

#[test]
fn a_dropped_party_leaves_with_its_session() {
    let mut c = calls();
    let (id, _) = c
        .conference_create(0, who(H), vec![invitee(B), invitee(C)])
        .unwrap();
    c.answer(B, id).unwrap();
    c.answer(C, id).unwrap();
    let actions = c.session_left(B);
    assert!(phases(&actions, B).is_empty());
    let roster = c.rooms().roster(id).unwrap();
    let b = roster.parties.iter().find(|p| p.number == "n2").unwrap();
    assert_eq!(
        (b.state, b.reason),
        (PartyState::Left, Some(EndReason::Network))
    );
    let actions = c.session_left(H);
    assert_eq!(phases(&actions, C), [CallPhase::Ended(EndReason::Network)]);
    assert!(c.rooms().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Create(SessionId, Vec<AccountId>),
    Add(SessionId, usize, AccountId),
    Remove(SessionId, usize, AccountId),
    Answer(SessionId, usize),
    Reject(SessionId, usize),
    Hangup(SessionId, usize),
    Hold(SessionId, usize, bool),
    Leave(SessionId),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Sessions 1..=18 (account = session) and 21, 22 (account 20).
    let s = prop_oneof![1u64..19, Just(D1), Just(D2)];
    let a = prop_oneof![1u64..19, Just(20u64), Just(99u64)];
    let r = 0usize..4;
    prop_oneof![
        (s.clone(), proptest::collection::vec(a.clone(), 0..17))
            .prop_map(|(h, l)| Op::Create(h, l)),
        (s.clone(), r.clone(), a.clone()).prop_map(|(h, r, x)| Op::Add(h, r, x)),
        (s.clone(), r.clone(), a).prop_map(|(h, r, x)| Op::Remove(h, r, x)),
        (s.clone(), r.clone()).prop_map(|(h, r)| Op::Answer(h, r)),
        (s.clone(), r.clone()).prop_map(|(h, r)| Op::Reject(h, r)),
        (s.clone(), r.clone()).prop_map(|(h, r)| Op::Hangup(h, r)),
        (s.clone(), r, any::<bool>()).prop_map(|(h, r, x)| Op::Hold(h, r, x)),
        s.prop_map(Op::Leave),
        (0u64..40_000).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever happens: no room above 16 parties; every live room has a host in it, at
    /// least one party in it and two in all (ringing counted); present parties have
    /// distinct sources; rosters go only to parties in the room; media members are the
    /// parties in the room, and a room that ends says so.
    #[test]
    fn rooms_keep_their_invariants(ops in proptest::collection::vec(op(), 0..60)) {
        let mut c = calls();
        let mut ids: Vec<CallId> = Vec::new();
        let mut media: HashMap<CallId, Vec<RoomMember>> = HashMap::new();
        let mut now = 0;
        let room = |ids: &Vec<CallId>, r: usize| ids.get(r).copied().unwrap_or(12345);
        for op in ops {
            let actions = match op {
                Op::Create(h, list) => {
                    let mut seen = Vec::new();
                    let list: Vec<Invitee> = list.into_iter().filter(|&a| {
                        let fresh = !seen.contains(&a);
                        seen.push(a);
                        fresh
                    }).map(invitee).collect();
                    match c.conference_create(now, who(h), list) {
                        Ok((id, a)) => { ids.push(id); a }
                        Err(_) => vec![],
                    }
                }
                Op::Add(h, r, x) => c.conference_add(now, h, room(&ids, r), invitee(x)).map(|(_, a)| a).unwrap_or_default(),
                Op::Remove(h, r, x) => c.conference_remove(h, room(&ids, r), &format!("n{x}")).unwrap_or_default(),
                Op::Answer(h, r) => c.answer(h, room(&ids, r)).unwrap_or_default(),
                Op::Reject(h, r) => c.reject(h, room(&ids, r), EndReason::Rejected).unwrap_or_default(),
                Op::Hangup(h, r) => c.hangup(h, room(&ids, r)).unwrap_or_default(),
                Op::Hold(h, r, x) => c.hold(h, room(&ids, r), x).unwrap_or_default(),
                Op::Leave(s) => c.session_left(s),
                Op::Tick(t) => { now += t; c.tick(now) }
            };
            for a in &actions {
                match a {
                    CallAction::Room { room, members } => {
                        if members.is_empty() {
                            prop_assert!(!c.rooms().contains(*room), "an empty media room that goes on");
                            media.remove(room);
                        } else {
                            media.insert(*room, members.clone());
                        }
                    }
                    CallAction::Send(s, Event::ConferenceRoster { conference, roster }) => {
                        prop_assert!(roster.check().is_ok(), "{:?}", roster.check());
                        if c.rooms().contains(*conference) {
                            let r = c.rooms().roster(*conference).unwrap();
                            let present: Vec<String> = r.present().map(|p| p.number.clone()).collect();
                            prop_assert!(present.contains(&who(*s).number), "roster sent to a party not in the room");
                        }
                    }
                    _ => {}
                }
            }
            for &id in &ids {
                let Some(r) = c.rooms().roster(id) else {
                    prop_assert!(!media.contains_key(&id), "media of an ended room");
                    continue;
                };
                let active = r.parties.iter().filter(|p| p.state != PartyState::Left).count();
                prop_assert!(active <= MAX_PARTIES);
                prop_assert!(active >= 2);
                prop_assert!(r.present().count() >= 1);
                prop_assert!(r.check().is_ok(), "{:?}", r.check());
                let m = media.get(&id).cloned().unwrap_or_default();
                prop_assert_eq!(m.len(), r.present().count());
                for p in r.present() {
                    let held = p.state == PartyState::Held;
                    prop_assert!(m.iter().any(|x| Some(x.source) == p.source && x.flowing != held));
                }
            }
            for sid in (1..19).chain([D1, D2]) {
                prop_assert!(c.load(sid) <= 2, "a device in more than two calls and rooms");
            }
        }
    }
}
