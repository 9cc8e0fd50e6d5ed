//! Random sessions against the core: link up and down, relay events, user commands,
//! relay answers (or none) and time, in any order. Whatever happens, the core keeps its
//! promises (see [`Ledger`], the checks after each input and the end of [`run_session`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use phoned_proto::call::{CallPhase, CallState, EndReason};
use phoned_proto::state::AutoAnswer;
use phoned_proto::{Event, Request, Response};
use proptest::prelude::*;

use super::{Rig, account};
use crate::call::engine::{Call, Local};
use crate::config::Config;
use crate::core::{
    CallOp, Change, Command, CoreError, Effect, ErrorKind, Input, LinkEvent, REQUEST_TIMEOUT_MS,
    ReplyTo, Token,
};
use crate::ring::Sound;

/// One step of a random session.
#[derive(Debug, Clone)]
enum Step {
    Connect,
    Disconnect,
    Incoming(u64),
    Phase(u64, u8),
    /// Protocol 3's `CallHold`: (call, by me, by the other side).
    Hold(u64, bool, bool),
    Dial,
    Op(u8, u8),
    HangupAll,
    Dnd(bool),
    AutoAnswer(u8),
    Reload(bool),
    /// Answer the `n`th outstanding request: ok, refused, or offline.
    Answer(usize, u8),
    Advance(u64),
    SetName,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Connect),
        1 => Just(Step::Disconnect),
        3 => (1u64..4).prop_map(Step::Incoming),
        6 => ((1u64..4), 0u8..6).prop_map(|(c, p)| Step::Phase(c, p)),
        2 => ((1u64..4), any::<bool>(), any::<bool>()).prop_map(|(c, m, p)| Step::Hold(c, m, p)),
        2 => Just(Step::Dial),
        6 => ((0u8..8), 0u8..7).prop_map(|(l, o)| Step::Op(l, o)),
        1 => Just(Step::HangupAll),
        1 => any::<bool>().prop_map(Step::Dnd),
        1 => (0u8..3).prop_map(Step::AutoAnswer),
        1 => any::<bool>().prop_map(Step::Reload),
        6 => ((0usize..4), 0u8..3).prop_map(|(n, k)| Step::Answer(n, k)),
        2 => (0u64..15_000).prop_map(Step::Advance),
        1 => Just(Step::SetName),
    ]
}

/// Checks what one input did against what the core promised.
#[derive(Default)]
struct Ledger {
    added: BTreeSet<Local>,
    removed: BTreeSet<Local>,
    /// Reply tokens given out and how many replies each got.
    replies: HashMap<ReplyTo, u32>,
    outstanding: Vec<Token>,
    /// What the device sounds, as the `Sound` effects said.
    sound: Sound,
}

impl Ledger {
    fn record(&mut self, before: &BTreeMap<Local, Call>, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Change(Change::CallAdded(l)) => assert!(self.added.insert(*l)),
                Effect::Change(Change::CallRemoved(l, _)) => {
                    assert!(self.added.contains(l), "removed before added: {l}");
                    assert!(self.removed.insert(*l), "removed twice: {l}");
                }
                Effect::Reply { to, .. }
                | Effect::Save {
                    reply: Some(to), ..
                } => *self.replies.entry(*to).or_default() += 1,
                Effect::Send { token, .. } => self.outstanding.push(*token),
                Effect::Sound(sound) => {
                    // One sound at a time: the ring's stream closes before anything else
                    // uses the device.
                    assert!(
                        self.sound == Sound::Silent || *sound == Sound::Silent,
                        "{:?} straight to {sound:?}: {effects:?}",
                        self.sound
                    );
                    self.sound = *sound;
                }
                _ => {}
            }
        }
        // At most one call talks: asking the relay to make a call active (answer, resume)
        // comes with a hold for every other call that was active.
        let sent: Vec<&Request> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { request, .. } => Some(request),
                _ => None,
            })
            .collect();
        let activates = sent.iter().find_map(|r| match r {
            Request::Answer { call } | Request::Hold { call, held: false } => Some(*call),
            _ => None,
        });
        if let Some(call) = activates {
            for c in before.values() {
                if c.state == CallState::Active && c.relay != Some(call) {
                    let id = c.relay.unwrap();
                    assert!(
                        sent.contains(&&Request::Hold {
                            call: id,
                            held: true
                        }),
                        "call {id} still talks: {effects:?}"
                    );
                }
            }
        }
    }
}

fn phase(p: u8) -> CallPhase {
    match p {
        0 => CallPhase::Ringing,
        1 | 2 => CallPhase::Active { source: 1 },
        3 => CallPhase::Held { by_me: true },
        4 => CallPhase::Held { by_me: false },
        _ => CallPhase::Ended(EndReason::Hangup),
    }
}

fn run_session(steps: Vec<Step>) {
    let mut rig = Rig::new();
    let mut ledger = Ledger::default();
    let mut asked = 0u32;
    // Most of what matters happens online.
    for s in std::iter::once(Step::Connect).chain(steps) {
        let before = rig.core.snapshot().calls;
        let locals: Vec<Local> = before.keys().copied().collect();
        let pick = |i: u8| {
            locals
                .get(i as usize % locals.len().max(1))
                .copied()
                .unwrap_or(99)
        };
        let (input, replied) = match s {
            Step::Connect => (
                Input::Link(LinkEvent::Online {
                    account: account("1000", "Desk"),
                    online: vec![("2000".into(), "Bob".into())],
                }),
                false,
            ),
            Step::Disconnect => (Input::Link(LinkEvent::Offline { why: None }), false),
            Step::Incoming(call) => (
                Input::Link(LinkEvent::Relay {
                    event: Event::CallIncoming {
                        call,
                        from_number: "2000".into(),
                        from_name: String::new(),
                    },
                    caller_known: call % 2 == 0,
                }),
                false,
            ),
            Step::Phase(call, p) => (
                Input::Link(LinkEvent::Relay {
                    event: Event::CallState {
                        call,
                        phase: phase(p),
                    },
                    caller_known: false,
                }),
                false,
            ),
            Step::Hold(call, by_me, by_peer) => (
                Input::Link(LinkEvent::Relay {
                    event: Event::CallHold {
                        call,
                        by_me,
                        by_peer,
                    },
                    caller_known: false,
                }),
                false,
            ),
            Step::Dial => (
                Input::Command {
                    command: Command::Dial {
                        number: "2000".into(),
                        name: String::new(),
                    },
                    reply: Some(0),
                },
                true,
            ),
            Step::Op(l, o) => {
                let op = match o {
                    0 => CallOp::Answer,
                    1 => CallOp::Reject { busy: l % 2 == 0 },
                    2 => CallOp::Hangup,
                    3 => CallOp::Hold(true),
                    4 => CallOp::Hold(false),
                    5 => CallOp::Mute(l % 2 == 0),
                    _ => CallOp::Dtmf("1#".into()),
                };
                (
                    Input::Command {
                        command: Command::Call(pick(l), op),
                        reply: Some(0),
                    },
                    true,
                )
            }
            Step::HangupAll => (
                Input::Command {
                    command: Command::HangupAll,
                    reply: Some(0),
                },
                true,
            ),
            Step::Dnd(on) => (
                Input::Command {
                    command: Command::SetDnd(on),
                    reply: Some(0),
                },
                true,
            ),
            Step::AutoAnswer(m) => {
                let mode = [AutoAnswer::Off, AutoAnswer::All, AutoAnswer::Contacts][m as usize];
                (
                    Input::Command {
                        command: Command::SetAutoAnswer(mode),
                        reply: Some(0),
                    },
                    true,
                )
            }
            Step::Reload(moved) => {
                let relay = if moved { "s:1" } else { "r:1" };
                let c = Config::parse(&format!("relay = \"{relay}\"\ndisplay_name = \"N{asked}\""));
                (
                    Input::Command {
                        command: Command::Reload(Arc::new(c.unwrap())),
                        reply: Some(0),
                    },
                    true,
                )
            }
            Step::Answer(n, k) => {
                if ledger.outstanding.is_empty() {
                    continue;
                }
                let token = ledger.outstanding.remove(n % ledger.outstanding.len());
                let result = match k {
                    0 => Ok(Response::Done),
                    1 => Err(CoreError::new(ErrorKind::NotFound, "no")),
                    _ => Err(CoreError::offline("gone")),
                };
                (Input::Answer { token, result }, false)
            }
            Step::Advance(ms) => {
                rig.now += ms;
                (Input::Timeout, false)
            }
            Step::SetName => (
                Input::Command {
                    command: Command::SetDisplayName("X".into()),
                    reply: Some(0),
                },
                true,
            ),
        };
        let input = match input {
            Input::Command { command, .. } if replied => {
                asked += 1;
                Input::Command {
                    command,
                    reply: Some(ReplyTo::from(asked)),
                }
            }
            other => other,
        };
        let effects = rig.input(input);
        ledger.record(&before, &effects);
        // Something sounds only for a call that rings here, and the ring goes through the
        // device only while no call has it.
        let calls = rig.core.snapshot().calls;
        let state = |s: CallState| calls.values().any(|c| c.state == s);
        if !state(CallState::Incoming) && !state(CallState::Waiting) {
            assert_eq!(ledger.sound, Sound::Silent, "{effects:?}");
        }
        // A call that rings here waits exactly while another call is answered.
        let answered = state(CallState::Active) || state(CallState::Held);
        for c in calls.values() {
            match c.state {
                CallState::Waiting => assert!(answered, "{c:?} waits for nothing"),
                CallState::Incoming => assert!(!answered, "{c:?} rings during a call"),
                // Held means held here; the other side's hold leaves a call active.
                CallState::Held => assert!(c.held_by_me, "{c:?}"),
                CallState::Active => assert!(!c.held_by_me, "{c:?}"),
                _ => assert!(!c.held_by_me && !c.remote_held, "{c:?}"),
            }
        }
        if ledger.sound == Sound::Ring {
            // An answered call has the device (its media runs, or pauses while held).
            assert!(
                !calls.values().any(|c| c.answered_ms.is_some()),
                "{effects:?}"
            );
        }
        // Every command got its reply now, or is waiting on a request that will settle.
        if let Some(deadline) = rig.core.next_deadline() {
            assert!(deadline <= rig.now + REQUEST_TIMEOUT_MS);
        }
    }
    // The link drops: every call that appeared is gone, and every caller has an answer.
    let before = rig.core.snapshot().calls;
    let effects = rig.input(Input::Link(LinkEvent::Offline { why: None }));
    ledger.record(&before, &effects);
    assert!(rig.core.snapshot().calls.is_empty());
    assert_eq!(ledger.sound, Sound::Silent);
    assert_eq!(ledger.added, ledger.removed);
    assert_eq!(rig.core.next_deadline(), None);
    for to in 1..=u64::from(asked) {
        assert_eq!(ledger.replies.get(&to), Some(&1), "reply {to} of {asked}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sessions_keep_the_core_consistent(steps in proptest::collection::vec(step(), 0..80)) {
        run_session(steps);
    }
}
