//! Several relays on one PostgreSQL database (relay-level; the daemons' failover is in
//! tests/tests/cluster.rs): devices on different relays see each other online, a
//! message stored by one relay reaches a device on another and its receipt comes back,
//! and a killed relay's devices go offline for the others once their leases expire.

mod common;

use std::time::Duration;

use phoned_proto::{Event, Request, Response};
use phoned_tests::client::Client;

use common::Relay;

/// Within this a dead relay's leases (10 s) have expired and been noticed (renewals every
/// 3 s): generous, the machine is noisy.
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Two relays on one fresh database; `None` without PostgreSQL here (never in CI).
fn two_relays() -> Option<(Relay, Relay)> {
    two_relays_on().map(|(a, b, _)| (a, b))
}

/// [`two_relays`], and the database's name.
fn two_relays_on() -> Option<(Relay, Relay, String)> {
    let url = phoned_tests::postgres::shared()?.database();
    let a = common::relay(&format!("store = \"{url}\"\nrelay_id = \"a\""));
    let b = common::relay(&format!("store = \"{url}\"\nrelay_id = \"b\""));
    let db = url.rsplit('/').next().expect("database name").to_owned();
    Some((a, b, db))
}

fn presence(e: &Event, number: &str, online: bool) -> bool {
    matches!(e, Event::Presence { number: n, online: o, .. } if n == number && *o == online)
}

async fn online(c: &Client) -> Vec<String> {
    let mut all: Vec<String> = c
        .online()
        .await
        .expect("online")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    all.sort();
    all
}

#[test]
fn devices_on_different_relays_see_each_other_and_exchange_messages() {
    let Some((ra, rb)) = two_relays() else {
        return;
    };
    smol::block_on(async {
        let (a, na, _) = ra.provisioned("A").await;
        let (b, nb, sb) = rb.provisioned("B").await;
        // B's login on relay b reaches A on relay a, and both lists hold both.
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some(),
            "A never heard of B"
        );
        let mut both = vec![na.clone(), nb.clone()];
        both.sort();
        assert_eq!(online(&a).await, both);
        assert_eq!(online(&b).await, both);

        // A message from A (relay a) to B (relay b): stored by a, pushed by b.
        let id = match a
            .request(Request::SendMessage {
                client_id: "m1".into(),
                to: nb.clone(),
                text: "across".into(),
            })
            .await
        {
            Ok(Response::Stored { id }) => id,
            other => panic!("{other:?}"),
        };
        let got = b
            .wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
            .await;
        assert!(
            matches!(&got, Some(Event::Message(m)) if m.id == id && m.text == "across"),
            "{got:?}"
        );
        // B acknowledges on relay b: the receipt reaches A on relay a.
        assert!(matches!(
            b.request(Request::Delivered { id }).await,
            Ok(Response::Done)
        ));
        let receipt = a
            .wait_event(common::WAIT, |e| {
                matches!(e, Event::MessageDelivered { .. })
            })
            .await;
        assert!(
            matches!(&receipt, Some(Event::MessageDelivered { id: i, client_id }) if *i == id && client_id == "m1"),
            "{receipt:?}"
        );

        // B's second device on relay a: no presence change for A; B leaving relay b
        // keeps it online (its device on a), leaving both makes it offline.
        let b2 = ra.client().await;
        b2.login(&nb, &sb).await.expect("login on a");
        b.conn.close(0u32.into(), b"bye");
        drop(b);
        b2.conn.close(0u32.into(), b"bye");
        drop(b2);
        let ev = a
            .wait_event(common::WAIT, |e| matches!(e, Event::Presence { .. }))
            .await;
        assert!(
            ev.as_ref().is_some_and(|e| presence(e, &nb, false)),
            "the first presence change A hears is B going offline: {ev:?}"
        );
        assert_eq!(online(&a).await, vec![na.clone()]);
    });
}

#[test]
fn a_killed_relays_devices_go_offline_when_their_leases_expire() {
    let Some((ra, mut rb)) = two_relays() else {
        return;
    };
    smol::block_on(async {
        let (a, _, _) = ra.provisioned("A").await;
        let (_b, nb, _) = rb.provisioned("B").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some()
        );
        // No goodbye, no lease deleted: only the expiry tells.
        rb.process.kill();
        assert!(
            a.wait_event(LEASE_WAIT, |e| presence(e, &nb, false))
                .await
                .is_some(),
            "B still online after its relay died"
        );
        assert!(!online(&a).await.contains(&nb));
    });
}

/// These two relays share a database but not a certificate (each made its own), so
/// neither can open a relay link to the other (relay_links.rs): a device online only on
/// the other relay is dialled as offline, at once, rather than left ringing. (Calls
/// between relays of one cluster: tests/tests/cluster.rs.)
#[test]
fn a_call_to_a_relay_without_the_cluster_certificate_ends_offline_at_once() {
    use phoned_proto::call::{CallPhase, EndReason};
    let Some((ra, rb)) = two_relays() else {
        return;
    };
    smol::block_on(async {
        let (a, _, _) = ra.provisioned("A").await;
        let (_b, nb, _) = rb.provisioned("B").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some()
        );
        let call = match a.request(Request::Dial { to: nb.clone() }).await {
            Ok(Response::CallPlaced { call }) => call,
            other => panic!("{other:?}"),
        };
        let state = a
            .wait_event(
                common::WAIT,
                |e| matches!(e, Event::CallState { call: id, .. } if *id == call),
            )
            .await;
        assert!(
            matches!(
                state,
                Some(Event::CallState {
                    phase: CallPhase::Ended(EndReason::Offline),
                    ..
                })
            ),
            "{state:?}"
        );
    });
}

/// A file uploaded to relay a for a device on relay b is pushed by b and downloaded
/// from b (the blob is in the database), whole.
#[test]
fn a_file_stored_by_one_relay_is_fetched_from_another() {
    let Some((ra, rb)) = two_relays() else {
        return;
    };
    smol::block_on(async {
        let (a, _, _) = ra.provisioned("A").await;
        let (b, nb, _) = rb.provisioned("B").await;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let id = common::files::upload(&a, &nb, "photo.jpg", &data).await;
        let pushed = b
            .wait_event(common::WAIT, |e| matches!(e, Event::File(_)))
            .await;
        assert!(
            matches!(&pushed, Some(Event::File(f)) if f.id == id && f.size == data.len() as u64),
            "{pushed:?}"
        );
        assert_eq!(common::files::download(&b, id).await, data);
    });
}

/// Sixteen devices, half on each relay, race for one free number: exactly one wins
/// (the database's UNIQUE constraint decides, whichever relay asks).
#[test]
fn a_number_race_across_relays_has_exactly_one_winner() {
    use phoned_proto::ErrorCode;
    let Some((ra, rb)) = two_relays() else {
        return;
    };
    smol::block_on(async {
        let mut clients = Vec::new();
        for i in 0..16 {
            let relay = if i % 2 == 0 { &ra } else { &rb };
            clients.push(relay.provisioned(&format!("Racer {i}")).await.0);
        }
        let answers = phoned_tests::join_all(clients.iter().map(|c| {
            c.request(Request::ChangeNumber {
                number: "7777".into(),
            })
        }))
        .await;
        let wins = answers
            .iter()
            .filter(|a| matches!(a, Ok(Response::Account(i)) if i.number == "7777"))
            .count();
        let taken = answers
            .iter()
            .filter(|a| matches!(a, Err(e) if e.code() == Some(ErrorCode::NumberTaken)))
            .count();
        assert_eq!((wins, taken), (1, 15), "{answers:?}");
    });
}

/// A relay stopped with SIGTERM takes its leases away as it goes: the others see its
/// devices offline at once, not when the leases would have expired.
#[test]
fn a_relay_that_stops_removes_its_leases() {
    let Some((ra, mut rb, db)) = two_relays_on() else {
        return;
    };
    let pg = phoned_tests::postgres::shared().expect("postgres");
    let leases_of_b = || pg.psql(&db, "SELECT count(*) FROM leases WHERE relay = 'b'");
    smol::block_on(async {
        let (a, _, _) = ra.provisioned("A").await;
        let (_b, nb, _) = rb.provisioned("B").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some()
        );
        assert_eq!(leases_of_b(), "1");
        assert!(rb.process.terminate().success());
        assert_eq!(leases_of_b(), "0");
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, false))
                .await
                .is_some()
        );
    });
}

/// PostgreSQL restarts under two relays: their listening connections break and come
/// back, and what was stored meanwhile still reaches a device on the other relay (a
/// relay that listens again pushes its devices' inboxes, as notices may have been lost).
#[test]
fn after_postgres_restarts_messages_still_cross_relays() {
    // A cluster of its own: this test stops it.
    let Some(pg) = phoned_tests::postgres::Cluster::start() else {
        return;
    };
    let url = pg.database();
    let ra = common::relay(&format!("store = \"{url}\"\nrelay_id = \"a\""));
    let rb = common::relay(&format!("store = \"{url}\"\nrelay_id = \"b\""));
    smol::block_on(async {
        let (a, _, _) = ra.provisioned("A").await;
        let (b, nb, _) = rb.provisioned("B").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some()
        );
        pg.stop();
        pg.restart();
        // The first write after the restart may still find a broken connection.
        let stored = phoned_tests::wait_for(common::WAIT, || {
            smol::block_on(a.request(Request::SendMessage {
                client_id: "after-restart".into(),
                to: nb.clone(),
                text: "still there?".into(),
            }))
            .ok()
        });
        let Some(Response::Stored { id }) = stored else {
            panic!("{stored:?}");
        };
        let got = b
            .wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
            .await;
        assert!(
            matches!(&got, Some(Event::Message(m)) if m.id == id),
            "{got:?}"
        );
    });
}
