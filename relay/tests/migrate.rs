//! `phone-relay admin migrate`: a relay's embedded store moved into PostgreSQL, then the
//! relay started on PostgreSQL: the same passwords log in, waiting messages and files
//! arrive, disabled accounts stay disabled, and ids go on where they were.

mod common;

use phoned_proto::{ErrorCode, Event, Request, Response};

#[test]
fn a_heed_state_migrated_into_postgres_serves_on() {
    let Some(cluster) = phoned_tests::postgres::shared() else {
        return;
    };
    let url = cluster.database();
    let mut relay = common::relay("");
    let file: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    let (alice, bob, carol, last_id) = smol::block_on(async {
        let (a, alice_number, alice_secret) = relay.provisioned("Alice").await;
        let (b, bob_number, bob_secret) = relay.provisioned("Bob").await;
        let (_c, carol_number, carol_secret) = relay.provisioned("Carol").await;
        drop(b);
        let mut last = 0;
        for (i, text) in ["one", "two"].iter().enumerate() {
            match a
                .request(Request::SendMessage {
                    client_id: format!("m{i}"),
                    to: bob_number.clone(),
                    text: (*text).into(),
                })
                .await
            {
                Ok(Response::Stored { id }) => last = id,
                other => panic!("{other:?}"),
            }
        }
        let file_id = common::files::upload(&a, &bob_number, "plan.bin", &file).await;
        (
            (alice_number, alice_secret),
            (bob_number, bob_secret),
            (carol_number, carol_secret),
            last.max(file_id),
        )
    });
    let (ok, out, err) = relay.process.admin(&["users", "disable", &carol.0], "");
    assert!(ok, "{out}{err}");
    relay.process.terminate();

    let (ok, out, err) = relay.process.admin(&["migrate", "--to", &url], "");
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("3 accounts, 3 waiting messages and files"),
        "{out}"
    );
    assert!(out.contains("1 blobs"), "{out}");
    // Only into an empty database.
    let (ok, _, err) = relay.process.admin(&["migrate", "--to", &url], "");
    assert!(!ok && err.contains("empty"), "{err}");

    // The embedded store is put away: whatever the relay finds now is in PostgreSQL.
    let state = relay.process.state_dir.clone();
    std::fs::rename(state.join("db"), state.join("db.migrated")).unwrap();
    std::fs::write(state.join("relay.toml"), format!("store = \"{url}\"\n")).unwrap();
    relay.process.restart();
    smol::block_on(async {
        let b = relay.client().await;
        b.login(&bob.0, &bob.1).await.unwrap();
        let (mut texts, mut offer) = (Vec::new(), None);
        while texts.len() < 2 || offer.is_none() {
            let mail = |e: &Event| matches!(e, Event::Message(_) | Event::File(_));
            match b.wait_event(common::WAIT, mail).await {
                Some(Event::Message(m)) => texts.push(m.text),
                Some(Event::File(f)) => offer = Some(f),
                other => panic!("waiting for Bob's mail: {other:?}"),
            }
        }
        assert_eq!(texts, ["one", "two"]);
        let offer = offer.unwrap();
        assert_eq!(common::files::download(&b, offer.id).await, file);

        let a = relay.client().await;
        a.login(&alice.0, &alice.1).await.unwrap();
        match a
            .request(Request::SendMessage {
                client_id: "after".into(),
                to: bob.0.clone(),
                text: "three".into(),
            })
            .await
        {
            Ok(Response::Stored { id }) => assert!(id > last_id, "{id} after {last_id}"),
            other => panic!("{other:?}"),
        }
        // A retry of a message sent before the migration is recognised.
        assert!(matches!(
            a.request(Request::SendMessage {
                client_id: "m0".into(),
                to: bob.0.clone(),
                text: "one".into(),
            })
            .await,
            Ok(Response::Stored { id }) if id < last_id
        ));
        let c = relay.client().await;
        assert_eq!(
            c.login(&carol.0, &carol.1).await.unwrap_err().code(),
            Some(ErrorCode::AccountDisabled)
        );
        // Admin works on the migrated state.
        let (ok, out, err) = relay.process.admin(&["users", "list", "--json"], "");
        assert!(ok, "{err}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 3);
    });
}
