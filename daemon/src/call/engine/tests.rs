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
