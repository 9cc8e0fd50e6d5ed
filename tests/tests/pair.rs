//! Two (and more) daemon call engines against the relay's call router on virtual time
//! ([`sim`]): examples of what users see, then property tests over random operation
//! sequences on every device with random link latencies and link losses.

#[path = "pair/sim.rs"]
mod sim;

use phoned_proto::call::{CallDirection, CallResult, CallState, EndReason};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sim::{Dev, RING_TIMEOUT_MS, Sim};

/// A places a call to Bob; both of Bob's devices ring.
fn ringing() -> (Sim, u32, u32, u32) {
    let mut sim = Sim::new();
    let (a, b1, b2) = (sim.dev("A"), sim.dev("B1"), sim.dev("B2"));
    let local = sim.dial(a, "1002");
    sim.drive();
    assert_eq!(sim.devices[a].calls()[0].state, CallState::Ringing);
    let l1 = only_call(&sim, b1);
    let l2 = only_call(&sim, b2);
    assert!(sim.devices[b1].ringing.contains(&l1));
    assert!(sim.devices[b2].ringing.contains(&l2));
    (sim, local, l1, l2)
}

fn only_call(sim: &Sim, dev: Dev) -> u32 {
    let calls = sim.devices[dev].calls();
    assert_eq!(calls.len(), 1, "{} has {calls:?}", sim.devices[dev].name);
    calls[0].local
}

fn assert_idle(sim: &Sim) {
    for d in &sim.devices {
        assert_eq!(d.calls(), [], "{} still has calls", d.name);
        assert!(d.ringing.is_empty(), "{} still rings", d.name);
        assert!(d.media.is_empty(), "{} still has media", d.name);
    }
    assert!(sim.router.is_empty(), "the router still has calls");
    assert!(sim.routes.is_empty(), "media routes left: {:?}", sim.routes);
}

#[test]
fn answering_on_b2_ends_the_ringing_on_b1() {
    let (mut sim, la, l1, l2) = ringing();
    let (a, b1, b2) = (sim.dev("A"), sim.dev("B1"), sim.dev("B2"));
    sim.answer(b2, l2);
    sim.drive();
    assert_eq!(sim.devices[a].calls()[0].state, CallState::Active);
    assert_eq!(sim.devices[b2].calls()[0].state, CallState::Active);
    assert_eq!(sim.devices[b1].calls(), []);
    assert!(sim.devices[b1].ringing.is_empty());
    assert_eq!(sim.end_reason(b1, l1), Some(EndReason::AnsweredElsewhere));
    assert!(
        sim.devices[b1].missed.is_empty(),
        "answered elsewhere is not missed"
    );
    assert_eq!(sim.routes.len(), 2, "media both ways between A and B2");
    sim.hangup(a, la);
    sim.drive();
    assert_eq!(sim.end_reason(b2, l2), Some(EndReason::Hangup));
    assert_eq!(sim.devices[b2].history[0].result, CallResult::Answered);
    assert_idle(&sim);
}

#[test]
fn do_not_disturb_on_every_device_makes_the_caller_busy() {
    let mut sim = Sim::new();
    let (a, b1, b2) = (sim.dev("A"), sim.dev("B1"), sim.dev("B2"));
    sim.devices[b1].dnd = true;
    sim.devices[b2].dnd = true;
    let la = sim.dial(a, "1002");
    sim.drive();
    assert_eq!(sim.end_reason(a, la), Some(EndReason::Busy));
    for b in [b1, b2] {
        assert!(
            sim.devices[b].ringing.is_empty(),
            "do not disturb never rings"
        );
        assert!(sim.devices[b].missed.is_empty());
        assert_eq!(sim.devices[b].history.len(), 1);
    }
    assert_idle(&sim);
}

#[test]
fn a_hangup_while_ringing_stops_both_devices_and_is_a_missed_call() {
    let (mut sim, la, l1, l2) = ringing();
    let (a, b1, b2) = (sim.dev("A"), sim.dev("B1"), sim.dev("B2"));
    sim.hangup(a, la);
    sim.drive();
    for (b, l) in [(b1, l1), (b2, l2)] {
        assert_eq!(sim.end_reason(b, l), Some(EndReason::Hangup));
        assert_eq!(sim.devices[b].missed, [l]);
        assert!(sim.devices[b].history[0].missed);
    }
    assert_eq!(
        sim.devices[a].history[0].result,
        CallResult::NotAnswered(EndReason::Hangup)
    );
    assert_idle(&sim);
}

#[test]
fn nobody_answering_ends_with_no_answer_at_the_ring_timeout() {
    let (mut sim, la, l1, _) = ringing();
    let (a, b1) = (sim.dev("A"), sim.dev("B1"));
    sim.drive_until(RING_TIMEOUT_MS - 1);
    assert_eq!(sim.devices[a].calls().len(), 1, "still ringing");
    sim.drive_until(RING_TIMEOUT_MS + 1_000);
    assert_eq!(sim.end_reason(a, la), Some(EndReason::NoAnswer));
    assert_eq!(sim.end_reason(b1, l1), Some(EndReason::NoAnswer));
    assert_eq!(sim.devices[b1].missed, [l1]);
    assert_idle(&sim);
}

#[test]
fn hold_is_seen_from_each_side_and_only_the_holder_resumes() {
    let (mut sim, la, _, l2) = ringing();
    let (a, b2) = (sim.dev("A"), sim.dev("B2"));
    sim.answer(b2, l2);
    sim.drive();
    sim.hold(a, la, true);
    sim.drive();
    // Held on A's side; on B's, active and held by the other side.
    let (ca, cb) = (&sim.devices[a].calls()[0], &sim.devices[b2].calls()[0]);
    assert_eq!(
        (ca.state, ca.held_by_me, ca.remote_held),
        (CallState::Held, true, false)
    );
    assert_eq!(
        (cb.state, cb.held_by_me, cb.remote_held),
        (CallState::Active, false, true)
    );
    assert_eq!(sim.devices[a].media.get(&la), Some(&false));
    assert_eq!(sim.devices[b2].media.get(&l2), Some(&false));
    assert!(sim.routes.is_empty(), "no media forwarded while held");
    // Only the side that held may resume; B may hold as well, and both see both.
    assert_eq!(
        sim.devices[b2].engine.hold(l2, false),
        Err(phoned::call::engine::EngineError::HeldByOtherSide)
    );
    sim.hold(b2, l2, true);
    sim.drive();
    for (dev, l) in [(a, la), (b2, l2)] {
        let c = sim.devices[dev].engine.get(l).unwrap();
        assert_eq!((c.state, c.remote_held), (CallState::Held, true));
    }
    // A resumes: still held by B, so still no media.
    sim.hold(a, la, false);
    sim.drive();
    let ca = &sim.devices[a].calls()[0];
    assert_eq!((ca.state, ca.remote_held), (CallState::Active, true));
    assert!(sim.routes.is_empty());
    sim.hold(b2, l2, false);
    sim.drive();
    assert_eq!(sim.devices[a].calls()[0].state, CallState::Active);
    assert_eq!(sim.devices[b2].calls()[0].state, CallState::Active);
    assert!(!sim.devices[a].calls()[0].remote_held);
    assert!(!sim.devices[b2].calls()[0].remote_held);
    assert_eq!(sim.devices[b2].media.get(&l2), Some(&true));
    assert_eq!(sim.routes.len(), 2);
    sim.send_dtmf(b2, l2, "12#");
    sim.drive();
    assert_eq!(sim.devices[a].dtmf, ["12#"]);
}

#[test]
fn a_call_during_a_call_waits_and_answering_it_holds_the_first_on_this_side() {
    let (mut sim, la, _, l2) = ringing();
    let (a, b2, c) = (sim.dev("A"), sim.dev("B2"), sim.dev("C"));
    sim.answer(b2, l2);
    sim.drive();
    // C calls A during A–B: it waits on A, with no ring through the device.
    let lc = sim.dial(c, "1001");
    sim.drive();
    let waiting = sim.devices[a]
        .calls()
        .into_iter()
        .find(|x| x.local != la)
        .unwrap();
    assert_eq!(waiting.state, CallState::Waiting);
    assert!(sim.devices[a].ringing.contains(&waiting.local));
    assert_eq!(
        sim.devices[c].engine.get(lc).unwrap().state,
        CallState::Ringing
    );
    // A answers it: A–B is held by A, B sees it held by the other side, A–C talks.
    sim.answer(a, waiting.local);
    sim.drive();
    let first = sim.devices[a].engine.get(la).unwrap().clone();
    assert_eq!((first.state, first.held_by_me), (CallState::Held, true));
    let at_b = &sim.devices[b2].calls()[0];
    assert_eq!((at_b.state, at_b.remote_held), (CallState::Active, true));
    let second = sim.devices[a].engine.get(waiting.local).unwrap();
    assert_eq!(second.state, CallState::Active);
    assert_eq!(sim.devices[a].media.get(&la), Some(&false));
    assert_eq!(sim.devices[a].media.get(&waiting.local), Some(&true));
    assert!(sim.devices[a].ringing.is_empty());
}

#[test]
fn losing_the_callers_link_mid_call_ends_the_call_for_the_callee() {
    let (mut sim, la, _, l2) = ringing();
    let (a, b2) = (sim.dev("A"), sim.dev("B2"));
    sim.answer(b2, l2);
    sim.drive();
    sim.detect_ms = 5_000;
    sim.lose_link(a);
    assert_eq!(sim.end_reason(a, la), Some(EndReason::Network));
    sim.advance(4_000);
    assert_eq!(
        sim.devices[b2].calls()[0].state,
        CallState::Active,
        "not noticed yet"
    );
    sim.advance(2_000);
    assert_eq!(sim.end_reason(b2, l2), Some(EndReason::Network));
    assert_idle(&sim);
    // Back online, A can call again.
    sim.connect(a);
    sim.dial(a, "1003");
    sim.drive();
    assert_eq!(sim.devices[sim.dev("C")].calls().len(), 1);
}

#[test]
fn a_dial_hung_up_before_it_was_placed_is_hung_up_at_the_relay_too() {
    // Found by the property test: the relay placed the call after A had forgotten it,
    // and B could answer into a call with nobody on the other end.
    let mut sim = Sim::new();
    let (a, b1, b2) = (sim.dev("A"), sim.dev("B1"), sim.dev("B2"));
    sim.devices[a].latency_ms = 100;
    let la = sim.dial(a, "1002");
    sim.hangup(a, la);
    assert_eq!(sim.end_reason(a, la), Some(EndReason::Hangup));
    sim.drive();
    for b in [b1, b2] {
        assert_eq!(
            sim.devices[b].removed.len(),
            1,
            "{} rang and stopped",
            sim.devices[b].name
        );
        assert_eq!(sim.devices[b].removed[0].1, EndReason::Hangup);
    }
    assert_idle(&sim);
}

// ---- property tests ----

#[derive(Debug, Clone)]
enum Op {
    /// Device dials account `to` (3: a number nobody has).
    Dial {
        dev: Dev,
        to: usize,
    },
    /// An action on the device's `nth` call (modulo how many it has).
    Answer {
        dev: Dev,
        nth: usize,
    },
    Reject {
        dev: Dev,
        nth: usize,
        busy: bool,
    },
    Hangup {
        dev: Dev,
        nth: usize,
    },
    Hold {
        dev: Dev,
        nth: usize,
        held: bool,
    },
    Dtmf {
        dev: Dev,
        nth: usize,
    },
    Dnd {
        dev: Dev,
        on: bool,
    },
    LoseLink {
        dev: Dev,
    },
    Connect {
        dev: Dev,
    },
    /// Let virtual time pass.
    Wait {
        ms: u64,
    },
}

const DEVICES: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    let dev = 0..DEVICES;
    let nth = 0..3usize;
    prop_oneof![
        3 => (dev.clone(), 0..4usize).prop_map(|(dev, to)| Op::Dial { dev, to }),
        3 => (dev.clone(), nth.clone()).prop_map(|(dev, nth)| Op::Answer { dev, nth }),
        1 => (dev.clone(), nth.clone(), any::<bool>())
            .prop_map(|(dev, nth, busy)| Op::Reject { dev, nth, busy }),
        2 => (dev.clone(), nth.clone()).prop_map(|(dev, nth)| Op::Hangup { dev, nth }),
        2 => (dev.clone(), nth.clone(), any::<bool>())
            .prop_map(|(dev, nth, held)| Op::Hold { dev, nth, held }),
        1 => (dev.clone(), nth.clone()).prop_map(|(dev, nth)| Op::Dtmf { dev, nth }),
        1 => (dev.clone(), any::<bool>()).prop_map(|(dev, on)| Op::Dnd { dev, on }),
        1 => dev.clone().prop_map(|dev| Op::LoseLink { dev }),
        1 => dev.prop_map(|dev| Op::Connect { dev }),
        3 => prop_oneof![0..50u64, 0..2_000u64, Just(RING_TIMEOUT_MS)]
            .prop_map(|ms| Op::Wait { ms }),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    latencies: Vec<u64>,
    detect_ms: u64,
    response_jitter_ms: u64,
    /// Devices that answer every call themselves.
    auto_answer: Vec<bool>,
    ops: Vec<Op>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        proptest::collection::vec(1..300u64, DEVICES),
        0..5_000u64,
        0..100u64,
        proptest::collection::vec(proptest::bool::weighted(0.15), DEVICES),
        proptest::collection::vec(op(), 1..40),
    )
        .prop_map(
            |(latencies, detect_ms, response_jitter_ms, auto_answer, ops)| Setup {
                latencies,
                detect_ms,
                response_jitter_ms,
                auto_answer,
                ops,
            },
        )
}

fn nth_call(sim: &Sim, dev: Dev, nth: usize) -> Option<u32> {
    let calls = sim.devices[dev].calls();
    (!calls.is_empty()).then(|| calls[nth % calls.len()].local)
}

fn run(sim: &mut Sim, op: &Op) {
    let numbers = ["1001", "1002", "1003", "1999"];
    match *op {
        Op::Dial { dev, to } => {
            sim.dial(dev, numbers[to]);
        }
        Op::Answer { dev, nth } => {
            if let Some(l) = nth_call(sim, dev, nth) {
                sim.answer(dev, l);
            }
        }
        Op::Reject { dev, nth, busy } => {
            if let Some(l) = nth_call(sim, dev, nth) {
                sim.reject(dev, l, busy);
            }
        }
        Op::Hangup { dev, nth } => {
            if let Some(l) = nth_call(sim, dev, nth) {
                sim.hangup(dev, l);
            }
        }
        Op::Hold { dev, nth, held } => {
            if let Some(l) = nth_call(sim, dev, nth) {
                sim.hold(dev, l, held);
            }
        }
        Op::Dtmf { dev, nth } => {
            if let Some(l) = nth_call(sim, dev, nth) {
                sim.send_dtmf(dev, l, "5");
            }
        }
        Op::Dnd { dev, on } => sim.devices[dev].dnd = on,
        Op::LoseLink { dev } => sim.lose_link(dev),
        Op::Connect { dev } => sim.connect(dev),
        Op::Wait { ms } => sim.advance(ms),
    }
}

/// What must hold whenever nothing is in flight.
fn check_quiet(sim: &Sim) -> Result<(), TestCaseError> {
    prop_assert_eq!(sim.in_flight(), 0);
    for d in &sim.devices {
        let calls = d.calls();
        for local in &d.ringing {
            let call = calls.iter().find(|c| c.local == *local);
            prop_assert!(
                call.is_some_and(|c| matches!(c.state, CallState::Incoming | CallState::Waiting)),
                "{} rings for {:?}",
                d.name,
                call
            );
        }
        // A call rings as waiting exactly while another call of the device is answered.
        let answered = calls
            .iter()
            .any(|c| matches!(c.state, CallState::Active | CallState::Held));
        for c in &calls {
            match c.state {
                CallState::Waiting => prop_assert!(answered, "{}: {:?}", d.name, c),
                CallState::Incoming => prop_assert!(!answered, "{}: {:?}", d.name, c),
                _ => {}
            }
        }
        for c in &calls {
            let media = d.media.get(&c.local).copied();
            let want = match c.state {
                CallState::Active => Some(!c.remote_held),
                CallState::Held => Some(false),
                _ => None,
            };
            prop_assert_eq!(media, want, "{}: media of {:?}", d.name, c);
        }
        prop_assert!(d.media.keys().all(|l| calls.iter().any(|c| c.local == *l)));
    }
    for call in sim.relay_calls() {
        let states = sim.states(call);
        let talking: Vec<_> = states
            .iter()
            .filter(|(_, s)| matches!(s, CallState::Active | CallState::Held))
            .collect();
        // Both ends of a call agree on who holds it: each side's own hold is the other's
        // remote hold.
        if !talking.is_empty() {
            prop_assert_eq!(talking.len(), 2, "call {} talking on {:?}", call, states);
            let (x, y) = (talking[0], talking[1]);
            let (dx, dy) = (&sim.devices[x.0], &sim.devices[y.0]);
            let (cx, cy) = (dx.call_for(call).unwrap(), dy.call_for(call).unwrap());
            prop_assert_eq!(
                (cx.held_by_me, cx.remote_held),
                (cy.remote_held, cy.held_by_me),
                "call {}: {:?} / {:?}",
                call,
                cx,
                cy
            );
            // One device per account: two of one account would be two devices answering.
            prop_assert_ne!(dx.account, dy.account, "call {}: {:?}", call, states);
            let dirs = [
                dx.call_for(call).map(|c| c.direction),
                dy.call_for(call).map(|c| c.direction),
            ];
            prop_assert!(
                dirs.contains(&Some(CallDirection::Outgoing))
                    && dirs.contains(&Some(CallDirection::Incoming)),
                "call {}: {:?}",
                call,
                dirs
            );
        }
    }
    // Media is routed exactly between the two ends of an active call neither side holds.
    for (&(from, call), &to) in &sim.routes {
        let active = |sid| {
            sim.devices.iter().any(|d| {
                d.session == Some(sid)
                    && d.call_for(call)
                        .is_some_and(|c| c.state == CallState::Active && !c.remote_held)
            })
        };
        prop_assert!(
            active(from) && active(to),
            "route of call {} from {} to {} but {:?}",
            call,
            from,
            to,
            sim.states(call)
        );
    }
    for call in sim.relay_calls() {
        let active: Vec<_> = sim
            .devices
            .iter()
            .filter(|d| {
                d.call_for(call)
                    .is_some_and(|c| c.state == CallState::Active && !c.remote_held)
            })
            .filter_map(|d| d.session)
            .collect();
        if let [x, y] = active[..] {
            prop_assert_eq!(sim.routes.get(&(x, call)), Some(&y));
            prop_assert_eq!(sim.routes.get(&(y, call)), Some(&x));
        }
    }
    Ok(())
}

/// Fixed, so the suite is the same every run; `PAIR_SEED=<n> PAIR_CASES=<n>` explores
/// other sequences.
fn config() -> Config {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    Config {
        cases: env("PAIR_CASES").map_or(400, |n: u64| n as u32),
        rng_seed: RngSeed::Fixed(env("PAIR_SEED").unwrap_or(0x5eed_ca11)),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_operations_keep_engines_and_router_in_agreement(s in setup()) {
        let mut sim = Sim::new();
        sim.detect_ms = s.detect_ms;
        sim.response_jitter_ms = s.response_jitter_ms;
        for (d, (&latency, &auto)) in s.latencies.iter().zip(&s.auto_answer).enumerate() {
            sim.devices[d].latency_ms = latency;
            if auto {
                sim.devices[d].auto_answer = phoned_proto::state::AutoAnswer::All;
            }
        }
        for op in &s.ops {
            run(&mut sim, op);
            if matches!(op, Op::Wait { .. }) && sim.in_flight() == 0 {
                check_quiet(&sim)?;
            }
        }
        sim.drive();
        check_quiet(&sim)?;
        // Past every ring timeout nothing rings any more.
        sim.advance(RING_TIMEOUT_MS + 1);
        check_quiet(&sim)?;
        for d in &sim.devices {
            prop_assert!(
                d.calls().iter().all(|c| matches!(c.state, CallState::Active | CallState::Held)),
                "{}: {:?}", d.name, d.calls()
            );
        }
        // Everybody hangs up: every engine and the router end empty.
        for dev in 0..DEVICES {
            for c in sim.devices[dev].calls() {
                sim.hangup(dev, c.local);
            }
        }
        sim.advance(RING_TIMEOUT_MS + 10_000);
        for d in &sim.devices {
            prop_assert_eq!(d.calls(), vec![], "{} still has calls", d.name);
            prop_assert!(d.ringing.is_empty() && d.media.is_empty(), "{}", d.name);
            // Each call ends once, with a history record.
            prop_assert_eq!(d.removed.len(), d.history.len());
        }
        prop_assert!(sim.router.is_empty(), "{} calls left in the router", sim.router.len());
        prop_assert!(sim.routes.is_empty(), "routes left: {:?}", sim.routes);
    }
}
