use proptest::prelude::*;

use super::*;

fn bridge() -> Bridge {
    let mut b = Bridge::new(Options {
        waiting: Waiting::Waiting,
        revision: "0.1.0".into(),
    });
    b.step(Event::Synced {
        calls: Vec::new(),
        online: true,
        number: "4242".into(),
    });
    b
}

fn call(local: u32, state: CallState, direction: CallDirection) -> PhoneCall {
    PhoneCall {
        local,
        state,
        direction,
        number: format!("55{local}"),
        name: format!("Peer {local}"),
        answered_ms: 0,
    }
}

fn changed(local: u32, state: CallState) -> Event {
    Event::Changed {
        local,
        state: Some(state),
        reason: None,
        answered_ms: None,
    }
}

fn state_change(local: u32, s: OfonoState) -> Output {
    Output::CallChanged {
        local,
        name: "State",
        value: s.as_str().into(),
    }
}

fn prop<'a>(props: &'a Props, name: &str) -> Option<&'a Value> {
    props.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

fn told_state(b: &Bridge, local: u32) -> Option<OfonoState> {
    b.call_props(local).map(|p| state_of(&p))
}

#[test]
fn the_modem_has_a_voice_call_manager_while_phoned_is_there() {
    let mut b = Bridge::new(Options::default());
    let props = b.modem_props();
    assert_eq!(prop(&props, "Interfaces"), Some(&Value::Strs(Vec::new())));
    assert_eq!(prop(&props, "Powered"), Some(&Value::Bool(true)));
    assert_eq!(prop(&props, "Name"), Some(&"phoned".into()));
    let out = b.step(Event::Synced {
        calls: Vec::new(),
        online: true,
        number: "4242".into(),
    });
    assert_eq!(
        out,
        [
            Output::ModemChanged("Interfaces", Value::Strs(vec![VOICE_CALL_MANAGER.into()])),
            Output::ModemChanged("Online", Value::Bool(true)),
            Output::ModemChanged("Serial", "4242".into()),
        ]
    );
    assert_eq!(
        b.step(Event::Online(false)),
        [Output::ModemChanged("Online", Value::Bool(false))]
    );
    assert_eq!(b.step(Event::Online(false)), []);
    assert_eq!(
        b.step(Event::Gone),
        [Output::ModemChanged("Interfaces", Value::Strs(Vec::new()))]
    );
}

#[test]
fn an_outgoing_call_from_dialing_to_hangup_here() {
    let mut b = bridge();
    let out = b.step(Event::Added(call(
        3,
        CallState::Dialing,
        CallDirection::Outgoing,
    )));
    let [Output::CallAdded { local: 3, props }] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(prop(props, "State"), Some(&"dialing".into()));
    assert_eq!(prop(props, "LineIdentification"), Some(&"553".into()));
    assert_eq!(prop(props, "Name"), Some(&"Peer 3".into()));
    assert_eq!(
        prop(props, "StartTime"),
        None,
        "only once answered, as oFono"
    );

    assert_eq!(
        b.step(changed(3, CallState::Ringing)),
        [state_change(3, OfonoState::Alerting)]
    );
    let out = b.step(Event::Changed {
        local: 3,
        state: Some(CallState::Active),
        reason: None,
        answered_ms: Some(1_709_210_096_789),
    });
    assert_eq!(
        out,
        [
            state_change(3, OfonoState::Active),
            Output::CallChanged {
                local: 3,
                name: "StartTime",
                value: "2024-02-29T12:34:56+0000".into()
            },
        ]
    );
    assert_eq!(b.hangup(3), Ok(PhoneOp::Hangup));
    assert_eq!(b.step(Event::EndingHere(3)), []);
    let out = b.step(Event::Changed {
        local: 3,
        state: Some(CallState::Ended),
        reason: Some(EndReason::Hangup),
        answered_ms: None,
    });
    assert_eq!(
        out,
        [
            Output::DisconnectReason {
                local: 3,
                reason: DisconnectReason::Local
            },
            state_change(3, OfonoState::Disconnected),
        ]
    );
    assert_eq!(
        b.step(Event::Removed {
            local: 3,
            reason: EndReason::Hangup
        }),
        [Output::CallRemoved { local: 3 }]
    );
    assert!(b.calls().is_empty());
    assert!(b.seen(3));
    assert_eq!(b.hangup(3), Err(Refusal::NotFound("no call 3".into())));
}

#[test]
fn a_call_removed_without_its_last_change_is_disconnected_first() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Incoming,
        CallDirection::Incoming,
    )));
    assert_eq!(
        b.step(Event::Removed {
            local: 1,
            reason: EndReason::Hangup
        }),
        [
            Output::DisconnectReason {
                local: 1,
                reason: DisconnectReason::Remote
            },
            state_change(1, OfonoState::Disconnected),
            Output::CallRemoved { local: 1 },
        ]
    );
    assert_eq!(
        b.step(Event::Removed {
            local: 1,
            reason: EndReason::Hangup
        }),
        [],
        "a call is removed once"
    );
}

#[test]
fn an_incoming_call_while_another_is_active_is_waiting_until_alone() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Active,
        CallDirection::Outgoing,
    )));
    let out = b.step(Event::Added(call(
        2,
        CallState::Incoming,
        CallDirection::Incoming,
    )));
    let [Output::CallAdded { local: 2, props }] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(prop(props, "State"), Some(&"waiting".into()));
    assert_eq!(b.answer(2), Ok(PhoneOp::Answer));
    assert_eq!(b.hangup(2), Ok(PhoneOp::Reject));
    assert_eq!(
        b.answer(1),
        Err(Refusal::Failed("the call is active, not incoming".into()))
    );

    // The active call ends: the waiting call is an incoming one now.
    assert_eq!(
        b.step(changed(1, CallState::Ended)),
        [
            Output::DisconnectReason {
                local: 1,
                reason: DisconnectReason::Remote
            },
            state_change(1, OfonoState::Disconnected),
            state_change(2, OfonoState::Incoming)
        ]
    );
    let out = b.step(Event::Removed {
        local: 1,
        reason: EndReason::Hangup,
    });
    assert_eq!(out, [Output::CallRemoved { local: 1 }]);
}

#[test]
fn answering_a_waiting_call_holds_the_active_one() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Active,
        CallDirection::Outgoing,
    )));
    b.step(Event::Added(call(
        2,
        CallState::Incoming,
        CallDirection::Incoming,
    )));
    assert_eq!(b.hold_and_answer(), Ok(vec![(2, PhoneOp::Answer)]));
    assert_eq!(
        b.release_and_answer(),
        Ok(vec![(1, PhoneOp::Hangup), (2, PhoneOp::Answer)])
    );
    // phoned holds call 1 and then makes call 2 active.
    assert_eq!(
        b.step(changed(1, CallState::Held)),
        [state_change(1, OfonoState::Held)]
    );
    assert_eq!(told_state(&b, 2), Some(OfonoState::Waiting));
    assert_eq!(
        b.step(changed(2, CallState::Active)),
        [state_change(2, OfonoState::Active)]
    );
    assert_eq!(b.swap_calls(), Ok(vec![(1, PhoneOp::Resume)]));
    assert_eq!(b.send_tones("1#").map(|(l, _)| l), Ok(2));
}

#[test]
fn waiting_calls_can_be_shown_as_incoming() {
    let mut b = Bridge::new(Options {
        waiting: Waiting::Incoming,
        revision: String::new(),
    });
    b.step(Event::Added(call(
        1,
        CallState::Active,
        CallDirection::Outgoing,
    )));
    b.step(Event::Added(call(
        2,
        CallState::Incoming,
        CallDirection::Incoming,
    )));
    assert_eq!(told_state(&b, 2), Some(OfonoState::Incoming));
    assert_eq!(b.answer(2), Ok(PhoneOp::Answer));
}

#[test]
fn tones_go_to_the_active_call() {
    let mut b = bridge();
    assert_eq!(
        b.send_tones("1"),
        Err(Refusal::Failed("no active call".into()))
    );
    b.step(Event::Added(call(
        4,
        CallState::Held,
        CallDirection::Outgoing,
    )));
    b.step(Event::Added(call(
        5,
        CallState::Active,
        CallDirection::Incoming,
    )));
    assert_eq!(b.send_tones("12a"), Ok((5, vec!["12A".to_owned()])));
    assert!(matches!(
        b.send_tones("1w2"),
        Err(Refusal::InvalidFormat(_))
    ));
    assert_eq!(b.swap_calls(), Ok(vec![(4, PhoneOp::Resume)]));
}

#[test]
fn swap_holds_the_only_active_call() {
    let mut b = bridge();
    assert!(b.swap_calls().is_err());
    assert!(b.hold_and_answer().is_err());
    b.step(Event::Added(call(
        1,
        CallState::Active,
        CallDirection::Outgoing,
    )));
    assert_eq!(b.swap_calls(), Ok(vec![(1, PhoneOp::Hold)]));
}

#[test]
fn adding_a_known_call_again_changes_nothing() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Dialing,
        CallDirection::Outgoing,
    )));
    assert_eq!(
        b.step(Event::Added(call(
            1,
            CallState::Dialing,
            CallDirection::Outgoing
        ))),
        []
    );
    assert_eq!(b.calls().len(), 1);
    assert_eq!(
        b.step(changed(9, CallState::Active)),
        [],
        "unknown calls are ignored"
    );
}

#[test]
fn phoned_leaving_ends_its_calls_and_a_new_sync_brings_them_back() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Active,
        CallDirection::Outgoing,
    )));
    b.step(Event::Added(call(
        2,
        CallState::Held,
        CallDirection::Incoming,
    )));
    let out = b.step(Event::Gone);
    assert_eq!(
        out,
        [
            Output::DisconnectReason {
                local: 1,
                reason: DisconnectReason::Network
            },
            state_change(1, OfonoState::Disconnected),
            Output::CallRemoved { local: 1 },
            Output::DisconnectReason {
                local: 2,
                reason: DisconnectReason::Network
            },
            state_change(2, OfonoState::Disconnected),
            Output::CallRemoved { local: 2 },
            Output::ModemChanged("Interfaces", Value::Strs(Vec::new())),
            Output::ModemChanged("Online", Value::Bool(false)),
        ]
    );
    let out = b.step(Event::Synced {
        calls: vec![call(1, CallState::Incoming, CallDirection::Incoming)],
        online: true,
        number: "4242".into(),
    });
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(matches!(out[2], Output::CallAdded { local: 1, .. }));
}

#[test]
fn a_sync_removes_calls_that_ended_unseen_and_updates_the_others() {
    let mut b = bridge();
    b.step(Event::Added(call(
        1,
        CallState::Dialing,
        CallDirection::Outgoing,
    )));
    b.step(Event::Added(call(
        2,
        CallState::Ringing,
        CallDirection::Outgoing,
    )));
    let mut active = call(2, CallState::Active, CallDirection::Outgoing);
    active.answered_ms = 1000;
    let out = b.step(Event::Synced {
        calls: vec![active],
        online: true,
        number: "4242".into(),
    });
    assert_eq!(
        out,
        [
            Output::DisconnectReason {
                local: 1,
                reason: DisconnectReason::Network
            },
            state_change(1, OfonoState::Disconnected),
            Output::CallRemoved { local: 1 },
            state_change(2, OfonoState::Active),
            Output::CallChanged {
                local: 2,
                name: "StartTime",
                value: "1970-01-01T00:00:01+0000".into()
            },
        ]
    );
}

/// A random event for the property test: calls 1-4, any state.
fn event() -> impl Strategy<Value = Event> {
    let state = prop::sample::select(vec![
        CallState::Dialing,
        CallState::Ringing,
        CallState::Incoming,
        CallState::Active,
        CallState::Held,
        CallState::Ended,
    ]);
    let local = 1u32..5;
    prop_oneof![
        (local.clone(), state.clone(), any::<bool>()).prop_map(|(l, s, inc)| {
            let dir = if inc {
                CallDirection::Incoming
            } else {
                CallDirection::Outgoing
            };
            Event::Added(call(l, s, dir))
        }),
        (local.clone(), state).prop_map(|(l, s)| changed(l, s)),
        local.clone().prop_map(|l| Event::Removed {
            local: l,
            reason: EndReason::Hangup
        }),
        local.prop_map(Event::EndingHere),
        any::<bool>().prop_map(Event::Online),
        Just(Event::Gone),
        prop::collection::vec((1u32..5, any::<bool>()), 0..4).prop_map(|cs| Event::Synced {
            calls: cs
                .into_iter()
                .map(|(l, inc)| {
                    let (s, d) = if inc {
                        (CallState::Incoming, CallDirection::Incoming)
                    } else {
                        (CallState::Active, CallDirection::Outgoing)
                    };
                    call(l, s, d)
                })
                .collect(),
            online: true,
            number: "1".into(),
        }),
    ]
}

proptest! {
    /// Whatever phoned says, clients hear about a call only between its CallAdded and
    /// its CallRemoved, a call is disconnected before it is removed (with a reason just
    /// before), and what they were told is the mapping of phoned's states.
    #[test]
    fn clients_hear_a_consistent_story(events in prop::collection::vec(event(), 0..40)) {
        let mut b = bridge();
        let mut live: BTreeMap<u32, OfonoState> = BTreeMap::new();
        let mut reason_told: Option<u32> = None;
        for ev in events {
            for o in b.step(ev) {
                match o {
                    Output::CallAdded { local, props } => {
                        prop_assert!(!live.contains_key(&local));
                        live.insert(local, state_of(&props));
                    }
                    Output::CallChanged { local, name, value } => {
                        prop_assert!(live.contains_key(&local));
                        if name == "State" {
                            let Value::Str(s) = value else { panic!() };
                            let s: OfonoState = s.parse().unwrap();
                            prop_assert_ne!(live[&local], OfonoState::Disconnected);
                            if s == OfonoState::Disconnected {
                                prop_assert_eq!(reason_told.take(), Some(local));
                            }
                            live.insert(local, s);
                        }
                    }
                    Output::DisconnectReason { local, .. } => {
                        prop_assert!(live.contains_key(&local));
                        reason_told = Some(local);
                    }
                    Output::CallRemoved { local } => {
                        prop_assert_eq!(live.remove(&local), Some(OfonoState::Disconnected));
                    }
                    Output::ModemChanged(..) => {}
                }
            }
            let told: BTreeMap<u32, OfonoState> =
                b.calls().iter().map(|(l, p)| (*l, state_of(p))).collect();
            prop_assert_eq!(&told, &live);
            for (local, e) in &b.calls {
                let others = b
                    .calls
                    .values()
                    .any(|o| o.call.local != *local && state::in_progress(o.call.state));
                prop_assert_eq!(
                    live[local],
                    state::to_ofono(e.call.state, others, Waiting::Waiting)
                );
            }
        }
    }
}
