//! Call signalling and media forwarding through a real relay process.

mod common;

use std::time::Duration;

use phoned_proto::call::{CallPhase, EndReason};
use phoned_proto::media::MediaFrame;
use phoned_proto::{ErrorCode, Event, Request, Response};
use phoned_tests::client::Client;

async fn dial(c: &Client, to: &str) -> u64 {
    match c.request(Request::Dial { to: to.into() }).await.unwrap() {
        Response::CallPlaced { call } => call,
        other => panic!("{other:?}"),
    }
}

async fn phase(c: &Client, call: u64) -> CallPhase {
    let e = c
        .wait_event(
            common::WAIT,
            |e| matches!(e, Event::CallState { call: id, .. } if *id == call),
        )
        .await
        .expect("call state");
    match e {
        Event::CallState { phase, .. } => phase,
        _ => unreachable!(),
    }
}

async fn incoming(c: &Client) -> (u64, String) {
    match c
        .wait_event(common::WAIT, |e| matches!(e, Event::CallIncoming { .. }))
        .await
        .expect("incoming call")
    {
        Event::CallIncoming {
            call, from_number, ..
        } => (call, from_number),
        _ => unreachable!(),
    }
}

fn frame(call: u64, seq: u32) -> bytes::Bytes {
    common::media_frame(call, seq, vec![seq as u8; 60])
}

#[test]
fn all_devices_ring_first_answer_wins_and_media_flows_only_between_the_parties() {
    let relay = common::relay("");
    smol::block_on(async {
        let (alice, na, _) = relay.provisioned("Alice").await;
        let (bob1, nb, secret) = relay.provisioned("Bob").await;
        let bob2 = relay.client().await;
        bob2.login(&nb, &secret).await.unwrap();
        let (eve, _, _) = relay.provisioned("Eve").await;

        let call = dial(&alice, &nb).await;
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        let (c1, from) = incoming(&bob1).await;
        let (c2, _) = incoming(&bob2).await;
        assert_eq!((c1, c2, from.as_str()), (call, call, na.as_str()));

        bob2.request(Request::Answer { call }).await.unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Active { source: 0 });
        assert_eq!(phase(&bob2, call).await, CallPhase::Active { source: 1 });
        assert_eq!(
            phase(&bob1, call).await,
            CallPhase::Ended(EndReason::AnsweredElsewhere)
        );

        // Media: Alice → Bob's answering device only. Eve cannot inject into the call.
        for seq in 0..20 {
            alice.conn.send_datagram(frame(call, seq)).unwrap();
            eve.conn.send_datagram(frame(call, 1000 + seq)).unwrap();
        }
        let got = smol::future::or(async { bob2.conn.read_datagram().await.ok() }, async {
            smol::Timer::after(common::WAIT).await;
            None
        })
        .await
        .expect("media forwarded");
        let f = MediaFrame::decode(&got).unwrap();
        assert_eq!(f.call, call);
        assert!(f.seq < 1000, "a frame from outside the call was forwarded");
        let stray = smol::future::or(async { bob1.conn.read_datagram().await.ok() }, async {
            smol::Timer::after(Duration::from_millis(300)).await;
            None
        })
        .await;
        assert!(
            stray.is_none(),
            "media reached a device that did not answer"
        );

        // DTMF reaches the other side; hold is seen by both.
        alice
            .request(Request::Dtmf {
                call,
                digits: "12#".into(),
            })
            .await
            .unwrap();
        let d = bob2
            .wait_event(common::WAIT, |e| matches!(e, Event::CallDtmf { .. }))
            .await;
        assert!(matches!(d, Some(Event::CallDtmf { digits, .. }) if digits == "12#"));
        let e = alice
            .request(Request::Dtmf {
                call,
                digits: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidDtmf));
        bob2.request(Request::Hold { call, held: true })
            .await
            .unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Held { by_me: false });
        assert_eq!(phase(&bob2, call).await, CallPhase::Held { by_me: true });
        bob2.request(Request::Hold { call, held: false })
            .await
            .unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Active { source: 0 });
        assert_eq!(phase(&bob2, call).await, CallPhase::Active { source: 1 });

        // Eve cannot end someone else's call, nor learn that it exists: DTMF and hold
        // answer as for a call that never was.
        let e = eve.request(Request::Hangup { call }).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NoSuchCall));
        let e = eve
            .request(Request::Dtmf {
                call,
                digits: "1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NoSuchCall), "{e}");
        let e = eve
            .request(Request::Hold { call, held: true })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NoSuchCall), "{e}");
        alice.request(Request::Hangup { call }).await.unwrap();
        assert_eq!(
            phase(&bob2, call).await,
            CallPhase::Ended(EndReason::Hangup)
        );
    });
}

/// Waits for `c`'s next `CallHold`: (by_me, by_peer).
async fn hold(c: &Client) -> (bool, bool) {
    match c
        .wait_event(common::WAIT, |e| matches!(e, Event::CallHold { .. }))
        .await
    {
        Some(Event::CallHold { by_me, by_peer, .. }) => (by_me, by_peer),
        other => panic!("no CallHold: {other:?}"),
    }
}

#[test]
fn who_holds_a_call_is_told_to_protocol_3_sessions_only() {
    let relay = common::relay("");
    smol::block_on(async {
        // Alice's device speaks protocol 2, Bob's the newest.
        let old = relay.client_speaking(2).await;
        old.provision("Alice").await.unwrap();
        let (bob, nb, _) = relay.provisioned("Bob").await;
        assert_eq!(bob.version(), phoned_proto::PROTOCOL_VERSION);
        let call = dial(&old, &nb).await;
        assert_eq!(phase(&old, call).await, CallPhase::Ringing);
        incoming(&bob).await;
        bob.request(Request::Answer { call }).await.unwrap();
        assert_eq!(phase(&old, call).await, CallPhase::Active { source: 0 });

        bob.request(Request::Hold { call, held: true })
            .await
            .unwrap();
        assert_eq!(hold(&bob).await, (true, false));
        assert_eq!(phase(&old, call).await, CallPhase::Held { by_me: false });
        old.request(Request::Hold { call, held: true })
            .await
            .unwrap();
        // Both hold: only `CallHold` can say so; the phase says "held by me" to each.
        assert_eq!(hold(&bob).await, (true, true));
        assert_eq!(phase(&old, call).await, CallPhase::Held { by_me: true });
        bob.request(Request::Hold { call, held: false })
            .await
            .unwrap();
        assert_eq!(hold(&bob).await, (false, true));
        // DTMF from Bob comes after every hold event the relay queued for Alice: none
        // was a `CallHold`, and her connection (whose decoder may not know it) is up.
        bob.request(Request::Dtmf {
            call,
            digits: "1".into(),
        })
        .await
        .unwrap();
        let mut seen = Vec::new();
        let dtmf = old
            .wait_event(common::WAIT, |e| {
                seen.push(e.clone());
                matches!(e, Event::CallDtmf { .. })
            })
            .await;
        assert!(dtmf.is_some(), "DTMF after the holds: {seen:?}");
        assert!(
            !seen.iter().any(|e| matches!(e, Event::CallHold { .. })),
            "a protocol 2 session got {seen:?}"
        );
        old.request(Request::Hangup { call }).await.unwrap();
    });
}

#[test]
fn every_outcome_reaches_the_caller_as_state_and_reason() {
    let relay = common::relay("ring_timeout_ms = 800");
    smol::block_on(async {
        let (alice, _, _) = relay.provisioned("Alice").await;
        let (bob, nb, _) = relay.provisioned("Bob").await;

        let call = dial(&alice, "99999").await;
        assert_eq!(
            phase(&alice, call).await,
            CallPhase::Ended(EndReason::UnknownNumber)
        );

        let (gone, ng, _) = relay.provisioned("Gone").await;
        gone.conn.close(0u32.into(), b"bye");
        drop(gone);
        let offline = phoned_tests::wait_for(Duration::from_secs(5), || {
            smol::block_on(async {
                let call = dial(&alice, &ng).await;
                (phase(&alice, call).await == CallPhase::Ended(EndReason::Offline)).then_some(())
            })
        });
        assert!(offline.is_some());

        let call = dial(&alice, &nb).await;
        incoming(&bob).await;
        bob.request(Request::Reject {
            call,
            reason: EndReason::Rejected,
        })
        .await
        .unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        assert_eq!(
            phase(&alice, call).await,
            CallPhase::Ended(EndReason::Rejected)
        );

        let call = dial(&alice, &nb).await;
        incoming(&bob).await;
        bob.request(Request::Reject {
            call,
            reason: EndReason::Busy,
        })
        .await
        .unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        assert_eq!(phase(&alice, call).await, CallPhase::Ended(EndReason::Busy));

        let call = dial(&alice, &nb).await;
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        assert_eq!(
            phase(&alice, call).await,
            CallPhase::Ended(EndReason::NoAnswer)
        );

        // The callee's connection dies mid-call: the caller hears "network".
        let call = dial(&alice, &nb).await;
        incoming(&bob).await;
        bob.request(Request::Answer { call }).await.unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        assert_eq!(phase(&alice, call).await, CallPhase::Active { source: 0 });
        bob.conn.close(0u32.into(), b"crash");
        assert_eq!(
            phase(&alice, call).await,
            CallPhase::Ended(EndReason::Network)
        );
    });
}

/// Issue 12: call ids were 1, 2, 3…, so a stranger who placed a call just before and just
/// after someone else's knew that call's id (and how many calls the relay carries). Now
/// ids are random 64-bit numbers: nothing near the stranger's own ids is a call.
#[test]
fn a_stranger_cannot_guess_a_call_id_from_their_own() {
    let relay = common::relay("");
    smol::block_on(async {
        let (alice, _, _) = relay.provisioned("Alice").await;
        let (_bob, nb, _) = relay.provisioned("Bob").await;
        let (eve, _, _) = relay.provisioned("Eve").await;
        // Unknown numbers end at once, but each call still gets an id.
        let before = dial(&eve, "99999").await;
        let call = dial(&alice, &nb).await;
        let after = dial(&eve, "99999").await;
        let near = |a: u64, b: u64| a.abs_diff(b) < 1 << 32;
        assert!(
            !near(call, before) && !near(call, after) && !near(before, after),
            "ids {before}, {call}, {after} are close together"
        );
        for guess in (1..=8).flat_map(|d| {
            [
                before.wrapping_add(d),
                after.wrapping_sub(d),
                d, // the first ids a counting relay hands out
            ]
        }) {
            let e = eve
                .request(Request::Hangup { call: guess })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::NoSuchCall), "id {guess}");
        }
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
    });
}

/// The newer media datagrams (docs/protocol.md §13.3) reach the other party byte for byte,
/// both ways, through a relay that reads only their call id; a receiver that knows only
/// `MediaFrame` refuses them (and drops them) but still reads the plain frames among them.
#[test]
fn redundant_frames_and_reports_are_forwarded_unchanged_and_old_receivers_refuse_them() {
    use phoned_proto::media::{Earlier, MediaDatagram, MediaReport, RedundantFrame};
    let relay = common::relay("");
    smol::block_on(async {
        let (alice, _, _) = relay.provisioned("Alice").await;
        let (bob, nb, _) = relay.provisioned("Bob").await;
        let call = dial(&alice, &nb).await;
        assert_eq!(phase(&alice, call).await, CallPhase::Ringing);
        let _ = incoming(&bob).await;
        bob.request(Request::Answer { call }).await.unwrap();
        assert_eq!(phase(&alice, call).await, CallPhase::Active { source: 0 });
        assert_eq!(phase(&bob, call).await, CallPhase::Active { source: 1 });

        let redundant = |seq: u32| {
            MediaDatagram::Redundant(RedundantFrame {
                frame: MediaFrame::decode(&frame(call, seq)).unwrap(),
                earlier: vec![Earlier {
                    seq_back: 1,
                    ts_back: 960,
                    payload: vec![seq as u8 - 1; 60],
                }],
            })
            .encode()
        };
        let mut report = MediaReport::new(call, 1, 0, 1000);
        (report.expected, report.lost, report.bursts) = (50, 5, 5);
        let report = MediaDatagram::Report(report).encode();

        // Alice sends frames and redundant frames, Bob reports: each arrives unchanged.
        for seq in 1..11 {
            alice.conn.send_datagram(frame(call, seq)).unwrap();
            alice
                .conn
                .send_datagram(bytes::Bytes::from(redundant(100 + seq)))
                .unwrap();
            bob.conn
                .send_datagram(bytes::Bytes::from(report.clone()))
                .unwrap();
        }
        let read = |c: &'static str, conn: quinn::Connection| async move {
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + common::WAIT;
            while got.len() < 20 && std::time::Instant::now() < deadline {
                let next = smol::future::or(async { conn.read_datagram().await.ok() }, async {
                    smol::Timer::after(Duration::from_millis(500)).await;
                    None
                })
                .await;
                match next {
                    Some(d) => got.push(d.to_vec()),
                    None if !got.is_empty() => break,
                    None => {}
                }
            }
            assert!(!got.is_empty(), "{c} got nothing");
            got
        };
        let at_bob = read("Bob", bob.conn.clone()).await;
        let at_alice = read("Alice", alice.conn.clone()).await;
        let red_sent: Vec<Vec<u8>> = (1..11).map(|s| redundant(100 + s)).collect();
        let plain_sent: Vec<Vec<u8>> = (1..11).map(|s| frame(call, s).to_vec()).collect();
        assert!(
            at_bob
                .iter()
                .all(|d| red_sent.contains(d) || plain_sent.contains(d))
        );
        assert!(
            at_bob.iter().any(|d| red_sent.contains(d)),
            "no redundant frame came"
        );
        assert!(at_alice.iter().all(|d| *d == report));
        // An old receiver: the plain frames decode, the newer kinds are refused.
        for d in &at_bob {
            assert_eq!(MediaFrame::decode(d).is_ok(), plain_sent.contains(d));
            assert!(MediaDatagram::decode(d).is_ok());
        }
        assert!(MediaFrame::decode(&at_alice[0]).is_err());
    });
}
