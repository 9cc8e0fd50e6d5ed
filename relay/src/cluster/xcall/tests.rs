//! Two call routers joined by two legs, with the link in between simulated: a call from
//! a device on relay A to one on relay B rings, is answered, held, ended from either side,
//! and the end reasons that reach the caller are the callee's.

use super::*;
use crate::calls::{CallAction, CallIds, Callee, Caller, Calls};
use crate::hub::SessionId;
use proptest::prelude::*;

const CALLER: SessionId = 1; // on A, account 10
const LEG_A: SessionId = 100; // on A, stands for the callee
const LOCAL_B: SessionId = 5; // a device of the callee on A too (some tests)
const DEV1: SessionId = 2; // on B, devices of account 20
const DEV2: SessionId = 3;
const LEG_B: SessionId = 200; // on B, stands for the caller
const RING_MS: u64 = 30_000;

/// Both relays, their legs, and what each device was sent.
struct World {
    a: Calls,
    b: Calls,
    leg_a: Leg,
    leg_b: Option<Leg>,
    call: Option<CallId>,
    /// Events the devices (not the legs) got, in order.
    seen: Vec<(SessionId, Event)>,
    /// The callee's devices on B.
    b_devices: Vec<SessionId>,
    /// Media routes installed or removed, per relay (`true`: relay A).
    routes: Vec<(bool, CallAction)>,
    now: u64,
}

impl World {
    fn new(b_devices: Vec<SessionId>, local_b: bool) -> World {
        let mut w = World {
            a: Calls::new(RING_MS, CallIds::new([1; 32])),
            b: Calls::new(RING_MS, CallIds::new([2; 32])),
            leg_a: Leg::origin(10, 20, "2000".into(), "Bob".into()),
            leg_b: None,
            call: None,
            seen: Vec::new(),
            b_devices,
            routes: Vec::new(),
            now: 0,
        };
        let mut sessions = vec![LEG_A];
        if local_b {
            sessions.insert(0, LOCAL_B);
        }
        let (call, actions) =
            w.a.dial(
                0,
                Caller {
                    session: CALLER,
                    account: 10,
                    number: "1000".into(),
                    name: "Alice".into(),
                },
                Callee::Account {
                    id: 20,
                    sessions,
                    number: "2000".into(),
                    name: "Bob".into(),
                },
            )
            .expect("dialled");
        w.call = Some(call);
        w.on_a(actions);
        w
    }

    /// Actions of relay A's router: the leg's go over the link.
    fn on_a(&mut self, actions: Vec<CallAction>) {
        for action in actions {
            match action {
                CallAction::Send(LEG_A, e) => {
                    if let Some(msg) = self.leg_a.event(&e) {
                        self.arrives_at_b(msg);
                    }
                }
                CallAction::Send(s, e) => self.seen.push((s, e)),
                other => self.routes.push((true, other)),
            }
        }
    }

    fn on_b(&mut self, actions: Vec<CallAction>) {
        for action in actions {
            match action {
                CallAction::Send(LEG_B, e) => {
                    let leg = self.leg_b.as_mut().expect("leg on B");
                    if let Some(msg) = leg.event(&e) {
                        self.arrives_at_a(msg);
                    }
                }
                CallAction::Send(s, e) => self.seen.push((s, e)),
                other => self.routes.push((false, other)),
            }
        }
    }

    /// A message arrives at relay B (encoded and decoded, as on the wire).
    fn arrives_at_b(&mut self, msg: PeerMsg) {
        let msg = wire(&msg);
        if let PeerMsg::Ring {
            call,
            caller,
            from_number,
            from_name,
            callee,
            callee_number,
            callee_name,
        } = msg
        {
            self.leg_b = Some(Leg::target(call));
            let actions = self
                .b
                .dial_as(
                    self.now,
                    call,
                    Caller {
                        session: LEG_B,
                        account: caller,
                        number: from_number,
                        name: from_name,
                    },
                    Callee::Account {
                        id: callee,
                        sessions: self.b_devices.clone(),
                        number: callee_number,
                        name: callee_name,
                    },
                )
                .unwrap_or_else(|reason| {
                    vec![CallAction::Send(
                        LEG_B,
                        Event::CallState {
                            call,
                            phase: CallPhase::Ended(reason),
                        },
                    )]
                });
            return self.on_b(actions);
        }
        let op = self.leg_b.as_mut().unwrap().message(msg).expect("taken");
        if let Some(op) = op {
            let actions = apply(&mut self.b, LEG_B, op);
            self.on_b(actions);
        }
    }

    fn arrives_at_a(&mut self, msg: PeerMsg) {
        let op = self.leg_a.message(wire(&msg)).expect("taken");
        if let Some(op) = op {
            let actions = apply(&mut self.a, LEG_A, op);
            self.on_a(actions);
        }
    }

    fn id(&self) -> CallId {
        self.call.unwrap()
    }

    /// Phases device `sid` was told, in order.
    fn phases(&self, sid: SessionId) -> Vec<CallPhase> {
        self.seen
            .iter()
            .filter_map(|(s, e)| match e {
                Event::CallState { phase, .. } if *s == sid => Some(*phase),
                _ => None,
            })
            .collect()
    }

    fn last(&self, sid: SessionId) -> Option<CallPhase> {
        self.phases(sid).last().copied()
    }

    fn b_op(&mut self, sid: SessionId, op: Op) {
        let actions = apply(&mut self.b, sid, op);
        self.on_b(actions);
    }

    fn a_op(&mut self, sid: SessionId, op: Op) {
        let actions = apply(&mut self.a, sid, op);
        self.on_a(actions);
    }
}

fn wire(msg: &PeerMsg) -> PeerMsg {
    let mut bytes = Vec::new();
    msg.encode(&mut bytes);
    let mut decoder = phoned_proto::FrameDecoder::new();
    decoder.push(&bytes);
    let body = decoder.next_frame().unwrap().unwrap().to_vec();
    PeerMsg::decode(&body).expect("decodes")
}

fn apply(calls: &mut Calls, sid: SessionId, op: Op) -> Vec<CallAction> {
    let result = match op {
        Op::Answer(id) => calls.answer(sid, id),
        Op::Reject(id, r) => calls.reject(sid, id, r),
        Op::Hangup(id) => calls.hangup(sid, id),
        Op::Hold(id, h) => calls.hold(sid, id, h),
        Op::Dtmf(id, d) => calls.dtmf(sid, id, d),
        Op::Ended(id, r) => calls.ended_by(sid, id, r),
        Op::Remove(..) => unreachable!(),
    };
    result.unwrap_or_default()
}

fn world() -> World {
    World::new(vec![DEV1, DEV2], false)
}

#[test]
fn a_call_between_relays_rings_there_is_answered_and_routes_media_both_ways() {
    let mut w = world();
    let id = w.id();
    assert_eq!(w.phases(CALLER), [CallPhase::Ringing]);
    let rung: Vec<SessionId> = w
        .seen
        .iter()
        .filter_map(|(s, e)| match e {
            Event::CallIncoming {
                call, from_number, ..
            } if *call == id && from_number == "1000" => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(rung, [DEV1, DEV2]);
    w.b_op(DEV2, Op::Answer(id));
    assert_eq!(w.last(CALLER), Some(CallPhase::Active { source: 0 }));
    assert_eq!(w.last(DEV2), Some(CallPhase::Active { source: 1 }));
    assert_eq!(
        w.last(DEV1),
        Some(CallPhase::Ended(EndReason::AnsweredElsewhere))
    );
    // Media: caller ↔ leg on A, leg ↔ device on B.
    for (on_a, from, to) in [
        (true, CALLER, LEG_A),
        (true, LEG_A, CALLER),
        (false, LEG_B, DEV2),
        (false, DEV2, LEG_B),
    ] {
        assert!(
            w.routes
                .contains(&(on_a, CallAction::Route { call: id, from, to })),
            "{from} → {to}"
        );
    }
    // The callee hangs up: the caller hears `hangup`, both relays drop the call and its
    // routes.
    w.b_op(DEV2, Op::Hangup(id));
    assert_eq!(w.last(CALLER), Some(CallPhase::Ended(EndReason::Hangup)));
    assert!(w.a.is_empty() && w.b.is_empty());
    assert!(w.routes.contains(&(
        true,
        CallAction::Unroute {
            call: id,
            from: CALLER
        }
    )));
    assert!(w.routes.contains(&(
        false,
        CallAction::Unroute {
            call: id,
            from: DEV2
        }
    )));
    assert!(w.leg_a.done() && w.leg_b.as_ref().unwrap().done());
}

#[test]
fn the_caller_hanging_up_ends_it_on_the_other_relay() {
    let mut w = world();
    let id = w.id();
    w.b_op(DEV1, Op::Answer(id));
    w.a_op(CALLER, Op::Hangup(id));
    assert_eq!(w.last(DEV1), Some(CallPhase::Ended(EndReason::Hangup)));
    assert!(w.a.is_empty() && w.b.is_empty());
    // Ringing: the callee's devices stop with `hangup` too.
    let mut w = world();
    let id = w.id();
    w.a_op(CALLER, Op::Hangup(id));
    assert_eq!(w.last(DEV1), Some(CallPhase::Ended(EndReason::Hangup)));
    assert_eq!(w.last(DEV2), Some(CallPhase::Ended(EndReason::Hangup)));
    assert!(w.b.is_empty());
}

#[test]
fn the_caller_hears_the_callees_refusal_as_it_is() {
    for (reason, heard) in [
        (EndReason::Rejected, EndReason::Rejected),
        (EndReason::Busy, EndReason::Busy),
    ] {
        let mut w = world();
        let id = w.id();
        w.b_op(DEV1, Op::Reject(id, reason));
        assert_eq!(w.last(CALLER), Some(CallPhase::Ended(heard)), "{reason:?}");
        assert!(w.a.is_empty() && w.b.is_empty());
    }
    // No answer before the callee's relay's ring timeout.
    let mut w = world();
    w.now = RING_MS;
    let actions = w.b.tick(RING_MS);
    w.on_b(actions);
    assert_eq!(w.last(CALLER), Some(CallPhase::Ended(EndReason::NoAnswer)));
    // Nobody there any more (the devices moved away): offline at once.
    let w = World::new(Vec::new(), false);
    assert_eq!(w.last(CALLER), Some(CallPhase::Ended(EndReason::Offline)));
    assert!(w.a.is_empty() && w.b.is_empty());
}

#[test]
fn a_device_here_keeps_ringing_when_the_other_relays_devices_do_not_answer() {
    let mut w = World::new(vec![DEV1, DEV2], true);
    let id = w.id();
    let actions = w.b.tick(RING_MS);
    w.on_b(actions);
    assert_eq!(w.phases(CALLER), [CallPhase::Ringing]);
    w.a_op(LOCAL_B, Op::Answer(id));
    assert_eq!(w.last(CALLER), Some(CallPhase::Active { source: 0 }));
    // A device there answering ends the one here as answered elsewhere, and the other
    // way round.
    let mut w = World::new(vec![DEV1, DEV2], true);
    let id = w.id();
    w.a_op(LOCAL_B, Op::Answer(id));
    assert_eq!(
        w.last(DEV1),
        Some(CallPhase::Ended(EndReason::AnsweredElsewhere))
    );
    assert!(w.b.is_empty());
    let mut w = World::new(vec![DEV1, DEV2], true);
    let id = w.id();
    w.b_op(DEV1, Op::Answer(id));
    assert_eq!(
        w.last(LOCAL_B),
        Some(CallPhase::Ended(EndReason::AnsweredElsewhere))
    );
    assert_eq!(w.last(CALLER), Some(CallPhase::Active { source: 0 }));
}

#[test]
fn hold_and_dtmf_cross_both_ways_without_echo() {
    let mut w = world();
    let id = w.id();
    w.b_op(DEV1, Op::Answer(id));
    w.b_op(DEV1, Op::Hold(id, true));
    let holds = |w: &World, sid| {
        w.seen
            .iter()
            .filter_map(|(s, e)| match e {
                Event::CallHold { by_me, by_peer, .. } if *s == sid => Some((*by_me, *by_peer)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(holds(&w, CALLER), [(false, true)]);
    assert_eq!(w.last(CALLER), Some(CallPhase::Held { by_me: false }));
    w.a_op(CALLER, Op::Hold(id, true));
    assert_eq!(holds(&w, DEV1).last(), Some(&(true, true)));
    w.b_op(DEV1, Op::Hold(id, false));
    w.a_op(CALLER, Op::Hold(id, false));
    assert_eq!(w.last(CALLER), Some(CallPhase::Active { source: 0 }));
    assert_eq!(w.last(DEV1), Some(CallPhase::Active { source: 1 }));
    w.a_op(CALLER, Op::Dtmf(id, "12#".into()));
    w.b_op(DEV1, Op::Dtmf(id, "9".into()));
    let dtmf = |w: &World, sid| {
        w.seen
            .iter()
            .filter_map(|(s, e)| match e {
                Event::CallDtmf { digits, .. } if *s == sid => Some(digits.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(dtmf(&w, DEV1), ["12#"]);
    assert_eq!(dtmf(&w, CALLER), ["9"]);
}

#[test]
fn a_lost_link_ends_the_call_like_a_dead_device() {
    // Answered: the caller's relay sees its leg leave: `network`.
    let mut w = world();
    let id = w.id();
    w.b_op(DEV1, Op::Answer(id));
    let actions = w.a.session_left(LEG_A);
    w.on_a(actions);
    assert_eq!(w.last(CALLER), Some(CallPhase::Ended(EndReason::Network)));
    let actions = w.b.session_left(LEG_B);
    w.on_b(actions);
    assert_eq!(w.last(DEV1), Some(CallPhase::Ended(EndReason::Network)));
    // Ringing: the callee is gone, `offline`.
    let w2 = {
        let mut w = world();
        let actions = w.a.session_left(LEG_A);
        w.on_a(actions);
        w
    };
    assert_eq!(w2.last(CALLER), Some(CallPhase::Ended(EndReason::Offline)));
}

#[test]
fn a_taken_id_or_a_stranger_gets_nowhere() {
    let mut b = Calls::new(RING_MS, CallIds::new([2; 32]));
    let caller = |session| Caller {
        session,
        account: 10,
        number: "1000".into(),
        name: String::new(),
    };
    let callee = || Callee::Account {
        id: 20,
        sessions: vec![DEV1],
        number: String::new(),
        name: String::new(),
    };
    b.dial_as(0, 77, caller(LEG_B), callee()).unwrap();
    assert_eq!(
        b.dial_as(0, 77, caller(LEG_B + 1), callee()),
        Err(EndReason::Network)
    );
    assert_eq!(
        b.dial_as(0, 0, caller(LEG_B + 1), callee()),
        Err(EndReason::Network)
    );
    // Only a party's leg may end the call.
    assert!(b.ended_by(DEV2, 77, EndReason::Hangup).is_err());
    // A leg's messages before its ring, or out of place, are refused.
    let mut leg = Leg::origin(10, 20, String::new(), String::new());
    assert!(leg.message(PeerMsg::Answered).is_err());
    let mut leg = Leg::target(77);
    assert!(leg.message(PeerMsg::Answered).is_err());
    assert!(
        leg.message(PeerMsg::Ring {
            call: 1,
            caller: 1,
            from_number: String::new(),
            from_name: String::new(),
            callee: 2,
            callee_number: String::new(),
            callee_name: String::new(),
        })
        .is_err()
    );
}

#[test]
fn oversized_texts_are_refused() {
    let body = postcard::to_allocvec(&PeerMsg::Dtmf("1".repeat(MAX_TEXT + 1))).unwrap();
    assert_eq!(PeerMsg::decode(&body), Err(LegError::TooLong("DTMF")));
    assert!(matches!(
        PeerMsg::decode(&[0xff, 0xff]),
        Err(LegError::Decode(_))
    ));
}

proptest! {
    /// Any bytes: a message or a typed error, never a panic.
    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PeerMsg::decode(&bytes);
    }

    /// Whatever the devices on both relays do, in any order, both relays agree at the
    /// end: the call is gone on both or on neither, and each leg is done exactly when its
    /// relay no longer has the call.
    #[test]
    fn both_relays_agree(ops in proptest::collection::vec((0u8..8, any::<bool>()), 0..12)) {
        let mut w = world();
        let id = w.id();
        for (op, flag) in ops {
            let dev = if flag { DEV1 } else { DEV2 };
            match op {
                0 => w.b_op(dev, Op::Answer(id)),
                1 => w.b_op(dev, Op::Reject(id, EndReason::Rejected)),
                2 => w.b_op(dev, Op::Hangup(id)),
                3 => w.a_op(CALLER, Op::Hangup(id)),
                4 => w.b_op(dev, Op::Hold(id, flag)),
                5 => w.a_op(CALLER, Op::Hold(id, flag)),
                6 => {
                    w.now += RING_MS;
                    let actions = w.b.tick(w.now);
                    w.on_b(actions);
                }
                _ => {
                    let actions = w.b.session_left(dev);
                    w.on_b(actions);
                }
            }
        }
        prop_assert_eq!(w.a.is_empty(), w.b.is_empty());
        prop_assert_eq!(w.leg_a.done(), w.a.is_empty());
    }
}
