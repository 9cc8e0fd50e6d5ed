//! Conference rooms through a real relay process: signalling, the speaker selection of
//! the media forwarding, and requests and media that must change nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use phoned_proto::call::{CallPhase, EndReason};
use phoned_proto::conference::{PartyState, Roster};
use phoned_proto::media::MediaFrame;
use phoned_proto::{ErrorCode, Event, Request, Response};
use phoned_tests::client::Client;

async fn placed(c: &Client, req: Request) -> u64 {
    match c.request(req).await.unwrap() {
        Response::ConferencePlaced { conference } => conference,
        other => panic!("{other:?}"),
    }
}

async fn invited(c: &Client) -> (u64, String) {
    match c
        .wait_event(common::WAIT, |e| {
            matches!(e, Event::ConferenceIncoming { .. })
        })
        .await
        .expect("conference invitation")
    {
        Event::ConferenceIncoming {
            conference,
            from_number,
            ..
        } => (conference, from_number),
        _ => unreachable!(),
    }
}

async fn phase(c: &Client, call: u64) -> CallPhase {
    match c
        .wait_event(
            common::WAIT,
            |e| matches!(e, Event::CallState { call: id, .. } if *id == call),
        )
        .await
        .expect("call state")
    {
        Event::CallState { phase, .. } => phase,
        _ => unreachable!(),
    }
}

/// Waits for `call` to end on `c`; the reason.
async fn ended(c: &Client, call: u64) -> EndReason {
    match c
        .wait_event(common::WAIT, |e| {
            matches!(e, Event::CallState { call: id, phase: CallPhase::Ended(_) } if *id == call)
        })
        .await
        .expect("call ended")
    {
        Event::CallState {
            phase: CallPhase::Ended(r),
            ..
        } => r,
        _ => unreachable!(),
    }
}

/// The next roster for which `until` holds.
async fn roster(c: &Client, until: impl Fn(&Roster) -> bool) -> Roster {
    match c
        .wait_event(
            common::WAIT,
            |e| matches!(e, Event::ConferenceRoster { roster, .. } if until(roster)),
        )
        .await
        .expect("roster")
    {
        Event::ConferenceRoster { roster, .. } => roster,
        _ => unreachable!(),
    }
}

fn frame(call: u64, source: u32, seq: u32, level: u8) -> bytes::Bytes {
    bytes::Bytes::from(
        MediaFrame {
            call,
            source,
            seq,
            timestamp: seq * 960,
            level,
            payload: vec![7; 40],
        }
        .encode(),
    )
}

/// Every datagram that reaches `c` until none comes for a while: frames per source.
async fn drain(c: &Client) -> BTreeMap<u32, usize> {
    let mut got = BTreeMap::new();
    loop {
        let next = smol::future::or(async { c.conn.read_datagram().await.ok() }, async {
            smol::Timer::after(Duration::from_millis(500)).await;
            None
        })
        .await;
        let Some(d) = next else {
            return got;
        };
        let f = MediaFrame::decode(&d).expect("a frame");
        *got.entry(f.source).or_default() += 1;
    }
}

/// Host + `n` invitees who all answer: the clients, their numbers, the room and each
/// one's source.
async fn room(relay: &common::Relay, n: usize) -> (Vec<Client>, Vec<String>, u64, Vec<u32>) {
    let mut clients = Vec::new();
    let mut numbers = Vec::new();
    for i in 0..=n {
        let (c, number, _) = relay.provisioned(&format!("P{i}")).await;
        clients.push(c);
        numbers.push(number);
    }
    let id = placed(
        &clients[0],
        Request::ConferenceCreate {
            numbers: numbers[1..].to_vec(),
        },
    )
    .await;
    let mut sources = vec![match phase(&clients[0], id).await {
        CallPhase::Active { source } => source,
        other => panic!("{other:?}"),
    }];
    for c in &clients[1..] {
        let (room, from) = invited(c).await;
        assert_eq!((room, from.as_str()), (id, numbers[0].as_str()));
        c.request(Request::Answer { call: id }).await.unwrap();
        match phase(c, id).await {
            CallPhase::Active { source } => sources.push(source),
            other => panic!("{other:?}"),
        }
    }
    roster(&clients[0], |r| r.present().count() == n + 1).await;
    (clients, numbers, id, sources)
}

#[test]
fn six_parties_four_talking_each_listener_gets_at_most_three_streams() {
    let relay = common::relay("");
    smol::block_on(async {
        let (clients, _, id, sources) = room(&relay, 5).await;
        // Parties 0-3 talk at once, louder to quieter (10 dB apart); 4 and 5 listen. 20 ms
        // apart so the speaker selection sees a real stream. The first second settles the
        // ranking (frames of the four race through four tasks); the second is counted.
        let (clients_ref, sources_ref) = (&clients, &sources);
        let talk = |from: u32| async move {
            let (clients, sources) = (clients_ref, sources_ref);
            for seq in from..from + 50 {
                for p in 0..4 {
                    let level = 20 + 10 * p as u8;
                    clients[p]
                        .conn
                        .send_datagram(frame(id, sources[p], seq, level))
                        .unwrap();
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        };
        talk(0).await;
        for (p, c) in clients.iter().enumerate() {
            let got = drain(c).await;
            // Whatever the order frames arrived in: never itself, about three streams'
            // worth of datagrams at most (a few more while the ranking settles).
            assert!(!got.contains_key(&sources[p]), "party {p} heard itself");
            assert!(
                got.values().sum::<usize>() <= 3 * 50 + 10,
                "party {p}: {got:?}"
            );
        }
        talk(50).await;
        for (p, c) in clients.iter().enumerate() {
            let got = drain(c).await;
            assert!(!got.contains_key(&sources[p]), "party {p} heard itself");
            // Settled, a listener gets three streams. On a loaded machine a talker's
            // frames may come late enough for it to count as silent for a moment and
            // give its place: allow a few frames of a fourth stream, no more.
            let mut counts: Vec<usize> = got.values().copied().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let beyond_three: usize = counts.iter().skip(3).sum();
            assert!(beyond_three <= 10, "party {p} received {got:?}");
            assert!(
                got.values().sum::<usize>() <= 3 * 50 + 10,
                "party {p}: {got:?}"
            );
            // Only talkers are forwarded.
            assert!(
                got.keys().all(|s| sources[..4].contains(s)),
                "party {p}: {got:?}"
            );
            if p >= 4 {
                assert_eq!(counts.len().min(3), 3, "listener {p} hears three: {got:?}");
            }
        }
    });
}

#[test]
fn leaving_holding_and_the_host_passing_on() {
    let relay = common::relay("");
    smol::block_on(async {
        let (clients, numbers, id, sources) = room(&relay, 3).await;
        // A held party sends nothing that is forwarded and receives nothing.
        clients[3]
            .request(Request::Hold {
                call: id,
                held: true,
            })
            .await
            .unwrap();
        roster(&clients[0], |r| {
            r.parties.iter().any(|p| p.state == PartyState::Held)
        })
        .await;
        for seq in 0..10 {
            for p in [0, 3] {
                clients[p]
                    .conn
                    .send_datagram(frame(id, sources[p], seq, 30))
                    .unwrap();
            }
        }
        let (to_held, to_one) = (drain(&clients[3]).await, drain(&clients[1]).await);
        assert!(to_held.is_empty(), "{to_held:?}");
        assert_eq!(to_one.keys().copied().collect::<Vec<_>>(), [sources[0]]);

        // The host leaves: the party present longest hosts, the room goes on.
        clients[0]
            .request(Request::Hangup { call: id })
            .await
            .unwrap();
        let r = roster(&clients[1], |r| r.host != numbers[0]).await;
        assert_eq!(r.host, numbers[1]);
        for seq in 0..10 {
            clients[2]
                .conn
                .send_datagram(frame(id, sources[2], 100 + seq, 30))
                .unwrap();
        }
        assert_eq!(
            drain(&clients[1]).await.keys().copied().collect::<Vec<_>>(),
            [sources[2]]
        );
        // The new host removes the held party; two remain.
        clients[1]
            .request(Request::ConferenceRemove {
                call: id,
                number: numbers[3].clone(),
            })
            .await
            .unwrap();
        assert_eq!(ended(&clients[3], id).await, EndReason::Removed);
        // One more leaves: fewer than two, the room ends.
        clients[2]
            .request(Request::Hangup { call: id })
            .await
            .unwrap();
        assert_eq!(ended(&clients[1], id).await, EndReason::Hangup);
    });
}

#[test]
fn refused_invites_bad_requests_and_forged_media_disturb_nothing() {
    let relay = common::relay("");
    smol::block_on(async {
        let (clients, numbers, id, sources) = room(&relay, 2).await;
        let (other, other_numbers, other_id, other_sources) = room(&relay, 1).await;
        let (eve, _, _) = relay.provisioned("Eve").await;
        // Unknown number: the invitation fails in the roster, the room goes on.
        let unknown = "7999999";
        clients[0]
            .request(Request::ConferenceAdd {
                call: id,
                number: unknown.into(),
            })
            .await
            .unwrap();
        let r = roster(&clients[0], |r| {
            r.parties.iter().any(|p| p.number == unknown)
        })
        .await;
        let p = r.parties.iter().find(|p| p.number == unknown).unwrap();
        assert_eq!(
            (p.state, p.reason),
            (PartyState::Left, Some(EndReason::UnknownNumber))
        );
        // A declined (do-not-disturb) invitation gives busy.
        clients[0]
            .request(Request::ConferenceAdd {
                call: id,
                number: other_numbers[1].clone(),
            })
            .await
            .unwrap();
        let (room_id, _) = invited(&other[1]).await;
        other[1]
            .request(Request::Reject {
                call: room_id,
                reason: EndReason::Busy,
            })
            .await
            .unwrap();
        let r = roster(&clients[0], |r| {
            r.parties
                .iter()
                .any(|p| p.number == other_numbers[1] && p.state == PartyState::Left)
        })
        .await;
        assert_eq!(r.present().count(), 3);
        let code = |r: Result<Response, phoned_tests::client::ClientError>| r.unwrap_err().code();
        // A party adding itself, a non-host adding, a stranger acting on the room.
        assert_eq!(
            code(
                clients[0]
                    .request(Request::ConferenceAdd {
                        call: id,
                        number: numbers[0].clone()
                    })
                    .await
            ),
            Some(ErrorCode::InvalidParty)
        );
        assert_eq!(
            code(
                clients[1]
                    .request(Request::ConferenceAdd {
                        call: id,
                        number: other_numbers[0].clone()
                    })
                    .await
            ),
            Some(ErrorCode::NotHost)
        );
        assert_eq!(
            code(eve.request(Request::Hangup { call: id }).await),
            Some(ErrorCode::NoSuchCall)
        );
        // The other room's host cannot act on this room with its own id.
        assert_eq!(
            code(
                other[0]
                    .request(Request::ConferenceRemove {
                        call: id,
                        number: numbers[1].clone()
                    })
                    .await
            ),
            Some(ErrorCode::NoSuchCall)
        );
        // Media with another room's id, or another party's source, goes nowhere.
        for seq in 0..10 {
            other[0]
                .conn
                .send_datagram(frame(id, other_sources[0], seq, 10))
                .unwrap();
            clients[1]
                .conn
                .send_datagram(frame(id, sources[0], seq, 10))
                .unwrap();
            eve.conn.send_datagram(frame(id, 0, seq, 10)).unwrap();
        }
        for c in &clients {
            let got = drain(c).await;
            assert!(got.is_empty(), "{got:?}");
        }
        let _ = other_id;
        // And the room still works.
        for seq in 0..5 {
            clients[1]
                .conn
                .send_datagram(frame(id, sources[1], seq, 30))
                .unwrap();
        }
        assert_eq!(
            drain(&clients[0]).await.keys().copied().collect::<Vec<_>>(),
            [sources[1]]
        );
    });
}

#[test]
fn merging_two_calls_and_adding_to_a_call() {
    let relay = common::relay("");
    smol::block_on(async {
        let (a, _, _) = relay.provisioned("A").await;
        let (b, nb, _) = relay.provisioned("B").await;
        let (c, nc, _) = relay.provisioned("C").await;
        let dial = |to: String| Request::Dial { to };
        let ab = match a.request(dial(nb.clone())).await.unwrap() {
            Response::CallPlaced { call } => call,
            other => panic!("{other:?}"),
        };
        b.wait_event(common::WAIT, |e| matches!(e, Event::CallIncoming { .. }))
            .await
            .unwrap();
        b.request(Request::Answer { call: ab }).await.unwrap();
        a.request(Request::Hold {
            call: ab,
            held: true,
        })
        .await
        .unwrap();
        let ac = match a.request(dial(nc.clone())).await.unwrap() {
            Response::CallPlaced { call } => call,
            other => panic!("{other:?}"),
        };
        c.wait_event(common::WAIT, |e| matches!(e, Event::CallIncoming { .. }))
            .await
            .unwrap();
        c.request(Request::Answer { call: ac }).await.unwrap();
        let room = placed(
            &a,
            Request::ConferenceMerge {
                first: ab,
                second: ac,
            },
        )
        .await;
        for (x, call) in [(&b, ab), (&c, ac)] {
            let moved = x
                .wait_event(common::WAIT, |e| matches!(e, Event::ConferenceMoved { .. }))
                .await
                .unwrap();
            assert_eq!(
                moved,
                Event::ConferenceMoved {
                    call,
                    conference: room
                }
            );
        }
        let sb = match phase(&b, room).await {
            CallPhase::Active { source } => source,
            other => panic!("{other:?}"),
        };
        let sc = match phase(&c, room).await {
            CallPhase::Active { source } => source,
            other => panic!("{other:?}"),
        };
        // B and C hear each other.
        for seq in 0..5 {
            b.conn.send_datagram(frame(room, sb, seq, 30)).unwrap();
        }
        assert_eq!(drain(&c).await.keys().copied().collect::<Vec<_>>(), [sb]);
        for seq in 0..5 {
            c.conn.send_datagram(frame(room, sc, seq, 30)).unwrap();
        }
        assert_eq!(drain(&b).await.keys().copied().collect::<Vec<_>>(), [sc]);
        // The old calls are gone.
        assert_eq!(
            b.request(Request::Hangup { call: ab })
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::NoSuchCall)
        );
    });
}
