//! The core on virtual time: inputs in, effects checked, no I/O and no sleeps.

use std::sync::Arc;

use phoned_proto::call::{CallPhase, CallResult, CallState, EndReason};
use phoned_proto::state::{AutoAnswer, ConnectionState};
use phoned_proto::{AccountInfo, Event, Request, Response};

use super::*;
use crate::reload::Effect as When;

fn config(text: &str) -> Arc<Config> {
    Arc::new(Config::parse(&format!("relay = \"r:1\"\n{text}")).unwrap())
}

fn account(number: &str, name: &str) -> AccountInfo {
    AccountInfo {
        number: number.into(),
        display_name: name.into(),
        created_ms: 1,
        devices_online: 1,
    }
}

/// A core and its virtual clock.
struct Rig {
    core: Core,
    now: u64,
    next_reply: ReplyTo,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            core: Core::new(config("display_name = \"Desk\""), CallSettings::default()),
            now: 1_000,
            next_reply: 1,
        }
    }

    fn online() -> Rig {
        let mut rig = Rig::new();
        rig.link(LinkEvent::Connecting);
        rig.link(LinkEvent::Online {
            account: account("1000", "Desk"),
            online: vec![("2000".into(), "Bob".into())],
        });
        rig
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.core.handle(self.now, input)
    }

    fn link(&mut self, event: LinkEvent) -> Vec<Effect> {
        self.input(Input::Link(event))
    }

    fn event(&mut self, event: Event) -> Vec<Effect> {
        self.link(LinkEvent::Relay {
            event,
            caller_known: false,
        })
    }

    /// Runs `command` for a waiting caller; returns its reply and all effects.
    fn command(&mut self, command: Command) -> (Option<Result<Reply, CoreError>>, Vec<Effect>) {
        let to = self.next_reply;
        self.next_reply += 1;
        let effects = self.input(Input::Command {
            command,
            reply: Some(to),
        });
        (reply_to(&effects, to), effects)
    }

    fn answer(&mut self, token: Token, result: Result<Response, CoreError>) -> Vec<Effect> {
        self.input(Input::Answer { token, result })
    }

    /// An incoming call from 2000 as relay call `call`; returns its local number.
    fn incoming(&mut self, call: u64) -> (Local, Vec<Effect>) {
        let out = self.event(Event::CallIncoming {
            call,
            from_number: "2000".into(),
            from_name: "Bob".into(),
        });
        let local = added(&out).expect("a call object");
        (local, out)
    }

    fn phase(&mut self, call: u64, phase: CallPhase) -> Vec<Effect> {
        self.event(Event::CallState { call, phase })
    }
}

fn reply_to(effects: &[Effect], to: ReplyTo) -> Option<Result<Reply, CoreError>> {
    effects.iter().find_map(|e| match e {
        Effect::Reply { to: t, result } if *t == to => Some(result.clone()),
        _ => None,
    })
}

fn sends(effects: &[Effect]) -> Vec<(Token, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { token, request } => Some((*token, request.clone())),
            _ => None,
        })
        .collect()
}

fn changes(effects: &[Effect]) -> Vec<Change> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Change(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn added(effects: &[Effect]) -> Option<Local> {
    changes(effects).into_iter().find_map(|c| match c {
        Change::CallAdded(l) => Some(l),
        _ => None,
    })
}

#[test]
fn incoming_then_answer_sends_answer_and_starts_media_when_active() {
    let mut rig = Rig::online();
    let (local, out) = rig.incoming(7);
    assert!(changes(&out).contains(&Change::Ring {
        local,
        number: "2000".into(),
        name: "Bob".into(),
        waiting: false
    }));
    let (reply, out) = rig.command(Command::Call(local, CallOp::Answer));
    assert_eq!(reply, Some(Ok(Reply::Done)));
    let sent = sends(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, Request::Answer { call: 7 });
    assert!(rig.answer(sent[0].0, Ok(Response::Done)).is_empty());
    let out = rig.phase(7, CallPhase::Active { source: 3 });
    assert!(out.contains(&Effect::Media(Media::Start {
        local,
        call: 7,
        source: 3,
        muted: false
    })));
    assert!(changes(&out).contains(&Change::StopRinging(local)));
    assert_eq!(rig.core.snapshot().calls[&local].state, CallState::Active);
}

#[test]
fn link_loss_ends_calls_with_reason_network_and_clears_presence() {
    let mut rig = Rig::online();
    let (local, _) = rig.incoming(7);
    rig.phase(7, CallPhase::Active { source: 3 });
    let out = rig.link(LinkEvent::Offline {
        why: Some("connection to the relay lost".into()),
    });
    assert!(out.contains(&Effect::Media(Media::Stop(local))));
    let c = changes(&out);
    assert!(c.contains(&Change::CallRemoved(local, EndReason::Network)));
    assert!(c.contains(&Change::Presence {
        number: "2000".into(),
        name: "Bob".into(),
        online: false
    }));
    assert!(
        out.iter()
            .any(|e| matches!(e, Effect::Record(r) if r.result == CallResult::Answered))
    );
    let s = rig.core.snapshot();
    assert!(s.calls.is_empty());
    assert_eq!(s.status.connection, ConnectionState::Offline);
    assert_eq!(s.status.last_error, "connection to the relay lost");
    assert!(s.status.online.is_empty());
}

#[test]
fn do_not_disturb_rejects_as_busy_without_ringing() {
    let mut rig = Rig::online();
    let (_, out) = rig.command(Command::SetDnd(true));
    assert!(matches!(
        out.as_slice(),
        [Effect::Save {
            setting: Setting::DoNotDisturb(true),
            reply: Some(_)
        }]
    ));
    let (local, out) = rig.incoming(9);
    assert_eq!(
        sends(&out)[0].1,
        Request::Reject {
            call: 9,
            reason: EndReason::Busy
        }
    );
    assert!(
        !changes(&out)
            .iter()
            .any(|c| matches!(c, Change::Ring { .. }))
    );
    // Declined here: not a missed call.
    let out = rig.phase(9, CallPhase::Ended(EndReason::Busy));
    assert!(changes(&out).contains(&Change::CallRemoved(local, EndReason::Busy)));
    assert!(
        !changes(&out)
            .iter()
            .any(|c| matches!(c, Change::Missed(..)))
    );
}

#[test]
fn auto_answer_contacts_answers_only_known_callers() {
    let mut rig = Rig::online();
    rig.command(Command::SetAutoAnswer(AutoAnswer::Contacts));
    let (_, out) = rig.incoming(1);
    assert!(sends(&out).is_empty());
    let out = rig.link(LinkEvent::Relay {
        event: Event::CallIncoming {
            call: 2,
            from_number: "3000".into(),
            from_name: "Carol".into(),
        },
        caller_known: true,
    });
    assert_eq!(sends(&out)[0].1, Request::Answer { call: 2 });
}

#[test]
fn a_reload_that_needs_a_reconnect_waits_until_calls_end() {
    let mut rig = Rig::online();
    let (local, _) = rig.incoming(7);
    rig.phase(7, CallPhase::Active { source: 3 });
    let (reply, out) = rig.command(Command::Reload(config(
        "display_name = \"Desk\"\n[audio]\nbackend = \"null\"",
    )));
    assert!(
        matches!(reply, Some(Ok(Reply::Reloaded(c))) if c == vec![("audio.backend", When::NextCall)])
    );
    assert!(!out.contains(&Effect::Reconnect));
    let moved = Arc::new(Config::parse("relay = \"s:1\"\ndisplay_name = \"Desk\"").unwrap());
    let (reply, out) = rig.command(Command::Reload(moved));
    assert!(
        matches!(reply, Some(Ok(Reply::Reloaded(c))) if c.contains(&("relay", When::Reconnect)))
    );
    assert!(!out.contains(&Effect::Reconnect));
    assert_eq!(rig.core.config().relay, "s:1");
    let out = rig.phase(7, CallPhase::Ended(EndReason::Hangup));
    assert!(changes(&out).contains(&Change::CallRemoved(local, EndReason::Hangup)));
    assert_eq!(out.last(), Some(&Effect::Reconnect));
    // Once only.
    let (_, out) = rig.incoming(8);
    assert!(!out.contains(&Effect::Reconnect));
}

#[test]
fn a_reload_while_idle_reconnects_at_once() {
    let mut rig = Rig::new();
    let moved = Arc::new(Config::parse("relay = \"s:1\"").unwrap());
    let (_, out) = rig.command(Command::Reload(moved));
    assert!(out.contains(&Effect::Reconnect));
}

#[test]
fn a_display_name_set_offline_is_pushed_on_the_next_login() {
    let mut rig = Rig::new();
    let (reply, out) = rig.command(Command::Reload(config("display_name = \"Hall\"")));
    assert!(
        matches!(reply, Some(Ok(Reply::Reloaded(c))) if c == vec![("display_name", When::Now)])
    );
    assert!(sends(&out).is_empty(), "offline: nothing to send yet");
    let online = |rig: &mut Rig| {
        rig.link(LinkEvent::Online {
            account: account("1000", "Desk"),
            online: vec![],
        })
    };
    let out = online(&mut rig);
    assert!(out.contains(&Effect::FlushOutbox));
    let sent = sends(&out);
    assert_eq!(
        sent[0].1,
        Request::SetDisplayName {
            name: "Hall".into()
        }
    );
    let out = rig.answer(sent[0].0, Ok(Response::Account(account("1000", "Hall"))));
    assert!(changes(&out).contains(&Change::Account));
    assert_eq!(
        rig.core.status().account.as_ref().unwrap().display_name,
        "Hall"
    );
    rig.link(LinkEvent::Offline { why: None });
    assert!(sends(&online(&mut rig)).is_empty(), "told once");
}

#[test]
fn a_failed_or_unanswered_dial_ends_the_call_with_reason_network() {
    let mut rig = Rig::online();
    let (reply, out) = rig.command(Command::Dial {
        number: "2000".into(),
        name: "Bob".into(),
    });
    let Some(Ok(Reply::Call(local))) = reply else {
        panic!("{reply:?}")
    };
    let (token, _) = sends(&out)[0].clone();
    let out = rig.answer(token, Err(CoreError::offline("the link dropped")));
    assert!(changes(&out).contains(&Change::CallRemoved(local, EndReason::Network)));

    // No answer at all: the request times out at the core's deadline.
    let (_, out) = rig.command(Command::Dial {
        number: "2000".into(),
        name: String::new(),
    });
    let local = added(&out).unwrap();
    let deadline = rig.core.next_deadline().unwrap();
    assert_eq!(deadline, rig.now + REQUEST_TIMEOUT_MS);
    rig.now = deadline - 1;
    assert!(rig.input(Input::Timeout).is_empty());
    rig.now = deadline;
    let out = rig.input(Input::Timeout);
    assert!(changes(&out).contains(&Change::CallRemoved(local, EndReason::Network)));
    assert_eq!(rig.core.next_deadline(), None);
}

#[test]
fn commands_that_need_the_relay_fail_offline_at_once() {
    let mut rig = Rig::new();
    let (reply, out) = rig.command(Command::Dial {
        number: "2000".into(),
        name: String::new(),
    });
    assert_eq!(reply.unwrap().unwrap_err().kind, ErrorKind::Offline);
    assert!(sends(&out).is_empty() && changes(&out).is_empty());
    let (reply, _) = rig.command(Command::SetPassword("pw".into()));
    assert_eq!(reply.unwrap().unwrap_err().kind, ErrorKind::Offline);
}

#[test]
fn a_new_password_is_remembered_only_without_configured_credentials() {
    let mut rig = Rig::online();
    let (_, out) = rig.command(Command::SetPassword("pw".into()));
    let out = rig.answer(sends(&out)[0].0, Ok(Response::Done));
    assert!(out.contains(&Effect::Remember(Remember::Password("pw".into()))));
    rig.core.config = config("number = \"1000\"\npassword = \"x\"");
    let (_, out) = rig.command(Command::SetPassword("pw2".into()));
    let out = rig.answer(sends(&out)[0].0, Ok(Response::Done));
    assert!(!out.iter().any(|e| matches!(e, Effect::Remember(_))));
}

#[test]
fn a_receipt_and_incoming_messages_go_to_their_adapters() {
    let mut rig = Rig::online();
    let out = rig.event(Event::MessageDelivered {
        client_id: "abc".into(),
        id: 4,
    });
    assert_eq!(
        out,
        [Effect::Delivered {
            client_id: "abc".into(),
            id: 4
        }]
    );
}

#[test]
fn resuming_a_call_holds_the_one_that_talks() {
    let mut rig = Rig::online();
    let (first, _) = rig.incoming(1);
    rig.phase(1, CallPhase::Active { source: 1 });
    let (second, _) = rig.incoming(2);
    let (_, out) = rig.command(Command::Call(second, CallOp::Answer));
    let sent: Vec<Request> = sends(&out).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        sent,
        [
            Request::Hold {
                call: 1,
                held: true
            },
            Request::Answer { call: 2 }
        ]
    );
    rig.phase(1, CallPhase::Held { by_me: true });
    rig.phase(2, CallPhase::Active { source: 1 });
    let (_, out) = rig.command(Command::Call(first, CallOp::Hold(false)));
    let sent: Vec<Request> = sends(&out).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        sent,
        [
            Request::Hold {
                call: 2,
                held: true
            },
            Request::Hold {
                call: 1,
                held: false
            }
        ]
    );
}

#[test]
fn a_second_call_rings_as_waiting_and_a_remote_hold_is_not_this_sides_to_resume() {
    let mut rig = Rig::online();
    let (first, _) = rig.incoming(1);
    rig.phase(1, CallPhase::Active { source: 1 });
    let (second, out) = rig.incoming(2);
    assert!(changes(&out).contains(&Change::Ring {
        local: second,
        number: "2000".into(),
        name: "Bob".into(),
        waiting: true
    }));
    assert_eq!(rig.core.snapshot().calls[&second].state, CallState::Waiting);
    // The first call's other side holds it: still active here, `RemoteHeld`.
    let out = rig.phase(1, CallPhase::Held { by_me: false });
    assert!(changes(&out).contains(&Change::CallChanged(first)));
    let out = rig.event(Event::CallHold {
        call: 1,
        by_me: false,
        by_peer: true,
    });
    assert!(changes(&out).is_empty(), "nothing new: no second change");
    let c = &rig.core.snapshot().calls[&first];
    assert_eq!((c.state, c.remote_held), (CallState::Active, true));
    let (reply, _) = rig.command(Command::Call(first, CallOp::Hold(false)));
    let e = reply.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert!(e.message.contains("the other side holds the call"), "{e:?}");
}

mod ringing;
mod sessions;

#[test]
fn audio_problems_show_on_the_call_and_the_account_and_clear_when_devices_work() {
    let mut rig = Rig::online();
    let (local, _) = rig.incoming(7);
    rig.phase(7, CallPhase::Active { source: 3 });
    let audio = |rig: &mut Rig, source, problem: Option<&str>| {
        changes(&rig.input(Input::Audio {
            source,
            problem: problem.map(str::to_owned),
        }))
    };
    let call = AudioSource::Call(local);
    let missing = "no audio input: connection refused";
    assert_eq!(
        audio(&mut rig, call, Some(missing)),
        [Change::CallAudio(local), Change::AudioError]
    );
    let s = rig.core.snapshot();
    assert_eq!(s.audio.calls[&local], missing);
    assert_eq!(s.audio.latest, missing);
    // The same report again changes nothing.
    assert_eq!(audio(&mut rig, call, Some(missing)), []);
    // A recording that works does not clear the account's line while a call's problem
    // stands.
    assert_eq!(audio(&mut rig, AudioSource::Recording, None), []);
    assert_eq!(
        audio(&mut rig, call, None),
        [Change::CallAudio(local), Change::AudioError]
    );
    assert_eq!(rig.core.snapshot().audio, AudioStatus::default());
    // A recording's problem is the account's until something works again; it outlives
    // the call that ends meanwhile.
    let short = "the input device delivered only 1400 ms of the 5000 ms asked";
    assert_eq!(
        audio(&mut rig, AudioSource::Recording, Some(short)),
        [Change::AudioError]
    );
    audio(&mut rig, call, Some(missing));
    rig.link(LinkEvent::Offline { why: None });
    let s = rig.core.snapshot();
    assert!(s.audio.calls.is_empty());
    assert_eq!(s.audio.latest, missing);
    // Reports for a call that has ended are dropped.
    assert_eq!(audio(&mut rig, call, None), []);
    assert_eq!(
        audio(&mut rig, AudioSource::Recording, None),
        [Change::AudioError]
    );
    assert_eq!(rig.core.snapshot().audio.latest, "");
}

#[test]
fn quality_shows_on_an_active_call_only_and_is_announced_when_it_changes() {
    let mut rig = Rig::online();
    let (local, _) = rig.incoming(7);
    let report = |rig: &mut Rig, mos: f64| {
        let quality = crate::call::media::Quality {
            mos,
            ..Default::default()
        };
        changes(&rig.input(Input::Quality { local, quality }))
    };
    // Ringing: nothing to measure yet; a stray report is dropped.
    assert_eq!(report(&mut rig, 4.4), []);
    assert!(rig.core.snapshot().quality.is_empty());
    rig.phase(7, CallPhase::Active { source: 3 });
    assert_eq!(report(&mut rig, 4.4), [Change::CallQuality(local)]);
    // The same figures again: no signal.
    assert_eq!(report(&mut rig, 4.4), []);
    assert_eq!(report(&mut rig, 3.9), [Change::CallQuality(local)]);
    assert_eq!(rig.core.snapshot().quality[&local].mos, 3.9);
    // On hold the figures go (they would be stale), and reports crossing it are dropped.
    rig.phase(7, CallPhase::Held { by_me: false });
    assert!(rig.core.snapshot().quality.is_empty());
    assert_eq!(report(&mut rig, 3.9), []);
    // Over: gone for good.
    rig.phase(7, CallPhase::Active { source: 3 });
    report(&mut rig, 4.0);
    rig.link(LinkEvent::Offline { why: None });
    assert!(rig.core.snapshot().quality.is_empty());
    assert_eq!(report(&mut rig, 4.0), []);
}

mod conference;
