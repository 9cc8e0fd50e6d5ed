//! Conferences through the core: an invitation rings, a created conference waits for the
//! relay's answer, rosters are checked before they are shown, relay errors reach the caller.

use phoned_proto::conference::{Party, PartyState, Roster};

use super::*;

fn roster(host: &str) -> Roster {
    Roster {
        host: host.into(),
        parties: vec![
            Party {
                number: "1000".into(),
                name: "Desk".into(),
                state: PartyState::Joined,
                source: Some(0),
                reason: None,
            },
            Party {
                number: "2000".into(),
                name: "Bob".into(),
                state: PartyState::Joined,
                source: Some(1),
                reason: None,
            },
        ],
    }
}

#[test]
fn an_invitation_rings_and_says_who_invited() {
    let mut rig = Rig::online();
    let out = rig.event(Event::ConferenceIncoming {
        conference: 40,
        from_number: "2000".into(),
        from_name: "Bob".into(),
    });
    let local = added(&out).expect("a call object");
    let changes = changes(&out);
    assert!(changes.contains(&Change::Ring {
        local,
        number: "2000".into(),
        name: "Bob".into(),
        waiting: false,
    }));
    assert!(changes.contains(&Change::Conference(local)));
    let snap = rig.core.snapshot();
    let info = snap.calls[&local].conference.clone().unwrap();
    assert_eq!(info.invited_by, Some(("2000".into(), "Bob".into())));
}

#[test]
fn create_waits_for_the_relay_and_rosters_are_checked() {
    let mut rig = Rig::online();
    let (reply, out) = rig.command(Command::CreateConference(vec!["2000".into()]));
    assert_eq!(reply, None, "the caller waits for the relay");
    let (token, req) = sends(&out).pop().unwrap();
    assert_eq!(
        req,
        Request::ConferenceCreate {
            numbers: vec!["2000".into()]
        }
    );
    let local = added(&out).unwrap();
    let out = rig.answer(token, Ok(Response::ConferencePlaced { conference: 41 }));
    assert_eq!(reply_to(&out, 1), Some(Ok(Reply::Call(local))));
    rig.phase(41, CallPhase::Active { source: 0 });
    let out = rig.event(Event::ConferenceRoster {
        conference: 41,
        roster: roster("1000"),
    });
    assert!(changes(&out).contains(&Change::Conference(local)));
    // A roster whose host is not in the room is refused and changes nothing.
    let out = rig.event(Event::ConferenceRoster {
        conference: 41,
        roster: roster("9999"),
    });
    assert!(changes(&out).is_empty());
    let snap = rig.core.snapshot();
    let info = snap.calls[&local].conference.clone().unwrap();
    assert_eq!(info.roster.unwrap().host, "1000");
    // The relay refuses an add: the caller hears why.
    let (reply, out) = rig.command(Command::ConferenceAdd(local, "1000".into()));
    assert_eq!(reply, None);
    let (token, _) = sends(&out).pop().unwrap();
    let err = CoreError::new(ErrorKind::InvalidArgument, "own number");
    let out = rig.answer(token, Err(err.clone()));
    assert_eq!(reply_to(&out, 2), Some(Err(err)));
}

#[test]
fn merge_needs_an_active_and_a_held_call() {
    let mut rig = Rig::online();
    let (reply, _) = rig.command(Command::Merge);
    assert!(matches!(reply, Some(Err(e)) if e.kind == ErrorKind::InvalidState));
}

#[test]
fn a_merge_is_a_conference_before_its_answer_goes_out() {
    let mut rig = Rig::online();
    let (held, _) = rig.incoming(1);
    rig.phase(1, CallPhase::Active { source: 1 });
    let (active, _) = rig.incoming(2);
    rig.command(Command::Call(active, CallOp::Answer));
    rig.phase(1, CallPhase::Held { by_me: true });
    rig.phase(2, CallPhase::Active { source: 1 });
    let (reply, out) = rig.command(Command::Merge);
    assert_eq!(reply, None, "the caller waits for the relay");
    let (token, req) = sends(&out).pop().unwrap();
    assert_eq!(
        req,
        Request::ConferenceMerge {
            first: 2,
            second: 1
        }
    );
    let out = rig.answer(token, Ok(Response::ConferencePlaced { conference: 50 }));
    // The `Conference` object is announced, then the caller hears its path.
    let conference = out
        .iter()
        .position(|e| *e == Effect::Change(Change::Conference(active)))
        .expect("the conference announced with the answer");
    let answered = out
        .iter()
        .position(|e| matches!(e, Effect::Reply { result: Ok(Reply::Call(l)), .. } if *l == active))
        .expect("the answer");
    assert!(conference < answered, "{out:?}");
    // The relay's moves that follow: the active call is the room, the held one ends.
    let out = rig.event(Event::ConferenceMoved {
        call: 2,
        conference: 50,
    });
    assert!(changes(&out).is_empty(), "{out:?}");
    let out = rig.event(Event::ConferenceMoved {
        call: 1,
        conference: 50,
    });
    assert!(changes(&out).contains(&Change::CallRemoved(held, EndReason::Merged)));
}
