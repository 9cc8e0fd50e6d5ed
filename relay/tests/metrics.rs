//! The metrics endpoint of a real relay: off unless configured; when on, its OpenMetrics
//! text parses and its counters move with traffic (logins, a failed one, a call with
//! media, a message, a conference room).

mod common;

use common::configured::{ConfiguredRelay, LOOPBACK};
use common::scrape::{endpoint, get, http, scrape};
use phoned_proto::call::CallPhase;
use phoned_proto::{ErrorCode, Event, Request, Response};
use phoned_tests::client::Client;

fn frame(call: u64, seq: u32) -> bytes::Bytes {
    common::media_frame(call, seq, vec![7; 60])
}

async fn next_state(c: &Client, call: u64) -> CallPhase {
    match c
        .wait_event(
            common::WAIT,
            |e| matches!(e, Event::CallState { call: id, .. } if *id == call),
        )
        .await
    {
        Some(Event::CallState { phase, .. }) => phase,
        other => panic!("{other:?}"),
    }
}

#[test]
fn counters_move_with_logins_calls_media_and_messages() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}metrics_listen = \"127.0.0.1:0\"\nidle_timeout_ms = 60000"
    ));
    let at = endpoint(&relay);
    let before = scrape(at);
    for name in [
        "phone_relay_connections",
        "phone_relay_sessions",
        "phone_relay_calls",
        "phone_relay_conference_rooms",
        "phone_relay_logins_total",
        "phone_relay_login_failures_total{cause=\"credentials\"}",
        "phone_relay_media_forwarded_total",
        "phone_relay_media_dropped_total{cause=\"no_route\"}",
        "phone_relay_messages_stored_total",
        "phone_relay_store_commit_seconds_count",
        "phone_relay_mailbox_bytes",
    ] {
        assert_eq!(get(&before, name), 0.0, "{name} at start");
    }
    assert!(get(&before, "phone_relay_cpu_seconds_total") > 0.0);

    smol::block_on(async {
        let alice = relay.client().await;
        let (a, secret) = alice.provision("Alice").await.unwrap();
        let bob = relay.client().await;
        let (b, _) = bob.provision("Bob").await.unwrap();
        let stranger = relay.client().await;
        let e = stranger
            .login(&a.number, "not the password")
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidCredentials));
        let _ = secret;

        // A call, answered; a few media datagrams from Alice, one for a call that is not hers.
        let call = match alice
            .request(Request::Dial {
                to: b.number.clone(),
            })
            .await
            .unwrap()
        {
            Response::CallPlaced { call } => call,
            other => panic!("{other:?}"),
        };
        bob.wait_event(common::WAIT, |e| matches!(e, Event::CallIncoming { .. }))
            .await
            .expect("rings");
        bob.request(Request::Answer { call }).await.unwrap();
        assert!(matches!(next_state(&alice, call).await, CallPhase::Ringing));
        assert!(matches!(
            next_state(&alice, call).await,
            CallPhase::Active { .. }
        ));
        for seq in 0..5 {
            alice.conn.send_datagram(frame(call, seq)).unwrap();
        }
        alice.conn.send_datagram(frame(call ^ 1, 99)).unwrap();
        let got = smol::future::or(async { bob.conn.read_datagram().await.ok() }, async {
            smol::Timer::after(common::WAIT).await;
            None
        })
        .await;
        assert!(got.is_some(), "no media forwarded");

        // A message Bob receives but does not acknowledge: it waits in his mailbox.
        let r = alice
            .request(Request::SendMessage {
                client_id: "m1".into(),
                to: b.number.clone(),
                text: "counted".into(),
            })
            .await
            .unwrap();
        assert!(matches!(r, Response::Stored { .. }), "{r:?}");
        bob.wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
            .await
            .expect("message pushed");

        // Datagrams are unordered with the rest: wait until the stray one is counted.
        let after = phoned_tests::wait_for(common::WAIT, || {
            let s = scrape(at);
            (get(&s, "phone_relay_media_dropped_total{cause=\"no_route\"}") >= 1.0).then_some(s)
        })
        .expect("the datagram for another call counted as dropped");
        assert_eq!(get(&after, "phone_relay_logins_total"), 2.0);
        assert_eq!(
            get(
                &after,
                "phone_relay_login_failures_total{cause=\"credentials\"}"
            ),
            1.0
        );
        assert_eq!(get(&after, "phone_relay_connections"), 3.0);
        assert_eq!(get(&after, "phone_relay_sessions"), 2.0);
        assert_eq!(get(&after, "phone_relay_accounts_online"), 2.0);
        assert_eq!(get(&after, "phone_relay_calls"), 1.0);
        assert_eq!(get(&after, "phone_relay_conference_rooms"), 0.0);
        let forwarded = get(&after, "phone_relay_media_forwarded_total");
        assert!((1.0..=5.0).contains(&forwarded), "{forwarded}");
        assert_eq!(get(&after, "phone_relay_messages_stored_total"), 1.0);
        assert!(get(&after, "phone_relay_store_commit_seconds_count") >= 1.0);
        assert!(get(&after, "phone_relay_store_commit_seconds_sum") > 0.0);
        assert!(
            get(
                &after,
                "phone_relay_store_commit_seconds_bucket{le=\"+Inf\"}"
            ) >= 1.0
        );
        assert!(get(&after, "phone_relay_mailbox_bytes") > 0.0);
        assert!(
            get(&after, "phone_relay_cpu_seconds_total")
                >= get(&before, "phone_relay_cpu_seconds_total")
        );

        // The call ends: the gauge follows.
        alice.request(Request::Hangup { call }).await.unwrap();
        let s = phoned_tests::wait_for(common::WAIT, || {
            let s = scrape(at);
            (get(&s, "phone_relay_calls") == 0.0).then_some(s)
        });
        assert!(s.is_some(), "the call still counted after its hangup");

        // A conference room, while Bob's devices ring for it: counted, and not after.
        let conference = match alice
            .request(Request::ConferenceCreate {
                numbers: vec![b.number.clone()],
            })
            .await
            .unwrap()
        {
            Response::ConferencePlaced { conference } => conference,
            other => panic!("{other:?}"),
        };
        let s = phoned_tests::wait_for(common::WAIT, || {
            let s = scrape(at);
            (get(&s, "phone_relay_conference_rooms") == 1.0).then_some(s)
        })
        .expect("the open room counted");
        assert_eq!(get(&s, "phone_relay_calls"), 0.0, "a room is not a call");
        alice
            .request(Request::Hangup { call: conference })
            .await
            .unwrap();
        let s = phoned_tests::wait_for(common::WAIT, || {
            let s = scrape(at);
            (get(&s, "phone_relay_conference_rooms") == 0.0).then_some(s)
        });
        assert!(s.is_some(), "the room still counted after its host left");
    });
}

#[test]
fn only_get_metrics_is_answered_and_the_endpoint_is_off_by_default() {
    let relay = ConfiguredRelay::start(&format!("{LOOPBACK}metrics_listen = \"127.0.0.1:0\""));
    let at = endpoint(&relay);
    let r = http(at, "GET / HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http(at, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    let r = http(at, "\u{1}\u{2} nonsense\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    let quiet = ConfiguredRelay::start(LOOPBACK);
    assert!(
        !quiet.log().contains("metrics endpoint"),
        "an endpoint without metrics_listen:\n{}",
        quiet.log()
    );
}
