use super::*;
use proptest::prelude::*;

const A: SessionId = 1; // caller, account 10
const B1: SessionId = 2; // callee devices, account 20
const B2: SessionId = 3;
const C: SessionId = 4; // a third person, account 30

fn caller(session: SessionId, account: AccountId) -> Caller {
    Caller {
        session,
        account,
        number: format!("{account}00"),
        name: format!("n{account}"),
    }
}

fn b() -> Callee {
    Callee::Account {
        id: 20,
        sessions: vec![B1, B2],
        number: String::new(),
        name: String::new(),
    }
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

#[test]
fn every_device_rings_and_the_first_to_answer_wins() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, actions) = calls.dial(0, caller(A, 10), b()).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Ringing]);
    let rung: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, CallAction::Send(_, Event::CallIncoming { from_number, .. }) if from_number == "1000"))
        .collect();
    assert_eq!(rung.len(), 2);
    let actions = calls.answer(B2, id).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Active { source: 0 }]);
    assert_eq!(phases(&actions, B2), [CallPhase::Active { source: 1 }]);
    assert_eq!(
        phases(&actions, B1),
        [CallPhase::Ended(EndReason::AnsweredElsewhere)]
    );
    assert!(actions.contains(&CallAction::Route {
        call: id,
        from: A,
        to: B2
    }));
    assert!(actions.contains(&CallAction::Route {
        call: id,
        from: B2,
        to: A
    }));
    assert_eq!(calls.answer(B1, id), Err(CallError::NoSuchCall));
    assert_eq!(calls.answer(B2, id), Err(CallError::InvalidState));
    let actions = calls.hangup(A, id).unwrap();
    assert_eq!(phases(&actions, B2), [CallPhase::Ended(EndReason::Hangup)]);
    assert!(actions.contains(&CallAction::Unroute { call: id, from: A }));
    assert!(calls.is_empty());
}

#[test]
fn outcomes_before_ringing() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    assert_eq!(
        calls.dial(0, caller(A, 10), Callee::Unknown).unwrap_err(),
        EndReason::UnknownNumber
    );
    let offline = Callee::Account {
        id: 20,
        sessions: vec![],
        number: String::new(),
        name: String::new(),
    };
    assert_eq!(
        calls.dial(0, caller(A, 10), offline).unwrap_err(),
        EndReason::Offline
    );
    let me = Callee::Account {
        id: 10,
        sessions: vec![A],
        number: String::new(),
        name: String::new(),
    };
    assert_eq!(
        calls.dial(0, caller(A, 10), me).unwrap_err(),
        EndReason::Busy
    );
}

#[test]
fn reject_no_answer_and_busy() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    let actions = calls.reject(B1, id, EndReason::Rejected).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Ended(EndReason::Rejected)]);
    assert_eq!(
        phases(&actions, B2),
        [CallPhase::Ended(EndReason::Rejected)]
    );

    let (id, _) = calls.dial(1_000, caller(A, 10), b()).unwrap();
    assert_eq!(calls.next_deadline(), Some(31_000));
    assert!(calls.tick(30_999).is_empty());
    let actions = calls.tick(31_000);
    assert_eq!(phases(&actions, A), [CallPhase::Ended(EndReason::NoAnswer)]);
    assert!(calls.accounts(id).is_none());

    // Do-not-disturb declines with busy.
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    let actions = calls.reject(B2, id, EndReason::Busy).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Ended(EndReason::Busy)]);
}

#[test]
fn a_new_ring_timeout_applies_to_calls_placed_after_it() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (old, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    calls.set_ring_timeout(2_000);
    let (new, _) = calls.dial(1_000, caller(C, 30), b()).unwrap();
    assert_eq!(calls.next_deadline(), Some(3_000));
    let actions = calls.tick(3_000);
    assert_eq!(phases(&actions, C), [CallPhase::Ended(EndReason::NoAnswer)]);
    assert!(phases(&actions, A).is_empty());
    assert!(calls.accounts(new).is_none());
    // The call that was ringing at the change keeps its 30 s.
    assert!(calls.tick(29_999).is_empty());
    let actions = calls.tick(30_000);
    assert_eq!(phases(&actions, A), [CallPhase::Ended(EndReason::NoAnswer)]);
    assert!(calls.accounts(old).is_none());
}

#[test]
fn a_second_call_waits_and_a_third_is_busy() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let one = Callee::Account {
        id: 20,
        sessions: vec![B1],
        number: String::new(),
        name: String::new(),
    };
    let (first, _) = calls.dial(0, caller(A, 10), one).unwrap();
    calls.answer(B1, first).unwrap();
    let (second, actions) = calls
        .dial(
            0,
            caller(C, 30),
            Callee::Account {
                id: 20,
                sessions: vec![B1],
                number: String::new(),
                name: String::new(),
            },
        )
        .unwrap();
    assert!(actions.iter().any(
        |a| matches!(a, CallAction::Send(B1, Event::CallIncoming { call, .. }) if *call == second)
    ));
    // B1 puts the first on hold and answers the second.
    let held = calls.hold(B1, first, true).unwrap();
    assert_eq!(phases(&held, A), [CallPhase::Held { by_me: false }]);
    assert_eq!(phases(&held, B1), [CallPhase::Held { by_me: true }]);
    assert!(held.contains(&CallAction::Unroute {
        call: first,
        from: A
    }));
    calls.answer(B1, second).unwrap();
    let third = calls.dial(
        0,
        caller(5, 40),
        Callee::Account {
            id: 20,
            sessions: vec![B1],
            number: String::new(),
            name: String::new(),
        },
    );
    assert_eq!(third.unwrap_err(), EndReason::Busy);
    let resumed = calls.hold(B1, first, false).unwrap();
    assert!(resumed.contains(&CallAction::Route {
        call: first,
        from: A,
        to: B1
    }));
    assert_eq!(phases(&resumed, A), [CallPhase::Active { source: 0 }]);
}

fn holds(actions: &[CallAction], sid: SessionId) -> Vec<(bool, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            CallAction::Send(s, Event::CallHold { by_me, by_peer, .. }) if *s == sid => {
                Some((*by_me, *by_peer))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn each_party_is_told_who_holds_the_call_after_its_phase() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    calls.answer(B1, id).unwrap();
    // B holds: A sees the call held by its peer.
    let actions = calls.hold(B1, id, true).unwrap();
    assert_eq!(holds(&actions, A), [(false, true)]);
    assert_eq!(holds(&actions, B1), [(true, false)]);
    // Each party's `CallHold` comes right after its `CallState`.
    let a_events: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, CallAction::Send(A, _)))
        .collect();
    assert!(matches!(
        a_events[..],
        [
            CallAction::Send(_, Event::CallState { .. }),
            CallAction::Send(_, Event::CallHold { .. })
        ]
    ));
    // A holds too: the phase says only "held by me"; `CallHold` says both.
    let actions = calls.hold(A, id, true).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Held { by_me: true }]);
    assert_eq!(holds(&actions, A), [(true, true)]);
    assert_eq!(holds(&actions, B1), [(true, true)]);
    // B resumes: A's phase does not change, but `CallHold` does.
    let actions = calls.hold(B1, id, false).unwrap();
    assert_eq!(phases(&actions, A), [CallPhase::Held { by_me: true }]);
    assert_eq!(holds(&actions, A), [(true, false)]);
    assert_eq!(phases(&actions, B1), [CallPhase::Held { by_me: false }]);
    assert_eq!(holds(&actions, B1), [(false, true)]);
    let actions = calls.hold(A, id, false).unwrap();
    assert_eq!(phases(&actions, B1), [CallPhase::Active { source: 1 }]);
    assert_eq!(holds(&actions, B1), [(false, false)]);
}

#[test]
fn a_lost_session_ends_its_calls() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    // One ringing device vanishes: the other keeps ringing.
    assert!(calls.session_left(B1).is_empty());
    calls.answer(B2, id).unwrap();
    let actions = calls.session_left(A);
    assert_eq!(phases(&actions, B2), [CallPhase::Ended(EndReason::Network)]);
    assert!(
        phases(&actions, A).is_empty(),
        "nothing is sent to the departed session"
    );
    // The callee's last ringing device vanishes: the caller hears "offline".
    let (_, _) = calls
        .dial(
            0,
            caller(A, 10),
            Callee::Account {
                id: 20,
                sessions: vec![B1],
                number: String::new(),
                name: String::new(),
            },
        )
        .unwrap();
    let actions = calls.session_left(B1);
    assert_eq!(phases(&actions, A), [CallPhase::Ended(EndReason::Offline)]);
}

#[test]
fn dtmf_goes_to_the_other_party_only_when_answered() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    assert_eq!(calls.dtmf(A, id, "1".into()), Err(CallError::InvalidState));
    calls.answer(B1, id).unwrap();
    let actions = calls.dtmf(A, id, "12#".into()).unwrap();
    assert_eq!(
        actions,
        [CallAction::Send(
            B1,
            Event::CallDtmf {
                call: id,
                digits: "12#".into()
            }
        )]
    );
    assert_eq!(calls.dtmf(C, id, "1".into()), Err(CallError::NoSuchCall));
}

#[test]
fn strangers_learn_nothing_about_a_call() {
    let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
    let (id, _) = calls.dial(0, caller(A, 10), b()).unwrap();
    // Ringing, then answered: every request from a session outside the call is the
    // same `NoSuchCall` as for a call id that was never used.
    for answered in [false, true] {
        if answered {
            calls.answer(B1, id).unwrap();
        }
        for missing in [id, id + 1000] {
            assert_eq!(
                calls.dtmf(C, missing, "1".into()),
                Err(CallError::NoSuchCall)
            );
            assert_eq!(calls.hold(C, missing, true), Err(CallError::NoSuchCall));
            assert_eq!(calls.hangup(C, missing), Err(CallError::NoSuchCall));
            assert_eq!(calls.answer(C, missing), Err(CallError::NoSuchCall));
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Dial(SessionId, SessionId),
    Answer(SessionId, CallId),
    Reject(SessionId, CallId),
    Hangup(SessionId, CallId),
    Hold(SessionId, CallId, bool),
    Leave(SessionId),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let s = 1u64..6;
    let c = 1u64..8;
    prop_oneof![
        (s.clone(), s.clone()).prop_map(|(a, b)| Op::Dial(a, b)),
        (s.clone(), c.clone()).prop_map(|(a, b)| Op::Answer(a, b)),
        (s.clone(), c.clone()).prop_map(|(a, b)| Op::Reject(a, b)),
        (s.clone(), c.clone()).prop_map(|(a, b)| Op::Hangup(a, b)),
        (s.clone(), c, any::<bool>()).prop_map(|(a, b, h)| Op::Hold(a, b, h)),
        s.prop_map(Op::Leave),
        (0u64..100_000).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever happens, routes are symmetric and only exist between the two parties
    /// of a live, answered, un-held call; every ended call is announced to its parties.
    #[test]
    fn routes_only_join_the_parties_of_live_calls(ops in proptest::collection::vec(op(), 0..80)) {
        let mut calls = Calls::new(30_000, CallIds::new([9; 32]));
        let mut routes: std::collections::HashSet<(CallId, SessionId, SessionId)> = Default::default();
        let mut now = 0;
        for op in ops {
            let actions = match op {
                // Session s belongs to account s; one device per account.
                Op::Dial(a, b) => calls
                    .dial(now, caller(a, a), Callee::Account { id: b, sessions: vec![b], number: String::new(), name: String::new() })
                    .map(|(_, acts)| acts)
                    .unwrap_or_default(),
                Op::Answer(s, c) => calls.answer(s, c).unwrap_or_default(),
                Op::Reject(s, c) => calls.reject(s, c, EndReason::Rejected).unwrap_or_default(),
                Op::Hangup(s, c) => calls.hangup(s, c).unwrap_or_default(),
                Op::Hold(s, c, h) => calls.hold(s, c, h).unwrap_or_default(),
                Op::Leave(s) => calls.session_left(s),
                Op::Tick(t) => { now += t; calls.tick(now) }
            };
            for a in actions {
                match a {
                    CallAction::Route { call, from, to } => { routes.insert((call, from, to)); }
                    CallAction::Unroute { call, from } => { routes.retain(|r| !(r.0 == call && r.1 == from)); }
                    CallAction::Send(..) | CallAction::Room { .. } => {}
                }
            }
            for &(call, from, to) in &routes {
                prop_assert!(routes.contains(&(call, to, from)), "asymmetric route");
                let c = calls.calls.get(&call);
                prop_assert!(c.is_some(), "route of an ended call");
                let c = c.unwrap();
                prop_assert!(c.peer_of(from) == Some(to));
                prop_assert!(!c.held[0] && !c.held[1]);
            }
            for sid in 1..6 {
                prop_assert!(calls.load(sid) <= MAX_CALLS_PER_DEVICE);
            }
        }
    }
}
