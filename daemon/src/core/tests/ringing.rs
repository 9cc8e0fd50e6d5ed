//! When the core says the device sounds: the ring while a call rings, silence before the
//! answered call's media, the call-waiting tone during a call, nothing for calls that
//! do-not-disturb or auto-answer take or with `ring = "off"`.

use phoned_proto::call::{CallPhase, EndReason};
use phoned_proto::state::AutoAnswer;
use phoned_proto::{Event, Response};

use super::{Rig, account, config, sends};
use crate::core::{CallOp, CallSettings, Command, Core, Effect, LinkEvent, Media};
use crate::ring::Sound;

fn sounds(effects: &[Effect]) -> Vec<Sound> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Sound(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// Where the first `Sound(sound)` and the first media start are among `effects`.
fn positions(effects: &[Effect], sound: Sound) -> (Option<usize>, Option<usize>) {
    (
        effects.iter().position(|e| *e == Effect::Sound(sound)),
        effects
            .iter()
            .position(|e| matches!(e, Effect::Media(Media::Start { .. }))),
    )
}

#[test]
fn an_incoming_call_rings_until_answered_and_the_ring_stops_before_the_media() {
    let mut rig = Rig::online();
    let (local, out) = rig.incoming(7);
    assert_eq!(sounds(&out), [Sound::Ring]);
    let (_, out) = rig.command(Command::Call(local, CallOp::Answer));
    assert_eq!(
        sounds(&out),
        [],
        "rings until the relay says it is answered"
    );
    let out = rig.phase(7, CallPhase::Active { source: 3 });
    let (silent, media) = positions(&out, Sound::Silent);
    assert!(silent.is_some() && silent < media, "{out:?}");
    assert_eq!(sounds(&out), [Sound::Silent]);
}

#[test]
fn declining_and_the_caller_giving_up_stop_the_ring() {
    let mut rig = Rig::online();
    let (local, _) = rig.incoming(7);
    let (_, out) = rig.command(Command::Call(local, CallOp::Reject { busy: false }));
    rig.answer(sends(&out)[0].0, Ok(Response::Done));
    let out = rig.phase(7, CallPhase::Ended(EndReason::Rejected));
    assert_eq!(sounds(&out), [Sound::Silent]);

    rig.incoming(8);
    // The caller hung up, or the relay's ring timeout ended it.
    let out = rig.phase(8, CallPhase::Ended(EndReason::NoAnswer));
    assert_eq!(sounds(&out), [Sound::Silent]);
}

#[test]
fn a_call_during_a_call_gets_the_waiting_tone_and_rings_once_the_first_ends() {
    let mut rig = Rig::online();
    rig.incoming(1);
    rig.phase(1, CallPhase::Active { source: 1 });
    let (_, out) = rig.incoming(2);
    assert_eq!(sounds(&out), [Sound::Waiting]);
    let out = rig.phase(1, CallPhase::Ended(EndReason::Hangup));
    assert_eq!(sounds(&out), [Sound::Silent, Sound::Ring]);
}

#[test]
fn answering_the_waiting_call_stops_the_waiting_tone() {
    let mut rig = Rig::online();
    rig.incoming(1);
    rig.phase(1, CallPhase::Active { source: 1 });
    let (second, _) = rig.incoming(2);
    rig.command(Command::Call(second, CallOp::Answer));
    let out = rig.phase(1, CallPhase::Held { by_me: true });
    assert_eq!(
        sounds(&out),
        [],
        "still waiting while the first is put on hold"
    );
    let out = rig.phase(2, CallPhase::Active { source: 1 });
    assert_eq!(sounds(&out), [Sound::Silent]);
}

#[test]
fn do_not_disturb_and_auto_answer_ring_nothing() {
    let mut rig = Rig::online();
    rig.command(Command::SetDnd(true));
    let (_, out) = rig.incoming(1);
    assert_eq!(sounds(&out), []);
    rig.command(Command::SetDnd(false));
    rig.command(Command::SetAutoAnswer(AutoAnswer::All));
    let (_, out) = rig.incoming(2);
    assert_eq!(sounds(&out), []);
    let out = rig.phase(2, CallPhase::Active { source: 1 });
    assert_eq!(sounds(&out), []);
}

#[test]
fn ring_off_sounds_nothing_not_even_the_waiting_tone() {
    let mut rig = Rig::new();
    rig.core = Core::new(config("[audio]\nring = \"off\""), CallSettings::default());
    rig.link(LinkEvent::Connecting);
    rig.link(LinkEvent::Online {
        account: account("1000", "Desk"),
        online: vec![],
    });
    let (_, out) = rig.incoming(1);
    assert_eq!(sounds(&out), []);
    rig.phase(1, CallPhase::Active { source: 1 });
    let out = rig.event(Event::CallIncoming {
        call: 2,
        from_number: "3000".into(),
        from_name: String::new(),
    });
    assert_eq!(sounds(&out), []);
}
