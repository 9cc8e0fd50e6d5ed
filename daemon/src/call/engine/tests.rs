use super::*;

const OFF: Policy = Policy {
    do_not_disturb: false,
    auto_answer: AutoAnswer::Off,
    known_caller: false,
};

fn sends(out: &[Output]) -> Vec<Request> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(_, r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn outgoing_call_from_dial_to_hangup() {
    let mut e = Engine::new();
    let (l, out) = e.dial("1042".into(), "Alice".into(), 1_000);
    assert_eq!(
        out,
        [
            Output::Added(l),
            Output::Send(l, Request::Dial { to: "1042".into() })
        ]
    );
    assert_eq!(e.get(l).unwrap().state, CallState::Dialing);
    e.placed(l, 7);
    e.phase(7, CallPhase::Ringing, 1_100);
    assert_eq!(e.get(l).unwrap().state, CallState::Ringing);
    let out = e.phase(7, CallPhase::Active { source: 0 }, 2_000);
    assert!(out.contains(&Output::StartMedia {
        local: l,
        call: 7,
        source: 0
    }));
    assert_eq!(
        sends(&e.hangup(l, 2_500).unwrap()),
        [Request::Hangup { call: 7 }]
    );
    let out = e.phase(7, CallPhase::Ended(EndReason::Hangup), 5_000);
    assert!(out.contains(&Output::StopMedia(l)));
    let record = out
        .iter()
        .find_map(|o| match o {
            Output::Record(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (record.result, record.duration_ms, record.missed),
        (CallResult::Answered, 3_000, false)
    );
    assert_eq!(out.last(), Some(&Output::Removed(l, EndReason::Hangup)));
    assert!(e.get(l).is_none());
}

#[test]
fn incoming_call_rings_then_is_missed() {
    let mut e = Engine::new();
    let out = e.incoming(9, "2000".into(), "Bob".into(), OFF, 0);
    let l = match out[0] {
        Output::Added(l) => l,
        _ => panic!(),
    };
    assert!(out.contains(&Output::Ring(l)));
    assert_eq!(
        e.hold(l, true),
        Err(EngineError::InvalidState(CallState::Incoming))
    );
    let out = e.phase(9, CallPhase::Ended(EndReason::NoAnswer), 30_000);
    assert!(out.contains(&Output::StopRinging(l)) && out.contains(&Output::Missed(l)));
}

#[test]
fn a_call_that_leaves_the_incoming_state_stops_ringing_first() {
    let mut e = Engine::new();
    // Answered: the ring stops before the media starts (the device is the call's).
    e.incoming(9, "2000".into(), "Bob".into(), OFF, 0);
    let out = e.phase(9, CallPhase::Active { source: 1 }, 10);
    assert!(matches!(
        out.as_slice(),
        [Output::StopRinging(_), Output::StartMedia { .. }, ..]
    ));
    // Whatever else the relay says about it.
    for phase in [CallPhase::Held { by_me: false }, CallPhase::Ringing] {
        let out = e.incoming(10, "2000".into(), "Bob".into(), OFF, 20);
        let Output::Added(l) = out[0] else { panic!() };
        let out = e.phase(10, phase, 30);
        assert_eq!(out.first(), Some(&Output::StopRinging(l)), "{phase:?}");
        e.phase(10, CallPhase::Ended(EndReason::Hangup), 40);
    }
}

#[test]
fn do_not_disturb_declines_busy_and_auto_answer_answers() {
    let mut e = Engine::new();
    let dnd = Policy {
        do_not_disturb: true,
        ..OFF
    };
    let out = e.incoming(1, "2000".into(), "Bob".into(), dnd, 0);
    assert_eq!(
        sends(&out),
        [Request::Reject {
            call: 1,
            reason: EndReason::Busy
        }]
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Ring(_))));
    let out = e.phase(1, CallPhase::Ended(EndReason::Busy), 10);
    assert!(!out.iter().any(|o| matches!(o, Output::Missed(_))));

    let contacts = Policy {
        auto_answer: AutoAnswer::Contacts,
        known_caller: true,
        ..OFF
    };
    assert_eq!(
        sends(&e.incoming(2, "3000".into(), "C".into(), contacts, 0)),
        [Request::Answer { call: 2 }]
    );
    let stranger = Policy {
        auto_answer: AutoAnswer::Contacts,
        known_caller: false,
        ..OFF
    };
    assert!(sends(&e.incoming(3, "4000".into(), "D".into(), stranger, 0)).is_empty());
}

#[test]
fn answering_a_waiting_call_holds_the_active_one() {
    let mut e = Engine::new();
    let (first, _) = e.dial("1042".into(), "A".into(), 0);
    e.placed(first, 1);
    e.phase(1, CallPhase::Active { source: 0 }, 0);
    let out = e.incoming(
        2,
        "2000".into(),
        "B".into(),
        Policy {
            auto_answer: AutoAnswer::All,
            ..OFF
        },
        0,
    );
    // Auto-answer does not take a second call over an active one: it rings (waiting).
    let second = match out[0] {
        Output::Added(l) => l,
        _ => panic!(),
    };
    assert!(out.contains(&Output::Ring(second)));
    assert_eq!(e.get(second).unwrap().state, CallState::Waiting);
    let out = e.answer(second).unwrap();
    assert_eq!(
        sends(&out),
        [
            Request::Hold {
                call: 1,
                held: true
            },
            Request::Answer { call: 2 }
        ]
    );
    let out = e.phase(1, CallPhase::Held { by_me: true }, 0);
    assert!(out.contains(&Output::PauseMedia(first)));
    assert_eq!(e.get(first).unwrap().state, CallState::Held);
    assert_eq!(
        sends(&e.hold(first, false).unwrap()),
        [Request::Hold {
            call: 1,
            held: false
        }]
    );
}

#[test]
fn mute_dtmf_and_link_loss() {
    let mut e = Engine::new();
    let (l, _) = e.dial("1042".into(), "A".into(), 0);
    assert_eq!(
        e.send_dtmf(l, "1".into()),
        Err(EngineError::InvalidState(CallState::Dialing))
    );
    e.placed(l, 5);
    e.phase(5, CallPhase::Active { source: 0 }, 0);
    assert_eq!(e.set_muted(l, true).unwrap(), [Output::Changed(l)]);
    assert!(e.set_muted(l, true).unwrap().is_empty());
    assert!(e.get(l).unwrap().muted);
    assert_eq!(
        sends(&e.send_dtmf(l, "12".into()).unwrap()),
        [Request::Dtmf {
            call: 5,
            digits: "12".into()
        }]
    );
    assert_eq!(
        e.dtmf_received(5, "9".into()),
        [Output::DtmfReceived(l, "9".into())]
    );
    let out = e.link_lost(100);
    assert_eq!(out.last(), Some(&Output::Removed(l, EndReason::Network)));
    assert_eq!(e.calls().count(), 0);
    assert_eq!(e.answer(l), Err(EngineError::NoSuchCall));
}

#[test]
fn hanging_up_before_the_relay_placed_the_call_ends_it_locally() {
    let mut e = Engine::new();
    let (l, _) = e.dial("1042".into(), "A".into(), 0);
    let out = e.hangup(l, 5).unwrap();
    assert!(sends(&out).is_empty());
    assert_eq!(out.last(), Some(&Output::Removed(l, EndReason::Hangup)));
    // Once placed, the relay's call is hung up too (found by tests/tests/pair.rs: the
    // callee could answer and talk to nobody).
    assert_eq!(e.phase(7, CallPhase::Ringing, 6), vec![]);
    assert_eq!(
        e.placed(l, 7),
        [Output::Send(l, Request::Hangup { call: 7 })]
    );
    assert_eq!(e.placed(l, 7), []);
}

#[test]
fn events_that_overtake_call_placed_are_applied_when_it_arrives() {
    let mut e = Engine::new();
    let (l, _) = e.dial("1042".into(), "A".into(), 0);
    assert!(e.phase(3, CallPhase::Ringing, 1).is_empty());
    assert!(e.phase(3, CallPhase::Active { source: 0 }, 2).is_empty());
    let out = e.placed(l, 3);
    assert!(out.contains(&Output::StartMedia {
        local: l,
        call: 3,
        source: 0
    }));
    assert_eq!(e.get(l).unwrap().state, CallState::Active);
}

/// An answered call: (engine, local, relay id 1).
fn talking() -> (Engine, Local) {
    let mut e = Engine::new();
    let (l, _) = e.dial("1042".into(), "A".into(), 0);
    e.placed(l, 1);
    e.phase(1, CallPhase::Active { source: 0 }, 0);
    (e, l)
}

fn hold_of(e: &Engine, l: Local) -> (CallState, bool, bool) {
    let c = e.get(l).unwrap();
    (c.state, c.held_by_me, c.remote_held)
}

#[test]
fn a_call_the_other_side_holds_stays_active_and_only_they_resume_it() {
    let (mut e, l) = talking();
    // The other side holds: still active here, held remotely, media paused.
    let out = e.phase(1, CallPhase::Held { by_me: false }, 10);
    assert!(out.contains(&Output::PauseMedia(l)) && out.contains(&Output::Changed(l)));
    assert_eq!(hold_of(&e, l), (CallState::Active, false, true));
    // Protocol 3 says the same right after: nothing more changes.
    assert_eq!(e.hold_state(1, false, true), []);
    // Resuming is theirs to do; it says so rather than naming a state.
    assert_eq!(e.hold(l, false), Err(EngineError::HeldByOtherSide));
    // Holding it from this side too works.
    assert_eq!(
        sends(&e.hold(l, true).unwrap()),
        [Request::Hold {
            call: 1,
            held: true
        }]
    );
    e.phase(1, CallPhase::Held { by_me: true }, 20);
    assert_eq!(e.hold_state(1, true, true), []);
    assert_eq!(hold_of(&e, l), (CallState::Held, true, true));
    // They resume while this side still holds: only `CallHold` can say so.
    e.phase(1, CallPhase::Held { by_me: true }, 30);
    assert_eq!(e.hold_state(1, true, false), [Output::Changed(l)]);
    assert_eq!(hold_of(&e, l), (CallState::Held, true, false));
    // They hold again, and this side resumes: active, held remotely.
    e.phase(1, CallPhase::Held { by_me: true }, 40);
    assert_eq!(e.hold_state(1, true, true), [Output::Changed(l)]);
    assert_eq!(
        sends(&e.hold(l, false).unwrap()),
        [Request::Hold {
            call: 1,
            held: false
        }]
    );
    e.phase(1, CallPhase::Held { by_me: false }, 50);
    assert_eq!(e.hold_state(1, false, true), []);
    assert_eq!(hold_of(&e, l), (CallState::Active, false, true));
    // They resume: talking again.
    let out = e.phase(1, CallPhase::Active { source: 0 }, 60);
    assert!(out.contains(&Output::StartMedia {
        local: l,
        call: 1,
        source: 0
    }));
    assert_eq!(e.hold_state(1, false, false), []);
    assert_eq!(hold_of(&e, l), (CallState::Active, false, false));
    // Nothing held: neither hold nor resume is refused for the wrong reason.
    assert_eq!(
        e.hold(l, false),
        Err(EngineError::InvalidState(CallState::Active))
    );
}

#[test]
fn without_call_hold_events_a_remote_hold_seen_before_this_sides_stands() {
    // A protocol 2 relay: the phase alone. The other side held first, then this side.
    let (mut e, l) = talking();
    e.phase(1, CallPhase::Held { by_me: false }, 10);
    e.phase(1, CallPhase::Held { by_me: true }, 20);
    assert_eq!(hold_of(&e, l), (CallState::Held, true, true));
    // This side resumes; the other still holds.
    e.phase(1, CallPhase::Held { by_me: false }, 30);
    assert_eq!(hold_of(&e, l), (CallState::Active, false, true));
}

#[test]
fn hold_events_for_calls_not_answered_or_unknown_change_nothing() {
    let mut e = Engine::new();
    let out = e.incoming(4, "2000".into(), "B".into(), OFF, 0);
    let Output::Added(l) = out[0] else { panic!() };
    assert_eq!(e.hold_state(4, false, true), []);
    assert_eq!(e.get(l).unwrap().state, CallState::Incoming);
    // One for a dial not placed yet waits for it, like its phases.
    let (d, _) = e.dial("1042".into(), "A".into(), 0);
    assert_eq!(e.phase(9, CallPhase::Active { source: 0 }, 1), []);
    assert_eq!(e.phase(9, CallPhase::Held { by_me: false }, 2), []);
    assert_eq!(e.hold_state(9, false, true), []);
    e.placed(d, 9);
    assert_eq!(hold_of(&e, d), (CallState::Active, false, true));
}

#[test]
fn a_call_during_another_waits_and_answering_it_holds_the_other_here() {
    let (mut e, first) = talking();
    // Even a call the other side holds counts: a new call waits.
    e.phase(1, CallPhase::Held { by_me: false }, 5);
    let out = e.incoming(2, "2000".into(), "B".into(), OFF, 10);
    let Output::Added(second) = out[0] else {
        panic!()
    };
    assert!(out.contains(&Output::Ring(second)));
    assert_eq!(e.get(second).unwrap().state, CallState::Waiting);
    // Answering holds the first from this side (it would talk again when they resume).
    assert_eq!(
        sends(&e.answer(second).unwrap()),
        [
            Request::Hold {
                call: 1,
                held: true
            },
            Request::Answer { call: 2 }
        ]
    );
    e.phase(1, CallPhase::Held { by_me: true }, 20);
    e.hold_state(1, true, true);
    let out = e.phase(2, CallPhase::Active { source: 1 }, 20);
    assert_eq!(out.first(), Some(&Output::StopRinging(second)));
    assert_eq!(hold_of(&e, first), (CallState::Held, true, true));
    assert_eq!(e.get(second).unwrap().state, CallState::Active);
}

#[test]
fn a_waiting_call_can_be_declined_and_rings_as_incoming_once_the_other_call_ends() {
    let (mut e, _) = talking();
    let out = e.incoming(
        2,
        "2000".into(),
        "B".into(),
        Policy {
            auto_answer: AutoAnswer::All,
            ..OFF
        },
        10,
    );
    let Output::Added(second) = out[0] else {
        panic!()
    };
    assert!(
        sends(&out).is_empty(),
        "a waiting call is never auto-answered"
    );
    assert_eq!(
        sends(&e.reject(second, false).unwrap()),
        [Request::Reject {
            call: 2,
            reason: EndReason::Rejected
        }]
    );
    // Another waits; the active call ends: it is an incoming call now.
    let out = e.incoming(3, "3000".into(), "C".into(), OFF, 20);
    let Output::Added(third) = out[0] else {
        panic!()
    };
    assert_eq!(e.get(third).unwrap().state, CallState::Waiting);
    let out = e.phase(1, CallPhase::Ended(EndReason::Hangup), 30);
    assert!(out.contains(&Output::Changed(third)));
    assert_eq!(e.get(third).unwrap().state, CallState::Incoming);
    assert!(!out.contains(&Output::StopRinging(third)), "it rings on");
    // And a call ringing here turns into a waiting one when a dial is answered.
    let (d, _) = e.dial("1042".into(), "A".into(), 40);
    e.placed(d, 4);
    let out = e.phase(4, CallPhase::Active { source: 0 }, 50);
    assert!(out.contains(&Output::Changed(third)));
    assert_eq!(e.get(third).unwrap().state, CallState::Waiting);
    // Hanging up a waiting call declines it, as for any ringing call.
    assert_eq!(
        sends(&e.hangup(third, 60).unwrap()),
        [Request::Hangup { call: 3 }]
    );
    let out = e.phase(3, CallPhase::Ended(EndReason::Rejected), 70);
    assert!(out.contains(&Output::StopRinging(third)));
}
